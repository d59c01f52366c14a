"""Model distillation (course_lib.model_distillation): fidelity, mimic learning, transfer sets,
FitNets hints, the soft decision tree, scikit-learn trees and the panel's experiment.

The metrics and losses are checked against PyTorch's own (``F.kl_div``, ``F.mse_loss``,
autograd) and against the notebook-03 losses they generalise; the tree's path probabilities
against a brute-force product over each leaf's ancestors, as a property over random trees. The
training functions run on a few hundred validation images with 16- to 32-unit models (each run
well under a second), for what they change, what they leave alone, and their named errors.
"""

import copy
import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.tree import DecisionTreeClassifier
from torch import nn
from torch.nn import functional as F

from course_lib import data, distillation, experiments, hardware, measure, models, train
from course_lib import model_distillation as M
from course_lib.data import ImageSplit



def _settings_and_rest(kwargs: dict, epochs: int = 1) -> tuple[train.TrainingSettings, dict]:
    """The training settings among ``kwargs`` (made here, so that a bad one raises in the caller's
    ``pytest.raises``) and the other keyword arguments."""
    names = {f.name for f in dataclasses.fields(train.TrainingSettings)}
    settings = train.TrainingSettings(**{"epochs": epochs, **{k: v for k, v in kwargs.items() if k in names}})
    return settings, {k: v for k, v in kwargs.items() if k not in names}

# ----------------------------------------------------------------------------- helpers

def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logits(b: int, c: int, seed: int = 0, scale: float = 3.0, dtype=torch.float64) -> torch.Tensor:
    return scale * torch.randn(b, c, generator=_generator(seed), dtype=dtype)


def _mlp(seed: int, hidden=(16,)) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return models.mlp(list(hidden))


