import pytest
import torch

from course_lib import models, train


def test_fit_learns_and_is_repeatable(mnist_test):
    small = mnist_test.subset(2000)
    results = []
    for _ in range(2):
        model = models.build("lenet_300_100", seed=0)
        result = train.fit(model, small, 2, test=small, progress=False, seed=1)
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

    train.fit(model, small, 1, batch_size=64, after_step=keep_masked, progress=False)
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
        args = {"epochs": 1, **kwargs}
        epochs = args.pop("epochs")
        with pytest.raises(ValueError, match=name):
            train.fit(model, small, epochs, progress=False, **args)
    with pytest.raises(ValueError, match="batch_size"):
        train.evaluate(model, small, batch_size=0)


def test_default_device_is_a_device():
    assert train.default_device().type in ("cpu", "cuda", "mps")
