import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune as torch_prune

from course_lib import data, measure, models, pruning, train


def test_hand_worked_example():
    w = torch.tensor([[0.5, -0.1, 0.3], [-0.7, 0.2, 0.05]])
    # 50% of 6 = 3 smallest magnitudes: 0.05, -0.1, 0.2
    assert pruning.magnitude_mask(w, 0.5).tolist() == [[1, 0, 1], [1, 0, 0]]
    assert pruning.magnitude_mask(w, 0.0).tolist() == [[1, 1, 1], [1, 1, 1]]


def test_ties_still_give_the_exact_sparsity():
    w = torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0])
    mask = pruning.magnitude_mask(w, 0.4)
    assert int((mask == 0).sum()) == 2 and mask[4] == 1


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 300), st.floats(0.0, 0.99), st.integers(0, 1000))
def test_exact_sparsity_and_agreement_with_torch_prune(n, sparsity, seed):
    w = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    before = w.clone()
    mask = pruning.magnitude_mask(w, sparsity)
    assert int((mask == 0).sum()) == round(sparsity * n)
    assert torch.equal(w, before)
    layer = nn.Linear(n, 1)
    with torch.no_grad():
        layer.weight.copy_(w.reshape(1, n))
    torch_prune.l1_unstructured(layer, "weight", amount=sparsity)
    assert torch.equal(layer.weight_mask.reshape(-1), mask)


def test_global_masks_match_torch_global_unstructured():
    model = models.build("lenet_300_100", seed=1)
    ours = pruning.global_masks(model, 0.8)
    reference = copy.deepcopy(model)
    params = [(reference.fc1, "weight"), (reference.fc2, "weight"), (reference.fc3, "weight")]
    torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=0.8)
    for name in ("fc1", "fc2", "fc3"):
        assert torch.equal(ours[f"{name}.weight"], getattr(reference, name).weight_mask)
    total = sum(m.numel() for m in ours.values())
    assert sum(int((m == 0).sum()) for m in ours.values()) == round(0.8 * total)


def test_prune_returns_a_copy_and_reaches_each_layers_sparsity():
    model = models.build("lenet5")
    before = copy.deepcopy(model.state_dict())
    pruned, masks = pruning.prune_weights(model, {"conv2": 0.5, "fc1": 0.9})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    sparsity = pruning.layer_sparsity(pruned)
    assert sparsity["conv2"] == pytest.approx(0.5, abs=1e-4) and sparsity["fc1"] == pytest.approx(0.9, abs=1e-5)
    assert sparsity["conv1"] == 0.0 and set(masks) == {"conv2.weight", "fc1.weight"}


def test_masks_persist_through_optimizer_steps():
    split = data.load("mnist", "test").subset(512)
    pruned, masks = pruning.prune_weights(models.build("lenet_300_100"), 0.7)
    train.fit(pruned, split, train.TrainingSettings(epochs=1, batch_size=64, lr=1e-2),
              after_step=pruning.masks_hook(masks), progress=False)
    for name, mask in masks.items():
        assert torch.all(dict(pruned.named_parameters())[name][mask == 0] == 0)
    assert pruning.kept_fraction(pruned) == pytest.approx(0.3, abs=1e-4)


def test_sparse_storage_shrinks_with_sparsity():
    model = models.build("lenet_300_100")
    pruned, _ = pruning.prune_weights(model, {"fc1": 0.92, "fc2": 0.91, "fc3": 0.74})
    dense = measure.weight_bytes(pruned, "fp32", "dense")
    for enc in ("bitmask", "csr", "relative_index"):
        assert measure.weight_bytes(pruned, "fp32", enc) < dense / 4


def test_cubic_schedule():
    assert pruning.cubic_sparsity(0, 10, 0.9) == 0.0
    assert pruning.cubic_sparsity(10, 10, 0.9) == pytest.approx(0.9)
    values = [pruning.cubic_sparsity(t, 10, 0.9) for t in range(11)]
    steps = [b - a for a, b in zip(values, values[1:])]
    assert all(s > 0 for s in steps) and steps == sorted(steps, reverse=True)   # fast first


