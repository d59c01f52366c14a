import pytest
import torch

from course_lib import models


@pytest.mark.parametrize("name, expected", [("lenet_300_100", 266_610), ("lenet5", 431_080),
                                            ("kd_teacher", 2_395_210)])
def test_parameter_counts_match_the_papers(name, expected):
    # Han et al. 2015 quote 267K and 431K weights; Hinton et al. 2015's teacher is 784-1200-1200-10.
    assert sum(p.numel() for p in models.build(name).parameters()) == expected


@pytest.mark.parametrize("name", sorted(models.ARCHITECTURES))
def test_every_model_maps_an_image_batch_to_ten_logits(name):
    assert models.build(name)(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_the_teachers_dropout_is_on_the_input_and_both_hidden_layers():
    # Hinton et al. 2012: 0.5 on the hidden layers, 0.2 on the input (mlp caps the input's rate at 0.2).
    assert [m.p for m in models.kd_teacher().modules() if isinstance(m, torch.nn.Dropout)] == [0.2, 0.5, 0.5]
    assert [m.p for m in models.kd_teacher(0.2).modules() if isinstance(m, torch.nn.Dropout)] == [0.2, 0.2, 0.2]
    assert not any(isinstance(m, torch.nn.Dropout) for m in models.kd_teacher(0.0).modules())
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1.0"):
        models.kd_teacher(1.0)


def test_build_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = models.build("lenet5", seed=3), models.build("lenet5", seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = models.build("lenet5", seed=4)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="architecture"):
        models.build("resnet50")
    with pytest.raises(ValueError, match="hidden_sizes"):
        models.mlp([])
    with pytest.raises(ValueError, match="dropout"):
        models.mlp([10], dropout=1.0)
    with pytest.raises(ValueError, match="widths"):
        models.small_cnn(widths=(8,))


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, error, fragment", [
    (lambda: models.build(None), ValueError, "architecture must be one of ['kd_student', 'kd_teacher', "
                                            "'lenet5', 'lenet_300_100', 'small_cnn', 'tiny_cnn'], got None"),
    (lambda: models.build("LeNet5"), ValueError, "got 'LeNet5'"),
    (lambda: models.build("lenet5", seed=1.0), TypeError, "seed must be an int in [0, 4294967295], got float 1.0"),
    (lambda: models.build("lenet5", seed=True), TypeError, "got bool"),
    (lambda: models.build("lenet5", seed=None), TypeError, "seed"),
    (lambda: models.build("lenet5", seed=-1), ValueError, "seed must be an int in [0, 4294967295], got -1"),
    (lambda: models.build("lenet5", seed=2 ** 32), ValueError, "seed"),
    (lambda: models.mlp([300, 2.5]), ValueError, "hidden_sizes must be a non-empty list of positive ints, got [300, 2.5]"),
    (lambda: models.mlp([True]), ValueError, "hidden_sizes"),
    (lambda: models.mlp("300"), ValueError, "hidden_sizes"),
    (lambda: models.mlp([0]), ValueError, "hidden_sizes"),
    (lambda: models.mlp([10], dropout=float("nan")), ValueError, "dropout must be a number in [0, 1), got nan"),
    (lambda: models.mlp([10], dropout=-0.1), ValueError, "dropout"),
    (lambda: models.mlp([10], dropout="0.5"), TypeError, "dropout must be a number in [0, 1), got str"),
    (lambda: models.mlp([10], in_features=0), ValueError, "in_features must be an int >= 1, got 0"),
    (lambda: models.mlp([10], num_classes=10.0), TypeError, "num_classes must be an int >= 1"),
    (lambda: models.kd_student(0), ValueError, "hidden must be an int >= 1, got 0"),
    (lambda: models.kd_student(800.0), TypeError, "hidden must be an int >= 1, got float"),
    (lambda: models.small_cnn(widths=(8, 16, 32)), ValueError, "widths must be 2 positive ints, got (8, 16, 32)"),
    (lambda: models.small_cnn(widths=(8, 1.5)), ValueError, "widths"),
    (lambda: models.small_cnn(hidden=-1), ValueError, "hidden must be an int >= 1, got -1"),
])
def test_bad_input_raises_a_named_error(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_nothing_changes_on_error():
    state = torch.get_rng_state()
    table = dict(models.ARCHITECTURES)
    for call in (lambda: models.build("lenet5", seed=float("nan")), lambda: models.build("resnet")):
        with pytest.raises((TypeError, ValueError)):
            call()
    assert torch.equal(torch.get_rng_state(), state) and models.ARCHITECTURES == table