def _state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(model: nn.Module, state: dict) -> bool:
    now = model.state_dict()
    return now.keys() == state.keys() and all(torch.equal(v, state[k]) for k, v in now.items())


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models train faster on one thread than on two that fight over a busy machine."""
    with measure.torch_threads(1):
        yield


@pytest.fixture(scope="module")
def validation() -> ImageSplit:
    return data.load("mnist", "validation")


@pytest.fixture(scope="module")
def small(validation) -> ImageSplit:
    return validation.subset(256)


@pytest.fixture(scope="module")
def teacher() -> nn.Sequential:
    return _mlp(1, (32,)).eval()


# ----------------------------------------------------------------------------- fidelity

def test_top1_agreement_by_hand_and_its_tie_rule():
    student = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    teacher = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    # student's argmax (ties to the lowest index): 0, 1, 0, 2; teacher's: 0, 2, 1, 2
    assert M.top1_agreement(student, teacher) == pytest.approx(0.5)
    assert isinstance(M.top1_agreement(student, teacher), float)
    assert M.top1_agreement(student, student) == 1.0


def test_mean_kl_is_the_teachers_kl_at_temperature_one():
    z, v = _logits(6, 5, 0), _logits(6, 5, 1)
    expected = F.kl_div(F.log_softmax(z, -1), F.softmax(v, -1), reduction="batchmean").item()
    assert M.mean_kl(z, v) == pytest.approx(expected, rel=1e-9)
    assert M.mean_kl(z, v) == pytest.approx(distillation.soft_target_loss(z, v, 1.0).item(), rel=1e-9)
    assert M.mean_kl(z, z) == pytest.approx(0.0, abs=1e-12)
    assert M.mean_kl(z, v) != pytest.approx(M.mean_kl(v, z))      # KL is not symmetric: teacher first


def test_fidelity_of_a_model_with_itself_is_one(small, teacher):
    f = M.fidelity(teacher, teacher, small)
    assert f.agreement == 1.0 and f.kl == pytest.approx(0.0, abs=1e-6)
    assert f.accuracy == f.teacher_accuracy == pytest.approx(train.evaluate(teacher, small).accuracy)
    assert f.n == len(small)
    other = M.fidelity(_mlp(2, (16,)), teacher, small)
    assert other.agreement < 1 and other.kl > 0


def test_fidelity_of_logits_and_of_predictions():
    z, v = _logits(8, 4, 2), _logits(8, 4, 3)
    y = torch.randint(0, 4, (8,), generator=_generator(4))
    f = M.fidelity_of_logits(z, v, y)
    assert f.agreement == pytest.approx(M.top1_agreement(z, v))
    assert f.accuracy == pytest.approx((z.argmax(1) == y).double().mean().item())
    assert f.teacher_accuracy == pytest.approx((v.argmax(1) == y).double().mean().item())
    hard = M.fidelity_of_predictions(z.argmax(1), v, y)
    assert hard.kl is None and hard.agreement == f.agreement and hard.accuracy == f.accuracy


@pytest.mark.parametrize("call, error, words", [
    (lambda: M.top1_agreement(_logits(3, 4), _logits(4, 4)), ValueError, "same shape"),
    (lambda: M.top1_agreement(_logits(3, 4), torch.full((3, 4), math.nan)), ValueError, "NaN"),
    (lambda: M.mean_kl([[1.0, 2.0]], _logits(1, 2)), TypeError, "student_logits"),
    (lambda: M.top1_agreement(torch.zeros(0, 3), torch.zeros(0, 3)), ValueError, "batch >= 1"),
    (lambda: M.fidelity_of_logits(_logits(3, 4), _logits(3, 4), torch.tensor([0, 1])), ValueError, "labels"),
    (lambda: M.fidelity_of_predictions(torch.tensor([0, 9, 1]), _logits(3, 4), torch.tensor([0, 1, 2])),
     ValueError, "predictions must be class indices"),
])
def test_fidelity_errors_are_named(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_fidelity_rejects_models_with_other_classes(small, teacher):
    with pytest.raises(ValueError, match="same classes"):
        M.fidelity(models.mlp([8], num_classes=5), teacher, small)
    with pytest.raises(TypeError, match="student"):
        M.fidelity("lenet5", teacher, small)


# ----------------------------------------------------------------------------- mimic learning

def test_mimic_loss_is_ba_and_caruanas_l2_on_the_logits():
    z, v = _logits(5, 4, 5), _logits(5, 4, 6)
    expected = 0.5 * F.mse_loss(z, v, reduction="sum") / len(z)
    assert torch.allclose(M.mimic_loss(z, v), expected)
    zg, vg = z.clone().requires_grad_(True), v.clone().requires_grad_(True)
    M.mimic_loss(zg, vg).backward()
    assert torch.allclose(zg.grad, (z - v) / len(z)) and vg.grad is None


def test_centred_mimic_loss_is_logit_matching_times_the_classes():
    z, v = _logits(5, 4, 7), _logits(5, 4, 8) + 10.0
    assert torch.allclose(M.mimic_loss(z, v, centre=True), 4 * distillation.logit_matching_loss(z, v))
    assert M.mimic_loss(z, z + 3.0, centre=True).item() == pytest.approx(0.0, abs=1e-12)   # shifts ignored
    assert M.mimic_loss(z, z + 3.0).item() == pytest.approx(0.5 * 4 * 9)                  # but not uncentred
    with pytest.raises(TypeError, match="centre"):
        M.mimic_loss(z, v, centre=1)


def test_label_with_teacher_makes_a_transfer_set(small, teacher):
    images = small.images[:50].clone()
    ts = M.label_with_teacher(images, teacher, "unlabeled", small.classes)
    logits = train.predict_logits(teacher, images)
    assert torch.allclose(ts.teacher_logits, logits)
    assert torch.equal(ts.split.labels, logits.argmax(1))
    assert torch.equal(images, small.images[:50]) and ts.split.classes == small.classes
    assert "teacher" in ts.split.name
    with pytest.raises(ValueError, match="at least 1 image"):
        M.label_with_teacher(small.images[:0], teacher)
    with pytest.raises(ValueError, match="NaN"):
        M.label_with_teacher(torch.full((2, 1, 28, 28), math.nan), teacher)
    with pytest.raises(ValueError, match="10 class names"):
        M.label_with_teacher(images, teacher, classes=("a", "b"))


def test_mimic_regresses_the_teachers_logits_without_labels(small, teacher):
    ts = M.label_with_teacher(small.images, teacher)
    before = M.mimic_loss(train.predict_logits(_mlp(0), small.images), ts.teacher_logits).item()
    student = _mlp(0)
    result = M.mimic(student, ts.split, train.TrainingSettings(epochs=6, lr=3e-3, seed=0),
                     teacher_logits=ts.teacher_logits, progress=False)
    after = M.mimic_loss(train.predict_logits(student, small.images), ts.teacher_logits).item()
    assert after < 0.5 * before
    assert result.history[-1]["train_accuracy"] > result.history[0]["train_accuracy"]   # agreement, here
    # no label is used: other labels give the same weights
    shuffled = ImageSplit(ts.split.images, torch.randint(0, 10, (len(small),), generator=_generator(9)),
                          "noise labels", small.classes)
    again = _mlp(0)
    M.mimic(again, shuffled, train.TrainingSettings(epochs=6, lr=3e-3, seed=0), teacher_logits=ts.teacher_logits,
            progress=False)
    assert _same_state(again, _state(student))


def test_mimic_with_a_teacher_equals_its_precomputed_logits(small, teacher):
    a, b = _mlp(3), _mlp(3)
    M.mimic(a, small, train.TrainingSettings(epochs=2, seed=1), teacher=teacher, progress=False)
    M.mimic(b, small, train.TrainingSettings(epochs=2, seed=1),
            teacher_logits=distillation.precompute_logits(teacher, small), progress=False)
    assert _same_state(a, _state(b))
    teacher_state, rng = _state(teacher), torch.random.get_rng_state()
    M.mimic(_mlp(3), small, train.TrainingSettings(epochs=1, max_shift=1, seed=1), teacher=teacher, progress=False)  # live
    assert _same_state(teacher, teacher_state) and not teacher.training
    assert torch.equal(rng, torch.random.get_rng_state())


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(teacher_logits=torch.zeros(10, 10)), ValueError, "one row per transfer image"),
    (dict(teacher_logits=torch.full((256, 10), math.nan)), ValueError, "NaN"),
    (dict(teacher_logits=torch.zeros(256, 10), max_shift=1), ValueError, "unshifted"),
    (dict(), ValueError, "exactly one of teacher"),
    (dict(teacher_logits=torch.zeros(256, 7)), ValueError, "same number of classes"),
    (dict(teacher_logits=torch.zeros(256, 10), centre="yes"), TypeError, "centre"),
    (dict(teacher_logits=torch.zeros(256, 10), lr=math.nan), ValueError, "lr"),
])
def test_mimic_errors_are_named_and_leave_the_student_as_it_was(small, kwargs, error, words):
    student = _mlp(4)
    state = _state(student)
    with pytest.raises(error, match=words):
        settings, rest = _settings_and_rest(kwargs)
        M.mimic(student, small, settings, progress=False, **rest)
    assert _same_state(student, state)


def test_mimic_rejects_an_empty_transfer_set(small):
    empty = ImageSplit(small.images[:0], small.labels[:0], "empty", small.classes)
    with pytest.raises(ValueError, match="at least one image"):
        M.mimic(_mlp(0), empty, train.TrainingSettings(epochs=1), teacher_logits=torch.zeros(0, 10), progress=False)


# ----------------------------------------------------------------------------- transfer sets

def test_munge_shapes_determinism_and_input_unchanged(small):
    sample = small.images[:20].clone()
    a = M.munge(sample, 50, _generator(0))
    b = M.munge(sample, 50, _generator(0))
    c = M.munge(sample, 50, _generator(1))
    assert a.shape == (50, 1, 28, 28) and a.dtype == sample.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(sample, small.images[:20])


def test_munge_swaps_towards_the_nearest_neighbour(small):
    sample = small.images[:12]
    x = sample.flatten(1)
    d = torch.cdist(x, x) + torch.diag(torch.full((12,), math.inf))
    neighbour = d.argmin(1)
    assert torch.equal(M.transfer._nearest_neighbours(x, chunk=5), neighbour)
    kept = M.munge(sample, 24, _generator(0), swap_probability=0.0)           # nothing swapped: copies
    assert torch.equal(kept, torch.cat([sample, sample]))
    swapped = M.munge(sample, 12, _generator(0), swap_probability=1.0, width_divisor=1e12)
    assert torch.allclose(swapped, sample[neighbour], atol=1e-5)               # every pixel: the neighbour's
    half = M.munge(sample, 12, _generator(0), swap_probability=0.5, width_divisor=1e12)
    own = torch.isclose(half, sample, atol=1e-5) | torch.isclose(half, sample[neighbour], atol=1e-5)
    assert own.all()


def test_mixup_and_noise_images(small):
    sample = small.images[:10]
    mixed = M.mixup_images(sample, 30, _generator(0))
    assert mixed.shape == (30, 1, 28, 28) and torch.equal(mixed, M.mixup_images(sample, 30, _generator(0)))
    low, high = sample.min(0).values, sample.max(0).values
    assert (mixed >= low - 1e-6).all() and (mixed <= high + 1e-6).all()      # convex combinations
    noisy = M.noise_images(sample, 15, _generator(0), std=0.0)
    assert all(any(torch.equal(n, s) for s in sample) for n in noisy)
    assert not torch.equal(M.noise_images(sample, 15, _generator(0)), noisy)
    rng = torch.random.get_rng_state()
    for make in (M.munge, M.mixup_images, M.noise_images):
        make(sample, 5, _generator(0))
    assert torch.equal(rng, torch.random.get_rng_state())                     # the global RNG is never used


def test_transfer_images_dispatches(small):
    sample = small.images[:10]
    assert torch.equal(M.transfer_images("images", sample, 4, _generator(0)), sample[:4])
    assert torch.equal(M.transfer_images("munge", sample, 7, _generator(3)), M.munge(sample, 7, _generator(3)))
    with pytest.raises(ValueError, match="size must be an int in \\[1, 10\\]"):
        M.transfer_images("images", sample, 11, _generator(0))
    with pytest.raises(ValueError, match="kind must be one of"):
        M.transfer_images("gan", sample, 4, _generator(0))


@pytest.mark.parametrize("call, error, words", [
    (lambda s: M.munge(s[:1], 5, _generator()), ValueError, "at least 2 images"),
    (lambda s: M.munge(s[:0], 5, _generator()), ValueError, "at least 2 images"),
    (lambda s: M.mixup_images(s[:4], 0, _generator()), ValueError, "size"),
    (lambda s: M.munge(s[:4], 5, None), TypeError, "generator"),
    (lambda s: M.munge(s[:4], 5, _generator(), swap_probability=1.5), ValueError, "swap_probability"),
    (lambda s: M.munge(s[:4], 5, _generator(), width_divisor=0.0), ValueError, "width_divisor"),
    (lambda s: M.noise_images(torch.full((3, 1, 2, 2), math.nan), 5, _generator()), ValueError, "NaN"),
    (lambda s: M.noise_images(s[:4, 0], 5, _generator()), ValueError, "\\(N, C, H, W\\)"),
    (lambda s: M.noise_images(s[:4], 5, _generator(), std=-1.0), ValueError, "std"),
])
def test_transfer_set_errors_are_named(small, call, error, words):
    with pytest.raises(error, match=words):
        call(small.images)


# ----------------------------------------------------------------------------- hints

def test_layer_names_and_a_named_error_for_a_missing_layer():
    lenet = models.lenet5()
    assert M.layer_names(lenet)[:3] == ["conv1", "relu1", "pool1"]
    assert M.check_layer_name(lenet, "conv2") is lenet.conv2
    with pytest.raises(ValueError, match="hint_layer 'fc9' is not a layer of the model; its layers are "
                                         "\\['conv1'"):
        M.check_layer_name(lenet, "fc9", "hint_layer")
    with pytest.raises(TypeError, match="layer"):
        M.check_layer_name(lenet, 3)


def test_intermediate_is_the_layers_output(small):
    lenet = _mlp(0, (8, 8))
    x = small.images[:4]
    assert torch.equal(M.intermediate(lenet, "fc2", x), lenet[:4](x))
    assert not lenet.fc2._forward_hooks                                      # the hook is removed


def test_hint_regressor_shapes():
    conv = M.hint_regressor((4, 14, 14), (8, 7, 7))
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (8, 8)
    assert conv(torch.zeros(2, 4, 14, 14)).shape == (2, 8, 7, 7)
    linear = M.hint_regressor((24,), (8, 7, 7))
    assert linear(torch.zeros(2, 24)).shape == (2, 8, 7, 7)
    assert M.hint_regressor((3, 5, 5), (2, 9, 9))(torch.zeros(1, 3, 5, 5)).shape == (1, 2, 9, 9)   # smaller
    assert _same_state(M.hint_regressor((24,), (10,), seed=3), _state(M.hint_regressor((24,), (10,), seed=3)))
    with pytest.raises(ValueError, match="guided_shape"):
        M.hint_regressor((0, 3), (4,))


def test_hint_loss():
    u, r = _logits(3, 6, 1), _logits(3, 6, 2)
    assert torch.allclose(M.hint_loss(r, u), 0.5 * ((r - u) ** 2).sum() / 3)
    ug, rg = u.clone().requires_grad_(True), r.clone().requires_grad_(True)
    M.hint_loss(rg, ug).backward()
    assert ug.grad is None and torch.allclose(rg.grad, (r - u) / 3)
    with pytest.raises(ValueError, match="one shape"):
        M.hint_loss(r, u[:, :4])


def test_train_with_hints_trains_up_to_the_guided_layer_first(small):
    teacher = _mlp(5, (32, 32)).eval()
    student = _mlp(6, (24, 24, 24))
    initial = _state(student)
    hints_only = copy.deepcopy(student)
    out = M.train_with_hints(hints_only, teacher, small, train.TrainingSettings(epochs=0, lr=3e-3),
                             guided_layer="fc2", hint_layer="fc1", hint_epochs=3, progress=False)
    assert isinstance(out.regressor, nn.Sequential) and len(out.hint_result.history) == 3
    assert out.hint_result.history[-1]["train_loss"] < out.hint_result.history[0]["train_loss"]
    changed = {k for k, v in hints_only.state_dict().items() if not torch.equal(v, initial[k])}
    assert changed == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}   # after fc2: untouched
    full = M.train_with_hints(student, teacher, small, train.TrainingSettings(epochs=1), guided_layer="fc2",
                              hint_layer="fc1", hint_epochs=1, progress=False)
    assert len(full.result.history) == 1 and not torch.equal(student.fc4.weight, initial["fc4.weight"])


@pytest.mark.parametrize("kwargs, words", [
    (dict(guided_layer="fc9", hint_layer="fc1"), "guided_layer 'fc9' is not a layer of the model"),
    (dict(guided_layer="fc1", hint_layer="conv3"), "hint_layer 'conv3' is not a layer of the model"),
    (dict(guided_layer="fc1", hint_layer="fc1", temperature=0.0), "temperature"),
    (dict(guided_layer="fc1", hint_layer="fc1", weight=2.0), "weight"),
])
def test_train_with_hints_errors_leave_the_student_as_it_was(small, kwargs, words):
    student, teacher = _mlp(7, (16, 16)), _mlp(8, (32,))
    state = _state(student)
    with pytest.raises(ValueError, match=words):
        settings, rest = _settings_and_rest(kwargs)
        M.train_with_hints(student, teacher, small, settings, hint_epochs=1,
                           progress=False, **rest)
    assert _same_state(student, state)


# ----------------------------------------------------------------------------- the soft decision tree

def _brute_force_leaves(p: torch.Tensor) -> torch.Tensor:
    """Each leaf's probability as the product over its ancestors, walking the heap indices."""
    n = p.shape[1]
    depth = (n + 1).bit_length() - 1
    out = torch.ones(len(p), 2 ** depth, dtype=p.dtype)
    for leaf in range(2 ** depth):
        node = 2 ** depth - 1 + leaf
        while node:
            parent = (node - 1) // 2
            out[:, leaf] *= p[:, parent] if node == 2 * parent + 2 else 1 - p[:, parent]
            node = parent
    return out


