import dataclasses

import pytest
import torch

from course_lib import models, train

SETTINGS = {f.name for f in dataclasses.fields(train.TrainingSettings)}


def _fit(model, split, **kwargs):
    """train.fit with the settings among ``kwargs`` gathered into a TrainingSettings (made inside the
    call, so that a bad setting raises there too)."""
    settings = train.TrainingSettings(**{k: v for k, v in kwargs.items() if k in SETTINGS})
    return train.fit(model, split, settings,
                     **{k: v for k, v in kwargs.items() if k not in SETTINGS})


def test_fit_learns_and_is_repeatable(mnist_test):
    small = mnist_test.subset(2000)
    results = []
    for _ in range(2):
        model = models.build("lenet_300_100", seed=0)
        result = train.fit(model, small, train.TrainingSettings(epochs=2, seed=1), validation=small, progress=False)
        results.append((result.final.accuracy, model.fc1.weight.sum().item()))
    assert results[0] == results[1]
    assert results[0][0] > 0.8          # chance is 0.1
    assert len(result.history) == 2 and result.history[0]["lr"] == pytest.approx(1e-3)


def test_after_step_hook_runs_after_each_optimizer_step(mnist_test):
    small = mnist_test.subset(256)
    model = models.build("lenet_300_100")
    mask = (torch.rand_like(model.fc1.weight) > 0.5).float()
    calls = []

    def keep_masked(m):
        calls.append(1)
        with torch.no_grad():
            m.fc1.weight.mul_(mask)

    train.fit(model, small, train.TrainingSettings(epochs=1, batch_size=64), after_step=keep_masked, progress=False)
    assert len(calls) == 4
    assert torch.all(model.fc1.weight[mask == 0] == 0)


def test_evaluate_reports_accuracy_and_error(mnist_test):
    model = models.build("lenet_300_100")
    ev = train.evaluate(model, mnist_test.subset(500))
    assert 0 <= ev.accuracy <= 1 and ev.error == pytest.approx(1 - ev.accuracy) and ev.n == 500


def test_bad_arguments_are_named(mnist_test):
    model = models.build("lenet_300_100")
    small = mnist_test.subset(10)
    for kwargs, name in [({"epochs": -1}, "epochs"), ({"lr": 0}, "lr"),
                         ({"optimizer": "rmsprop"}, "optimizer"),
                         ({"lr_schedule": "step"}, "lr_schedule"), ({"batch_size": 0}, "batch_size")]:
        with pytest.raises(ValueError, match=name):
            _fit(model, small, progress=False, **{"epochs": 1, **kwargs})
    with pytest.raises(ValueError, match="batch_size"):
        train.evaluate(model, small, batch_size=0)


def test_default_device_is_a_device():
    assert train.default_device().type in ("cpu", "cuda", "mps")


# ----------------------------------------------------------------------------- bad input