def test_sensitivity_scan_and_choice():
    model = models.build("lenet_300_100")
    split = data.load("mnist", "test").subset(200)
    scan = pruning.sensitivity_scan(model, split, [0.0, 0.5, 0.9], progress=False)
    assert set(scan) == {"fc1", "fc2", "fc3"} and len(scan["fc1"]) == 3
    base = train.evaluate(model, split).accuracy
    chosen = pruning.choose_sparsities(scan, base, max_drop=1.0)
    assert chosen == {"fc1": 0.9, "fc2": 0.9, "fc3": 0.9}
    with pytest.raises(ValueError, match="max_drop"):
        pruning.choose_sparsities(scan, base, -0.1)


def test_iterative_prune_reaches_the_target():
    split = data.load("mnist", "test").subset(300)
    pruned, masks, history = pruning.iterative_prune(models.build("lenet_300_100"), split,
                                                     {"fc1": 0.9}, 2, train.TrainingSettings(epochs=1, lr=1e-4),
                                                     validation=split, progress=False)
    assert pruning.layer_sparsity(pruned)["fc1"] == pytest.approx(0.9, abs=1e-5)
    assert len(history) == 2 and history[0]["kept"] > history[1]["kept"]
    with pytest.raises(TypeError, match=r"fine_tuning must be a TrainingSettings"):
        pruning.iterative_prune(models.build("lenet_300_100"), split, {"fc1": 0.9}, 2, 1)


def test_channel_scores():
    w = torch.tensor([[1.0, -1.0], [3.0, 0.0], [0.5, 0.5]])
    assert pruning.channel_norm(w, 1).tolist() == [2.0, 3.0, 1.0]
    assert pruning.select_channels(pruning.channel_norm(w, 1), 2).tolist() == [0, 1]
    assert pruning.select_channels(torch.tensor([1.0, 2.0, 2.0, 0.0]), 1).tolist() == [1]   # ties: earlier
    with pytest.raises(ValueError, match="count"):
        pruning.select_channels(torch.ones(3), 0)


def _zero_channels(model, layer, keep, bn=None):
    """The dense reference: the same model with the dropped channels' outputs forced to zero."""
    masked = copy.deepcopy(model)
    drop = torch.ones(getattr(masked, layer).weight.shape[0], dtype=torch.bool)
    drop[keep] = False
    with torch.no_grad():
        getattr(masked, layer).weight[drop] = 0
        if getattr(masked, layer).bias is not None:
            getattr(masked, layer).bias[drop] = 0
        if bn is not None:
            getattr(masked, bn).weight[drop] = 0
            getattr(masked, bn).bias[drop] = 0
    return masked


@pytest.mark.parametrize("arch, layer, bn", [("lenet5", "conv1", None), ("lenet5", "conv2", None),
                                             ("lenet5", "fc1", None), ("small_cnn", "conv1", "bn1"),
                                             ("small_cnn", "conv2", "bn2"), ("lenet_300_100", "fc2", None)])
def test_channel_pruned_model_equals_the_masked_dense_one(arch, layer, bn):
    model = models.build(arch, seed=2).eval()
    if bn:   # give the batch norms non-trivial statistics
        with torch.no_grad():
            getattr(model, bn).running_mean.uniform_(-1, 1)
            getattr(model, bn).running_var.uniform_(0.5, 2)
    n = getattr(model, layer).weight.shape[0]
    keep = torch.arange(0, n, 3)
    small = pruning.remove_channels(model, layer, keep).eval()
    assert getattr(small, layer).weight.shape[0] == len(keep)
    assert measure.count_parameters(small) < measure.count_parameters(model)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(small(x), _zero_channels(model, layer, keep, bn)(x), rtol=1e-5, atol=1e-5)