@settings(max_examples=30)
@given(depth=st.integers(1, 6), batch=st.integers(1, 5), seed=st.integers(0, 1000))
def test_leaf_path_probabilities_sum_to_one(depth, batch, seed):
    p = torch.rand(batch, 2 ** depth - 1, generator=_generator(seed), dtype=torch.float64)
    p[0, : min(3, p.shape[1])] = torch.tensor([0.0, 1.0, 0.5][: min(3, p.shape[1])], dtype=torch.float64)
    inner, leaves = M.path_probabilities(p)
    assert inner.shape == p.shape and leaves.shape == (batch, 2 ** depth)
    assert torch.allclose(leaves.sum(1), torch.ones(batch, dtype=torch.float64))
    assert torch.equal(inner[:, 0], torch.ones(batch, dtype=torch.float64))
    assert torch.allclose(leaves, _brute_force_leaves(p))
    # an inner node's probability is the sum of its two children's
    children = torch.cat([inner, leaves], 1)
    for i in range(p.shape[1]):
        assert torch.allclose(inner[:, i], children[:, 2 * i + 1] + children[:, 2 * i + 2])


def test_path_probabilities_errors():
    with pytest.raises(ValueError, match="2\\*\\*depth - 1"):
        M.path_probabilities(torch.rand(2, 4))
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        M.path_probabilities(torch.tensor([[1.5, 0.2, 0.3]]))
    with pytest.raises(ValueError, match="NaN"):
        M.path_probabilities(torch.tensor([[math.nan, 0.2, 0.3]]))


