"""Bad input found by trying about 335 calls on the newer modules: each case that once returned garbage or
failed deep inside torch or NumPy now raises a named error up front, with nothing changed."""
import numpy as np
import pytest
import torch
from torch import nn

from course_lib import data, deep_compression, deploy, distillation, lowrank, models, planner, quantization, train
from course_lib.model_distillation import fidelity
from course_lib.nas import darts

MNIST_FEW = data.ImageSplit(torch.rand(8, 1, 28, 28), torch.arange(8) % 10, "few", tuple("0123456789"))


def _colour_teacher():
    """A teacher built for 3-channel images, handed MNIST's 1-channel ones."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: darts.DartsNetwork(genotype=("sep3x3", "skip", "sep7x7")), ValueError,
     "genotype[2] must be one of ('zero', 'skip', 'sep3x3', 'sep5x5', 'conv3x3', 'maxpool3x3'), got 'sep7x7'"),
    (lambda: darts.DartsNetwork(genotype=("sep3x3", "skip")), ValueError, "genotype must be a tuple of 3 operation names"),
    (lambda: darts.make_op("conv7x7", 8), ValueError, "name must be one of"),
    (lambda: lowrank.rank_for_energy(torch.tensor([1.0, 2.0, 3.0]), 0.9), ValueError, "sorted largest first"),
    (lambda: lowrank.energy_kept(torch.tensor([3.0, 1.0, 2.0])), ValueError, "at index 2"),
    (lambda: deploy.quantize_linear(np.zeros(3, np.float32), 0.0, 0), ValueError, "scale must be a finite number > 0, got 0.0"),
    (lambda: deploy.quantize_linear(np.zeros(3, np.float32), float("nan"), 0), ValueError, "scale must be a finite"),
    (lambda: deploy.quantize_linear(np.zeros(3, np.float32), 0.1, 300), ValueError,
     "zero_point must be an int in [0, 255] (uint8 codes), got 300"),
    (lambda: deploy.quantize_multiplier(np.array([-0.5])), ValueError, "multiplier must hold finite numbers >= 0"),
    (lambda: deploy.quantize_multiplier(np.array([0.5, np.inf])), ValueError, "multiplier must hold finite numbers >= 0"),
    (lambda: deep_compression.choose_bits({"fc1": [(4, 1.5)]}, 0.98, 0.001), ValueError,
     "scan['fc1'][0] accuracy must be"),
    (lambda: deep_compression.choose_bits({"fc1": [(0, 0.9)]}, 0.98, 0.001), ValueError, "scan['fc1'][0] bits"),
    (lambda: deep_compression.choose_bits({"fc1": [0.9]}, 0.98, 0.001), ValueError, "must be a (bits, accuracy) pair"),
    (lambda: quantization.quantize_weight(torch.randn(4, 4), bits=1), ValueError, "use scheme='binary'"),
    (lambda: quantization.quantize_model(models.lenet_300_100(), 1, None), ValueError, "bits must be >= 2"),
    (lambda: distillation.distill(models.mlp([16]), MNIST_FEW, train.TrainingSettings(epochs=1),
                                  teacher=_colour_teacher(), progress=False),
     ValueError, "teacher cannot run on these images"),
    (lambda: fidelity(models.mlp([16]), _colour_teacher(), MNIST_FEW), ValueError, "teacher cannot run on these images"),
    (lambda: distillation.Ensemble([models.mlp([8]), nn.Sequential(nn.Flatten(), nn.Linear(784, 3))])(
        torch.rand(2, 1, 28, 28)), ValueError, "must give logits of one shape"),
    (lambda: planner.plan(0.8, "ESP32", table=()), ValueError, "table must include the reference row"),
    (lambda: planner.plan(0.8, "ESP32", table=("row",)), TypeError, "table must hold PlanRow items"),
])
def test_bad_input_is_named(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_a_failed_check_changes_nothing():
    student = models.mlp([16])
    before = {k: v.clone() for k, v in student.state_dict().items()}
    with pytest.raises(ValueError):
        distillation.distill(student, MNIST_FEW, train.TrainingSettings(epochs=1), teacher=_colour_teacher(),
                             progress=False)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())
    s = torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError):
        lowrank.rank_for_energy(s, 0.5)
    assert s.tolist() == [1.0, 2.0]