def test_channel_prune_several_layers_with_each_criterion():
    model = models.build("small_cnn").eval()
    split = data.load("mnist", "validation").subset(100)
    for criterion in ("l1", "l2", "activation", "taylor"):
        small = pruning.prune_channels(model, {"conv1": 0.5, "conv2": 0.5, "fc1": 0.75}, criterion, split)
        assert (small.conv1.out_channels, small.conv2.out_channels, small.fc1.out_features) == (16, 32, 32)
        assert small(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
        assert measure.count_macs(small) < measure.count_macs(model) / 3
    assert model.conv1.out_channels == 32


def test_bad_input_gets_named_errors():
    model = models.build("lenet5")
    with pytest.raises(ValueError, match="sparsity must be in"):
        pruning.magnitude_mask(torch.ones(3), 1.2)
    with pytest.raises(ValueError, match="sparsity must be in"):
        pruning.prune_weights(model, 1.0)
    with pytest.raises(TypeError, match="sparsity"):
        pruning.prune_weights(model, "half")
    with pytest.raises(ValueError, match="no prunable weights"):
        pruning.prune_weights(nn.Sequential(nn.ReLU()), 0.5)
    with pytest.raises(ValueError, match="unknown layers"):
        pruning.prune_weights(model, {"fc9": 0.5})
    with pytest.raises(ValueError, match="scope"):
        pruning.prune_weights(model, 0.5, scope="row")
    with pytest.raises(ValueError, match="shape"):
        pruning.apply_masks_(model, {"fc1.weight": torch.ones(3, 3)})
    with pytest.raises(ValueError, match="keep must hold"):
        pruning.remove_channels(model, "conv1", torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="no following"):
        pruning.remove_channels(model, "fc2", torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="criterion"):
        pruning.prune_channels(model, {"conv1": 0.5}, "random")
    with pytest.raises(ValueError, match="needs data"):
        pruning.prune_channels(model, {"conv1": 0.5}, "taylor")
    with pytest.raises(ValueError, match="sparsity"):
        pruning.prune_channels(model, {"conv1": 1.0})
    with pytest.raises(ValueError, match="step"):
        pruning.cubic_sparsity(11, 10, 0.5)
    with pytest.raises(TypeError, match="keep must hold integer"):
        pruning.remove_channels(model, "conv1", torch.tensor([0.0, 2.7]))
    with pytest.raises(ValueError, match="sparsity must be in"):
        pruning.magnitude_mask(torch.ones(3), float("nan"))
    with pytest.raises(ValueError, match="NaN or inf"):
        pruning.magnitude_mask(torch.tensor([1.0, float("nan")]), 0.5)
    with pytest.raises(ValueError, match="max_drop"):
        pruning.choose_sparsities({"fc1": [(0.5, 0.9)]}, 0.9, float("nan"))
    with pytest.raises(TypeError, match="split"):
        pruning.sensitivity_scan(model, None, [0.5])


def test_a_bad_mask_changes_nothing():
    model = models.build("lenet5", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masks = {"conv1.weight": torch.zeros_like(model.conv1.weight), "fc1.weight": torch.ones(3, 3)}
    with pytest.raises(ValueError, match="fc1.weight"):
        pruning.apply_masks_(model, masks)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_taylor_importance_leaves_the_callers_gradients_alone():
    model = models.build("lenet5", seed=0)
    model(torch.randn(2, 1, 28, 28)).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    pruning.taylor_importance(model, "conv1", data.load("mnist", "validation").subset(50))
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())


def test_sparsities_for_target_prefers_cheap_weights_and_meets_the_target():
    scan = {"big": [(0.0, 0.99), (0.5, 0.98), (0.9, 0.97)],      # 1 point per step, 900 weights per step
            "small": [(0.9, 0.90), (0.0, 0.99), (0.5, 0.985)]}   # unsorted on purpose
    before = {k: list(v) for k, v in scan.items()}
    choice = pruning.sparsities_for_target(scan, {"big": 1000, "small": 100}, kept=0.2)
    # Per weight removed, big's steps cost 2e-5 and 2.5e-5, small's first step 1e-4: big goes to 0.9,
    # which already keeps (100 + 100) / 1100 <= 0.2, so small is never touched.
    assert choice == {"big": 0.9, "small": 0.0}
    assert scan == before
    with pytest.raises(ValueError, match="cannot keep"):
        pruning.sparsities_for_target(scan, {"big": 1000, "small": 100}, kept=0.05)
    with pytest.raises(ValueError, match="kept"):
        pruning.sparsities_for_target(scan, {"big": 1000, "small": 100}, kept=float("nan"))
    with pytest.raises(ValueError, match="sizes"):
        pruning.sparsities_for_target(scan, {"big": 1000}, kept=0.5)