def test_expected_cross_entropy_and_the_balance_penalty():
    g = _generator(3)
    leaves = F.softmax(torch.randn(4, 8, generator=g, dtype=torch.float64), 1)
    log_q = F.log_softmax(torch.randn(8, 5, generator=g, dtype=torch.float64), 1)
    targets = F.softmax(torch.randn(4, 5, generator=g, dtype=torch.float64), 1)
    brute = -sum(leaves[b, l] * (targets[b] * log_q[l]).sum() for b in range(4) for l in range(8)) / 4
    assert torch.allclose(M.expected_cross_entropy(leaves, log_q, targets), brute)
    # perfectly balanced nodes: each level costs lambda * ln 2 (2^l nodes at 2^-l each)
    p = torch.full((6, 7), 0.5, dtype=torch.float64)
    inner, _ = M.path_probabilities(p)
    assert M.balance_penalty(inner, p, 0.3).item() == pytest.approx(3 * 0.3 * math.log(2))
    lopsided = p.clone()
    lopsided[:, 0] = 0.9
    assert M.balance_penalty(*M.path_probabilities(lopsided)[:1], lopsided, 0.3) > M.balance_penalty(inner, p, 0.3)
    assert M.balance_penalty(inner, p, 0.0).item() == 0.0
    with pytest.raises(ValueError, match="strength"):
        M.balance_penalty(inner, p, -1.0)
    with pytest.raises(ValueError, match="leaf_log_distributions"):
        M.expected_cross_entropy(leaves, log_q[:4], targets)


