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