@pytest.fixture(scope="module")
def tiny(mnist_test):
    return mnist_test.subset(8)


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"epochs": 1.5}, TypeError, "epochs must be an int >= 0, got float 1.5"),
    ({"epochs": True}, TypeError, "epochs must be an int >= 0, got bool"),
    ({"epochs": -1}, ValueError, "epochs must be an int >= 0, got -1"),
    ({"lr": float("nan")}, ValueError, "lr must be a finite number in (0, inf), got nan"),
    ({"lr": float("inf")}, ValueError, "lr must be a finite number in (0, inf), got inf"),
    ({"lr": 0.0}, ValueError, "lr must be a finite number in (0, inf), got 0.0"),
    ({"lr": "1e-3"}, TypeError, "lr must be a finite number"),
    ({"weight_decay": -1e-4}, ValueError, "weight_decay must be a finite number in [0, inf), got -0.0001"),
    ({"weight_decay": float("nan")}, ValueError, "weight_decay"),
    ({"momentum": 1.0}, ValueError, "momentum must be a finite number in [0, 1), got 1.0"),
    ({"momentum": float("nan")}, ValueError, "momentum"),
    ({"momentum": None}, TypeError, "momentum"),
    ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1, got 0"),
    ({"batch_size": 32.0}, TypeError, "batch_size"),
    ({"max_shift": -1}, ValueError, "max_shift must be an int >= 0, got -1"),
    ({"max_shift": 0.5}, TypeError, "max_shift"),
    ({"seed": 1.0}, TypeError, "seed must be an int in [0, 4294967295], got float"),
    ({"seed": -1}, ValueError, "seed must be an int in [0, 4294967295], got -1"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of ('adam', 'sgd'), got 'rmsprop'"),
    ({"lr_schedule": None}, ValueError, "lr_schedule must be one of"),
    ({"after_step": "prune"}, TypeError, "after_step must be a callable or None, got str"),
    ({"loss_fn": 1}, TypeError, "loss_fn must be a callable or None, got int"),
    ({"validation": "mnist/validation"}, TypeError, "validation must be an ImageSplit (from data.load) or None, got str"),
    ({"device": "gpu"}, ValueError, "device must name a torch device"),
    ({"progress": 0}, TypeError, "progress must be True or False"),
    ({"epochs": None}, TypeError, "epochs must be an int >= 0, got None"),
])
def test_fit_rejects_bad_arguments_by_name(tiny, kwargs, error, fragment):
    with pytest.raises(error) as info:
        _fit(models.build("lenet_300_100"), tiny, **{"epochs": 1, "progress": False, **kwargs})
    assert fragment in str(info.value)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda m, s: train.fit("lenet", s, train.TrainingSettings(1)), TypeError, "model must be a torch.nn.Module, got str"),
    (lambda m, s: train.fit(m, (s.images, s.labels), train.TrainingSettings(1)), TypeError, "train must be an ImageSplit"),
    (lambda m, s: train.fit(m, s, 1), TypeError,
     "settings must be a TrainingSettings (train.TrainingSettings(epochs=...)), got int"),
    (lambda m, s: train.fit(m, s, {"epochs": 1}), TypeError, "settings must be a TrainingSettings"),
    (lambda m, s: train.fine_tune(m, s, dataclasses.replace(train.FINE_TUNING, lr=float("nan")), progress=False),
     ValueError, "lr must be a finite"),
    (lambda m, s: train.fine_tune(m, s, train.TrainingSettings(-2), progress=False), ValueError, "epochs"),
    (lambda m, s: train.evaluate(m, s.images), TypeError, "split must be an ImageSplit"),
    (lambda m, s: train.evaluate(None, s), TypeError, "model must be a torch.nn.Module"),
    (lambda m, s: train.evaluate(m, s, batch_size=2.5), TypeError, "batch_size must be an int >= 1"),
    (lambda m, s: train.predict_logits(m, s), TypeError, "images must be a (N, ...) tensor"),
    (lambda m, s: train.predict_logits(m, s.images[:0]), ValueError, "images must hold at least one example"),
    (lambda m, s: train.predict_logits(m, torch.full((1, 1, 28, 28), float("nan"))), ValueError, "NaN or inf"),
    (lambda m, s: train.predict_logits(m, s.images, batch_size=0), ValueError, "batch_size must be an int >= 1, got 0"),
    (lambda m, s: train.predict_logits(lambda x: x, s.images), TypeError, "model must be a torch.nn.Module"),
    (lambda m, s: train.model_device("cpu"), TypeError, "model must be a torch.nn.Module"),
    (lambda m, s: train.seed_everything(2 ** 32), ValueError, "seed must be an int in [0, 4294967295]"),
    (lambda m, s: train.seed_everything(0.5), TypeError, "seed"),
])
def test_other_functions_reject_bad_arguments_by_name(tiny, call, error, fragment):
    with pytest.raises(error) as info:
        call(models.build("lenet_300_100"), tiny)
    assert fragment in str(info.value)


@pytest.mark.parametrize("kwargs", [{"lr": float("nan")}, {"momentum": 1.5, "optimizer": "sgd"},
                                    {"weight_decay": float("inf")}, {"device": "gpu"},
                                    {"after_step": 3}])
def test_nothing_changes_on_error(tiny, kwargs):
    model = models.build("lenet_300_100", seed=0).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    with pytest.raises((TypeError, ValueError)):
        _fit(model, tiny, epochs=1, progress=False, **kwargs)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert model.training and torch.equal(torch.get_rng_state(), state)


def test_settings_vary_with_replace_and_fine_tuning_has_its_defaults():
    settings = train.TrainingSettings(epochs=3, lr=5e-3)
    assert dataclasses.replace(settings, seed=4) == train.TrainingSettings(epochs=3, lr=5e-3, seed=4)
    assert (train.FINE_TUNING.epochs, train.FINE_TUNING.lr) == (1, 1e-4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lr = 1.0