def test_soft_decision_tree_predictions(small):
    tree = M.soft_decision_tree(3, beta=2.0, seed=0)
    x = small.images[:6]
    p = tree.node_probabilities(x)
    assert torch.allclose(p, torch.sigmoid(2.0 * (x.flatten(1) @ tree.inner.weight.T + tree.inner.bias)))
    _, leaves = M.path_probabilities(p)
    q = F.softmax(tree.leaves, -1)
    out = tree(x)
    assert torch.allclose(out, q[leaves.argmax(1)].log(), atol=1e-6)
    tree.prediction = "mixture"
    assert torch.allclose(tree(x).exp(), leaves @ q, atol=1e-6)
    assert torch.allclose(tree(x).exp().sum(1), torch.ones(6))
    r = measure.report(tree, "tree")
    assert r.parameters == 7 * 785 + 8 * 10 and r.macs == 7 * 784
    rng = torch.random.get_rng_state()
    assert _same_state(M.soft_decision_tree(3, seed=4), _state(M.soft_decision_tree(3, seed=4)))
    assert torch.equal(rng, torch.random.get_rng_state())


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(depth=0), ValueError, "depth must be an int in \\[1, 16\\]"),
    (dict(depth=2.0), TypeError, "depth"),
    (dict(depth=2, beta=0.0), ValueError, "beta"),
    (dict(depth=2, beta=math.nan), ValueError, "beta"),
    (dict(depth=2, prediction="vote"), ValueError, "prediction"),
])
def test_soft_decision_tree_errors(kwargs, error, words):
    with pytest.raises(error, match=words):
        M.soft_decision_tree(**kwargs)


def test_train_soft_tree_on_labels_and_distilled(small, teacher):
    tree = M.soft_decision_tree(2, seed=0)
    result = M.train_soft_tree(tree, small, train.TrainingSettings(epochs=10, lr=2e-2, batch_size=32, seed=0),
                               progress=False)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert train.evaluate(tree, small).accuracy > 0.25                       # 4 leaves, 10 classes: 0.4 at best
    logits = distillation.precompute_logits(teacher, small)
    a, b = M.soft_decision_tree(2, seed=1), M.soft_decision_tree(2, seed=1)
    M.train_soft_tree(a, small, train.TrainingSettings(epochs=2, seed=0), teacher_logits=logits, temperature=2.0,
                      progress=False)
    M.train_soft_tree(b, small, train.TrainingSettings(epochs=2, seed=0), teacher=teacher, temperature=2.0,
                      progress=False)
    assert _same_state(a, _state(b))
    assert not _same_state(a, _state(M.soft_decision_tree(2, seed=1)))


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(teacher_logits=torch.zeros(5, 10)), ValueError, "one row per transfer image"),
    (dict(teacher_logits=torch.full((256, 10), math.nan)), ValueError, "NaN"),
    (dict(teacher_logits=torch.zeros(256, 3)), ValueError, "same number of classes"),
    (dict(penalty=-0.1), ValueError, "penalty"),
    (dict(temperature=0), ValueError, "temperature"),
])
def test_train_soft_tree_errors_leave_the_tree_as_it_was(small, kwargs, error, words):
    tree = M.soft_decision_tree(2)
    state = _state(tree)
    with pytest.raises(error, match=words):
        settings, rest = _settings_and_rest(kwargs)
        M.train_soft_tree(tree, small, settings, progress=False, **rest)
    assert _same_state(tree, state)
    with pytest.raises(TypeError, match="SoftDecisionTree"):
        M.train_soft_tree(_mlp(0), small, train.TrainingSettings(epochs=1), progress=False)


def test_tree_path_explains_the_prediction(small):
    tree = M.soft_decision_tree(4, beta=3.0, seed=2)
    image = small.images[0]
    path = M.tree_path(tree, image)
    assert len(path.steps) == 4 and path.steps[0].node == 0
    assert math.prod(s.probability for s in path.steps) == pytest.approx(path.probability, rel=1e-5)
    assert path.prediction == int(tree(image[None]).argmax())
    node = 0
    for step in path.steps:
        assert step.node == node and step.filter.shape == (28, 28)
        assert torch.equal(step.filter, tree.inner.weight[node].detach().view(28, 28))
        node = 2 * node + (2 if step.right else 1)
    assert node - 15 == path.leaf
    assert len(path.lines()) == 5 and "leaf" in path.lines()[-1] and "filter of shape" in repr(path.steps[0])
    filters = M.node_filters(tree)
    assert filters.shape == (15, 28, 28) and torch.equal(filters[3], tree.inner.weight[3].detach().view(28, 28))
    with pytest.raises(ValueError, match="one float image of shape"):
        M.tree_path(tree, small.images[:2])


# ----------------------------------------------------------------------------- scikit-learn trees

def test_a_tree_on_the_teachers_labels_imitates_the_teacher(small, teacher):
    ts = M.label_with_teacher(small.images, teacher, classes=small.classes)
    tree = M.fit_tree(ts.split, None)
    predictions = M.tree_predict(tree, small.images)
    f = M.fidelity_of_predictions(predictions, ts.teacher_logits, small.labels)
    assert f.agreement == 1.0 and f.kl is None                              # grown out: it memorises
    on_labels = M.fidelity_of_predictions(M.tree_predict(M.fit_tree(small, None), small.images),
                                          ts.teacher_logits, small.labels)
    assert on_labels.accuracy == 1.0 and on_labels.agreement == pytest.approx(f.teacher_accuracy)
    shallow = M.fit_tree(ts.split, 2)
    assert shallow.get_depth() <= 2 and predictions.dtype == torch.int64


def test_tree_size_and_report(small):
    tree = M.fit_tree(small, 4, seed=0)
    size = M.tree_size(tree)
    assert size.nodes == 2 * size.leaves - 1 and size.depth == 4
    assert size.bytes == (size.nodes - size.leaves) * (2 + 4 + 2 * 2) + size.leaves
    report = M.tree_report(tree, "tree of depth 4")
    assert report.weight_bytes == size.bytes and report.macs == 0
    assert hardware.check_fit(report, hardware.get_device("Arduino Nano 33 BLE Sense")).fits


def test_tree_depth_sweep(small, teacher):
    rows = M.tree_depth_sweep(teacher, small, small.subset(100), [1, 3])
    assert [(r.depth, r.targets) for r in rows] == [(1, "teacher"), (1, "labels"), (3, "teacher"), (3, "labels")]
    assert rows[2].size.nodes > rows[0].size.nodes and rows[2].fidelity.kl is None
    assert rows[3].fidelity.accuracy >= rows[1].fidelity.accuracy


@pytest.mark.parametrize("call, error, words", [
    (lambda s, t: M.fit_tree(s, 0), ValueError, "max_depth must be an int >= 1 or None"),
    (lambda s, t: M.tree_depth_sweep(t, s, s, []), ValueError, "at least one depth"),
    (lambda s, t: M.tree_depth_sweep(t, s, s, [2, 0]), ValueError, "each depth"),
    (lambda s, t: M.tree_predict(DecisionTreeClassifier(), s.images), ValueError, "not fitted"),
    (lambda s, t: M.tree_predict(M.fit_tree(s, 1), s.images[:, :, :14]), ValueError, "784 pixels"),
    (lambda s, t: M.tree_size("tree"), TypeError, "DecisionTreeClassifier"),
])
def test_tree_errors_are_named(small, teacher, call, error, words):
    with pytest.raises(error, match=words):
        call(small, teacher)


# ----------------------------------------------------------------------------- the panel's experiment

def test_the_students_of_the_panel():
    assert measure.count_parameters(experiments.model_distillation._student("tiny_cnn", 8, 0)) == measure.count_parameters(models.tiny_cnn())
    assert measure.count_parameters(experiments.model_distillation._student("mlp", 16, 0)) == 784 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10
    assert isinstance(experiments.model_distillation._student("soft_tree", 3, 0), M.SoftDecisionTree)


def test_experiment_with_a_tree_and_with_a_soft_tree():
    tree = experiments.model_distillation_experiment("tree", 5, "images", "Arduino Nano 33 BLE Sense", transfer_size=400)
    assert 0.5 < tree.fidelity.agreement <= 1 and tree.fidelity.kl is None and tree.verdict.fits
    lines = tree.lines()
    assert "no true labels" in lines[0] and "n/a" in lines[1] and "FITS" in "\n".join(lines)
    soft = experiments.model_distillation_experiment("soft_tree", 2, "munge", "ESP32", epochs=1, transfer_size=300,
                                           sample_size=50)
    assert soft.fidelity.kl is not None and soft.report.parameters == 3 * 785 + 4 * 10
    assert "munge images" in soft.lines()[0]


@pytest.mark.parametrize("args, kwargs, error, words", [
    (("forest", 3, "images", "ESP32"), {}, ValueError, "family"),
    (("soft_tree", 11, "images", "ESP32"), {}, ValueError, "size \\(depth of a soft_tree\\)"),
    (("mlp", 8, "gan", "ESP32"), {}, ValueError, "transfer"),
    (("mlp", 8, "images", "Cray-1"), {}, ValueError, "device"),
    (("mlp", 8, "images", "ESP32"), {"teacher": "resnet"}, ValueError, "teacher"),
    (("mlp", 8, "images", "ESP32"), {"epochs": 0}, ValueError, "epochs"),
    (("mlp", 8, "munge", "ESP32"), {"sample_size": 1}, ValueError, "sample_size"),
])
def test_experiment_errors(args, kwargs, error, words):
    with pytest.raises(error, match=words):
        experiments.model_distillation_experiment(*args, **kwargs)


def test_mimic_trains_with_a_loss_of_the_learners():
    """``loss=`` replaces mimic_loss (notebook 06 trains with the learner's); the same loss gives the same student,
    and anything that is not a function is refused before training."""
    split = data.load("mnist", "train").subset(256)
    targets = 5 * torch.randn(256, 10, generator=torch.Generator().manual_seed(0))
    settings = train.TrainingSettings(epochs=1, seed=0, batch_size=64)
    students = []
    for loss in (None, M.mimic_loss):
        torch.manual_seed(0)
        student = models.mlp([16])
        M.mimic(student, split, settings, teacher_logits=targets, progress=False, loss=loss)
        students.append(student)
    assert all(torch.equal(a, b) for a, b in zip(students[0].state_dict().values(), students[1].state_dict().values()))
    with pytest.raises(TypeError, match="loss must be a function"):
        M.mimic(models.mlp([16]), split, settings, teacher_logits=targets, progress=False, loss=3)
