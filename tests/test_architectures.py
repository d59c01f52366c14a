import dataclasses
import io
import json
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models._utils import _make_divisible

from course_lib import architectures as A
from course_lib import experiments, measure

Stage, Architecture = A.Stage, A.Architecture


def measured(model: nn.Module, input_shape) -> A.Costs:
    return A.Costs(measure.count_parameters(model), measure.count_macs(model, input_shape))


def flop_counter_macs(model: nn.Module, input_shape) -> int:
    with FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, *input_shape))
    return counter.get_total_flops() // 2


def with_batch_norm_statistics(model: nn.Module, input_shape, seed: int = 0) -> nn.Module:
    """Give the batch norms running statistics that are not the identity, then eval mode."""
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, *input_shape, generator=generator) * 2 + 0.5)
    return model.eval()


# ----------------------------------------------------------------------------- sizes and widths

def test_make_divisible_hand_cases_and_torchvision():
    assert [A.make_divisible(v) for v in (32, 16, 11.2, 4, 12, 20)] == [32, 16, 16, 8, 16, 24]
    assert A.make_divisible(5.4, 1) == 5 and A.make_divisible(0.2, 1) == 1
    for v in np.linspace(0.1, 200, 457):
        for d in (1, 2, 4, 8, 16):
            assert A.make_divisible(float(v), d) == _make_divisible(float(v), d)


@given(st.floats(0.01, 1000), st.integers(1, 16))
def test_make_divisible_properties(value, divisor):
    w = A.make_divisible(value, divisor)
    assert w % divisor == 0 and w >= divisor and w >= 0.9 * value


@settings(max_examples=60)
@given(size=st.integers(1, 30), kernel=st.sampled_from([1, 3, 5, 7]), stride=st.integers(1, 4))
def test_conv_output_size_matches_torch_and_is_ceil(size, kernel, stride):
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=kernel // 2)
    assert A.conv_output_size(size, kernel, stride) == conv(torch.zeros(1, 1, size, size)).shape[-1]
    assert A.conv_output_size(size, kernel, stride) == math.ceil(size / stride)
    assert A.conv_output_size(10, 3, 2, padding=0) == 4


def test_channel_shuffle_by_hand_and_as_a_permutation():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    before = x.clone()
    assert A.channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert A.channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    assert torch.equal(x, before)
    y = torch.randn(2, 12, 3, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(A.channel_shuffle(A.channel_shuffle(y, 3), 4), y)     # g then C/g: the inverse
    assert torch.equal(A.channel_shuffle(y, 1), y)
    assert torch.equal(A.ChannelShuffle(3)(y), A.channel_shuffle(y, 3))


def test_shuffle_bottleneck_and_se_channels():
    assert A.shuffle_bottleneck(48, 4) == 12 and A.shuffle_bottleneck(24, 4) == 8
    assert A.shuffle_bottleneck(8, 4) == 4 and A.shuffle_bottleneck(240, 3) == 60
    assert A.se_channels(64) == 16 and A.se_channels(3) == 1


# ----------------------------------------------------------------------------- cost formulas

def test_block_costs_by_hand():
    # separable 32 -> 64, 3x3, 14x14: depthwise 32*9 + bn 64, pointwise 32*64 + bn 128
    sep = A.block_costs("separable", 32, 64, (14, 14))
    assert sep == A.Costs(288 + 64 + 2048 + 128, 196 * 32 * (9 + 64))
    conv = A.block_costs("conv", 32, 64, (14, 14))
    assert conv == A.Costs(64 * 32 * 9 + 128, 196 * 64 * 32 * 9)
    assert sep.macs / conv.macs == pytest.approx(1 / 64 + 1 / 9)
    # inverted residual 16 -> 24, t=4, stride 2 on 28x28: the expansion runs at 28x28
    ir = A.block_costs("inverted_residual", 16, 24, (28, 28), stride=2, expansion=4)
    assert ir == A.Costs(16 * 64 + 128 + 64 * 9 + 128 + 64 * 24 + 48,
                         784 * 16 * 64 + 196 * 64 * 9 + 196 * 64 * 24)
    # residual 16 -> 32, stride 2: two 3x3 convolutions and a 1x1 projection shortcut
    res = A.block_costs("residual", 16, 32, (28, 28), stride=2)
    assert res == A.Costs(16 * 32 * 9 + 32 * 32 * 9 + 128 + 16 * 32 + 64, 196 * (4608 + 9216 + 512))
    # shuffle 16 -> 64, 4 groups, stride 2: bottleneck 16, branch 64 - 16 = 48
    shuffle = A.block_costs("shuffle", 16, 64, (28, 28), stride=2, groups=4)
    assert shuffle == A.Costs(16 * 16 // 4 + 32 + 16 * 9 + 32 + 16 * 48 // 4 + 96,
                              784 * 16 * 16 // 4 + 196 * 16 * 9 + 196 * 16 * 48 // 4)
    assert A.se_costs(64) == A.Costs(2 * 64 * 16 + 16 + 64, 2 * 64 * 16)
    assert A.block_costs("conv", 8, 8, (5, 5), se=True) == A.block_costs("conv", 8, 8, (5, 5)) + A.se_costs(8)
    # and the modules agree
    for block, c_in, c_out, size, kw, costs in [
            ("separable", 32, 64, 14, {}, sep), ("inverted_residual", 16, 24, 28, dict(stride=2, expansion=4), ir),
            ("residual", 16, 32, 28, dict(stride=2), res), ("shuffle", 16, 64, 28, dict(stride=2, groups=4), shuffle)]:
        assert measured(A.make_block(block, c_in, c_out, **kw), (c_in, size, size)) == costs


def test_conv_costs_counts_groups_bias_and_stride():
    assert A.conv_costs(8, 16, 3, (5, 5)) == A.Costs(16 * 8 * 9, 25 * 16 * 8 * 9)
    assert A.conv_costs(8, 16, 3, (5, 5), groups=4) == A.Costs(16 * 2 * 9, 25 * 16 * 2 * 9)
    assert A.conv_costs(8, 8, 3, (5, 5), groups=8) == A.Costs(8 * 9, 25 * 8 * 9)    # depthwise
    assert A.conv_costs(8, 16, 1, (1, 1), bias=True) == A.Costs(8 * 16 + 16, 8 * 16)
    assert A.batch_norm_costs(16) == A.Costs(32, 0)
    assert A.Costs(1, 2) + A.Costs(3, 4) == A.Costs(4, 6)


block_arguments = st.fixed_dictionaries(dict(
    block=st.sampled_from(A.BLOCK_TYPES), in_channels=st.integers(1, 24), out_channels=st.integers(1, 32),
    kernel=st.sampled_from([1, 3, 5]), stride=st.integers(1, 3), expansion=st.integers(1, 4),
    groups=st.sampled_from([1, 2, 3, 4]), se=st.booleans()))


@settings(max_examples=150)
@given(args=block_arguments, height=st.integers(1, 11), width=st.integers(1, 11))
def test_block_costs_match_measure_or_both_refuse(args, height, width):
    try:
        A.check_block(**args)
    except ValueError:
        with pytest.raises(ValueError):
            A.make_block(**args)
        with pytest.raises(ValueError):
            A.block_costs(input_size=(height, width), **args)
        return
    block = A.make_block(**args).eval()
    shape = (args["in_channels"], height, width)
    costs = A.block_costs(input_size=(height, width), **args)
    assert measured(block, shape) == costs
    assert measure.count_macs(block, shape) == flop_counter_macs(block, shape)
    assert measure.peak_activation_bytes(block, shape) > 0
    y = block(torch.randn(2, *shape))
    s = args["stride"]
    assert y.shape == (2, args["out_channels"], math.ceil(height / s), math.ceil(width / s))


@settings(max_examples=100)
@given(c_in=st.integers(1, 64), n=st.integers(1, 256), kernel=st.sampled_from([1, 3, 5, 7]),
       size=st.integers(1, 32), stride=st.integers(1, 3))
def test_separable_to_standard_ratio_is_mobilenet_eq5(c_in, n, kernel, size, stride):
    sep = A.block_costs("separable", c_in, n, (size, size), kernel, stride).macs
    standard = A.block_costs("conv", c_in, n, (size, size), kernel, stride).macs
    assert sep * n * kernel ** 2 == standard * (kernel ** 2 + n)          # exact, in integers
    assert sep / standard == pytest.approx(A.separable_ratio(n, kernel))
    assert A.separable_ratio(64, 3) == pytest.approx(0.12674, abs=1e-5)   # 7.9x fewer MACs


# ----------------------------------------------------------------------------- blocks

def test_blocks_shapes_and_residual_rules():
    x = torch.randn(2, 16, 9, 9)
    assert A.ConvBlock(16, 24, stride=2)(x).shape == (2, 24, 5, 5)
    assert A.SeparableBlock(16, 24, kernel=5)(x).shape == (2, 24, 9, 9)
    assert A.InvertedResidualBlock(16, 16)(x).shape == (2, 16, 9, 9)
    assert A.InvertedResidualBlock(16, 16).use_residual
    assert not A.InvertedResidualBlock(16, 16, stride=2).use_residual
    assert not A.InvertedResidualBlock(16, 24).use_residual
    assert "expand" not in dict(A.InvertedResidualBlock(16, 16, expansion=1).layers.named_children())
    project = A.InvertedResidualBlock(16, 16).layers.project
    assert [type(m) for m in project] == [nn.Conv2d, nn.BatchNorm2d]          # linear: no activation
    assert A.ResidualBlock(16, 16).shortcut is None
    assert A.ResidualBlock(16, 32, stride=2)(x).shape == (2, 32, 5, 5)
    assert A.ShuffleBlock(16, 16, groups=4)(x).shape == (2, 16, 9, 9)
    shuffle = A.ShuffleBlock(16, 64, stride=2, groups=4)
    assert shuffle(x).shape == (2, 64, 5, 5) and shuffle.branch.gconv2.conv.out_channels == 48
    assert A.SqueezeExcite(16)(x).shape == x.shape


def test_inverted_residual_adds_its_input():
    block = A.InvertedResidualBlock(8, 8, expansion=2).eval()
    with torch.no_grad():
        block.layers.project.bn.weight.zero_()
        block.layers.project.bn.bias.zero_()
    x = torch.randn(3, 8, 6, 6)
    assert torch.equal(block(x), x)                   # the branch gives 0: the block is the identity


def test_squeeze_excite_rescales_each_channel_by_a_gate():
    se = A.SqueezeExcite(8).eval()
    x = torch.rand(2, 8, 5, 5) + 0.1
    ratio = se(x) / x                                 # (B, C, H, W): constant over H, W, in (0, 1)
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio))
    assert (ratio > 0).all() and (ratio < 1).all()


# ----------------------------------------------------------------------------- descriptions

def test_layout_of_the_baseline_and_its_half_width():
    rows = A.layout(A.FASHION_FAMILY["cnn_x1_0"])
    assert [r.name for r in rows] == ["stage1.block1", "stage2.block1", "stage3.block1", "stage4.block1"]
    assert [(r.in_channels, r.out_channels) for r in rows] == [(16, 32), (32, 32), (32, 64), (64, 64)]
    assert [r.output_size for r in rows] == [(14, 14), (14, 14), (7, 7), (7, 7)]
    half = A.layout(A.FASHION_FAMILY["cnn_x0_5"])
    assert [(r.in_channels, r.out_channels) for r in half] == [(8, 16), (16, 16), (16, 32), (32, 32)]
    two = A.layout(Architecture((Stage("inverted_residual", 24, depth=3, stride=2, expansion=6),)))
    assert [(r.stride, r.in_channels, r.input_size) for r in two] == [(2, 16, (28, 28)), (1, 24, (14, 14)),
                                                                      (1, 24, (14, 14))]


def test_model_names_shapes_and_heads():
    a = Architecture((Stage("separable", 32, stride=2), Stage("residual", 48, depth=2, stride=2)))
    model = A.build_model(a)
    assert list(dict(model.named_children())) == ["stem", "stage1", "stage2", "pool", "flatten", "fc"]
    assert list(dict(model.stage2.named_children())) == ["block1", "block2"]
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    flat = A.build_model(dataclasses.replace(a, head="flatten", num_classes=7))
    assert "pool" not in dict(flat.named_children()) and flat.fc.in_features == 48 * 7 * 7
    assert flat(torch.zeros(2, 1, 28, 28)).shape == (2, 7)
    small = dataclasses.replace(a, resolution_multiplier=0.5)
    assert small.resolution == (14, 14) and isinstance(A.build_model(small).resize, nn.Upsample)
    assert A.build_model(small)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    rgb = Architecture((Stage("conv", 8, stride=2),), input_shape=(3, 32, 20))
    assert A.build_model(rgb)(torch.zeros(1, 3, 32, 20)).shape == (1, 10)


def test_multipliers_scale_cost_by_their_squares():
    base = A.architecture_costs(A.FASHION_FAMILY["separable_x1_0"]).macs
    for rho in (0.5, 0.75):
        a = dataclasses.replace(A.FASHION_FAMILY["separable_x1_0"], resolution_multiplier=rho)
        assert A.architecture_costs(a).macs / base == pytest.approx(rho ** 2, rel=0.2)
    wide = A.architecture_costs(Architecture((Stage("conv", 64), Stage("conv", 64)), stem_width=64,
                                             width_divisor=1, width_multiplier=0.5)).macs
    narrow = A.architecture_costs(Architecture((Stage("conv", 64), Stage("conv", 64)), stem_width=64,
                                               width_divisor=1)).macs
    assert wide / narrow == pytest.approx(0.25, rel=0.05)


def test_description_round_trips_through_json_and_is_hashable():
    for a in A.FASHION_FAMILY.values():
        text = json.dumps(a.to_dict())
        assert Architecture.from_dict(json.loads(text)) == a
    assert len({*A.FASHION_FAMILY.values(), *A.FASHION_FAMILY.values()}) == len(A.FASHION_FAMILY)
    listed = Architecture([Stage("conv", 8)], input_shape=[1, 28, 28])
    assert listed.stages == (Stage("conv", 8),) and listed.input_shape == (1, 28, 28)
    assert hash(listed) == hash(Architecture((Stage("conv", 8),)))
    partial = Architecture.from_dict({"stages": [{"block": "conv", "width": 8}]})
    assert partial == listed


bad_descriptions = [
    (lambda: Stage("dense", 8), ValueError, "Stage.block must be one of"),
    (lambda: Stage("conv", 0), ValueError, "Stage.width must be an int >= 1, got 0"),
    (lambda: Stage("conv", 16.0), TypeError, "Stage.width must be an int"),
    (lambda: Stage("conv", 8, stride=0), ValueError, "Stage.stride must be an int >= 1, got 0"),
    (lambda: Stage("conv", 8, depth=True), TypeError, "Stage.depth"),
    (lambda: Stage("conv", 8, kernel=4), ValueError, "Stage.kernel must be odd"),
    (lambda: Stage("conv", 8, expansion=4), ValueError, "expansion applies to 'inverted_residual'"),
    (lambda: Stage("separable", 8, groups=2), ValueError, "groups applies to 'conv' and 'shuffle'"),
    (lambda: Stage("conv", 8, se=1), TypeError, "Stage.se must be True or False"),
    (lambda: Architecture(()), ValueError, "stages must hold at least one Stage"),
    (lambda: Architecture(Stage("conv", 8)), TypeError, "stages must be a non-empty list of Stage"),
    (lambda: Architecture(({"block": "conv", "width": 8},)), TypeError, r"stages\[0\] must be a Stage"),
    (lambda: Architecture((Stage("conv", 32, groups=3),)), ValueError,
     r"stages\[0\] \(conv\), block 1 of 1, 16 -> 32 channels: groups=3 must divide"),
    (lambda: Architecture((Stage("shuffle", 48, stride=2, groups=4),), stem_width=10, width_divisor=1),
     ValueError, "groups=4 must divide a shuffle unit's in_channels=10"),
    (lambda: Architecture((Stage("shuffle", 32, groups=2),)), ValueError, "must equal in_channels=16"),
    (lambda: Architecture((Stage("shuffle", 16, stride=2, groups=2),)), ValueError, "must exceed in_channels=16"),
    (lambda: Architecture((Stage("conv", 8),), width_multiplier=0), ValueError,
     r"width_multiplier must be a finite number in \(0, inf\), got 0"),
    (lambda: Architecture((Stage("conv", 8),), width_multiplier=-0.5), ValueError, "width_multiplier"),
    (lambda: Architecture((Stage("conv", 8),), resolution_multiplier=1.5), ValueError,
     r"resolution_multiplier must be a finite number in \(0, 1\], got 1.5"),
    (lambda: Architecture((Stage("conv", 8, stride=2),) * 6), ValueError,     # 28 -> 14 -> 7 -> 4 -> 2 -> 1
     r"stages\[5\] \(conv\), block 1 of 1 has stride 2 but its input is only 1x1: the strides shrink the "
     r"28x28 image below 1x1"),
    (lambda: Architecture((Stage("conv", 8, stride=3),) * 4), ValueError, "only 2x2: the strides shrink"),
    (lambda: Architecture((Stage("conv", 8, stride=2),), resolution_multiplier=0.02), ValueError,
     "shrink the 1x1 image below 1x1"),
    (lambda: Architecture((Stage("conv", 8),), stem_stride=40), ValueError, "stem_stride 40 shrinks"),
    (lambda: Architecture((Stage("conv", 8),), head="fc"), ValueError, "head must be one of"),
    (lambda: Architecture((Stage("conv", 8),), input_shape=(28, 28)), ValueError, "input_shape must be"),
    (lambda: Architecture((Stage("conv", 8),), num_classes=0), ValueError, "num_classes"),
    (lambda: Architecture((Stage("conv", 8),), width_divisor=0), ValueError, "width_divisor"),
    (lambda: Architecture.from_dict({"stages": [{"block": "conv", "width": 8, "kernal": 3}]}), ValueError,
     r"data\['stages'\]\[0\] has unknown field\(s\) \['kernal'\]"),
    (lambda: Architecture.from_dict({"stages": [], "alpha": 0.5}), ValueError, r"unknown field\(s\) \['alpha'\]"),
    (lambda: Architecture.from_dict([]), TypeError, "data must be a dict"),
    (lambda: A.build_model("cnn_x1_0"), TypeError, "architecture must be an Architecture"),
    (lambda: A.build_model(A.FASHION_FAMILY["cnn_x1_0"], seed=-1), ValueError, "seed"),
    (lambda: A.build_model(A.FASHION_FAMILY["cnn_x1_0"], seed=1.0), TypeError, "seed"),
    (lambda: A.layout({"stages": []}), TypeError, "architecture must be an Architecture"),
    (lambda: A.architecture_costs(None), TypeError, "architecture must be an Architecture"),
    (lambda: A.block_costs("conv", 8, 8, (0, 5)), ValueError, "input_size must be a"),
    (lambda: A.block_costs("dense", 8, 8, (5, 5)), ValueError, "block must be one of"),
    (lambda: A.make_block("conv", 8, 12, groups=8), ValueError, "groups=8 must divide"),
    (lambda: A.ShuffleBlock(16, 24, stride=2, groups=3), ValueError, "groups=3 must divide"),
    (lambda: A.InvertedResidualBlock(16, 16, expansion=0), ValueError, "expansion must be an int >= 1"),
    (lambda: A.conv_costs(6, 8, 3, (5, 5), groups=4), ValueError, "groups=4 must divide"),
    (lambda: A.conv_output_size(2, 7, padding=0), ValueError, "larger than the padded input"),
    (lambda: A.make_divisible(0), ValueError, "value must be a finite number"),
    (lambda: A.make_divisible(8, 0), ValueError, "divisor must be an int >= 1"),
    (lambda: A.channel_shuffle(torch.zeros(1, 6, 2, 2), 4), ValueError, "divisible by groups=4"),
    (lambda: A.channel_shuffle(torch.zeros(6, 2, 2), 2), ValueError, r"\(B, C, H, W\)"),
    (lambda: A.separable_ratio(0, 3), ValueError, "out_channels"),
    (lambda: A.plain_and_residual(21), ValueError, "depth must be 6n \\+ 2"),
    (lambda: A.plain_and_residual(2), ValueError, "depth must be an int >= 8"),
    (lambda: A.plain_and_residual(20, width=0), ValueError, "width must be an int >= 1"),
    (lambda: A.conv_bn(8, 8, 3, activation="gelu"), ValueError, "activation must be one of"),
]


@pytest.mark.parametrize("call, error, fragment", bad_descriptions)
def test_bad_input_raises_a_named_error(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call()


def test_nothing_is_built_and_no_randomness_drawn_on_error():
    state = torch.random.get_rng_state()
    with pytest.raises(ValueError):
        A.build_model(A.FASHION_FAMILY["cnn_x1_0"], seed=2 ** 32)
    with pytest.raises(ValueError):
        dataclasses.replace(A.FASHION_FAMILY["shufflenet_x1_0"], width_divisor=3)
    assert torch.equal(torch.random.get_rng_state(), state)


# ----------------------------------------------------------------------------- building and costing

def test_seeded_construction_is_deterministic_and_leaves_the_global_rng_alone():
    a = A.FASHION_FAMILY["mobilenet_v2_x0_5"]
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    m1, m2, m3 = A.build_model(a, seed=7), A.build_model(a, seed=7), A.build_model(a, seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not torch.equal(s1["stem.conv.weight"], s3["stem.conv.weight"])


architecture_strategy = st.builds(
    lambda blocks, widths, depths, strides, kernels, se, head, alpha, rho, stem, shape: (
        [dict(block=b, width=w, depth=d, stride=s, kernel=k, se=e,
              expansion=3 if b == "inverted_residual" else 1, groups=2 if b == "shuffle" else 1)
         for b, w, d, s, k, e in zip(blocks, widths, depths, strides, kernels, se)],
        dict(head=head, width_multiplier=alpha, resolution_multiplier=rho, stem_width=stem, input_shape=shape)),
    blocks=st.lists(st.sampled_from(A.BLOCK_TYPES), min_size=1, max_size=3),
    widths=st.lists(st.sampled_from([8, 16, 24, 32]), min_size=3, max_size=3),
    depths=st.lists(st.integers(1, 2), min_size=3, max_size=3),
    strides=st.lists(st.integers(1, 2), min_size=3, max_size=3),
    kernels=st.lists(st.sampled_from([1, 3, 5]), min_size=3, max_size=3),
    se=st.lists(st.booleans(), min_size=3, max_size=3),
    head=st.sampled_from(A.HEADS), alpha=st.sampled_from([0.5, 1.0, 1.5]),
    rho=st.sampled_from([0.5, 0.75, 1.0]), stem=st.sampled_from([8, 16]),
    shape=st.sampled_from([(1, 12, 12), (3, 16, 10), (1, 20, 20)]))


@settings(max_examples=40)
@given(architecture_strategy)
def test_architecture_costs_match_measure_for_random_descriptions(description):
    stages, options = description
    try:
        a = Architecture(tuple(Stage(**s) for s in stages), **options)
    except ValueError:
        assume(False)
    model = A.build_model(a)
    assert A.architecture_costs(a) == measured(model, a.input_shape)
    assert model(torch.zeros(2, *a.input_shape)).shape == (2, a.num_classes)


@pytest.mark.parametrize("name", sorted(A.FASHION_FAMILY))
def test_family_members_are_measured_consistently(name):
    a = A.FASHION_FAMILY[name]
    model = A.build_model(a)
    assert A.architecture_costs(a) == measured(model, a.input_shape)
    assert measure.count_macs(model) == flop_counter_macs(model, a.input_shape)
    assert measure.count_parameters(model) == sum(p.numel() for p in model.parameters())
    report = measure.report(model, name, number_format="int8")
    assert report.macs == A.architecture_costs(a).macs and report.peak_activation_bytes > 0


def test_peak_activations_of_the_baseline_by_hand():
    model = A.build_model(A.FASHION_FAMILY["cnn_x1_0"])
    # stage1's conv reads the stem's (16, 28, 28) and writes (32, 14, 14)
    assert measure.peak_activation_bytes(model, number_format="int8") == 16 * 784 + 32 * 196


def test_family_sizes_suit_a_two_core_cpu():
    costs = {name: A.architecture_costs(a) for name, a in A.FASHION_FAMILY.items()}
    designs = ("cnn", "separable", "separable_fc", "mobilenet_v2", "resnet", "shufflenet")
    assert sorted(costs) == sorted(f"{d}_x{w}" for d in designs for w in ("1_0", "0_5"))
    baseline = costs["cnn_x1_0"].macs
    assert 1e6 <= baseline <= 20e6 and 1e6 <= costs["resnet_x1_0"].macs <= 20e6
    assert baseline / costs["separable_x1_0"].macs >= 5
    assert baseline / costs["mobilenet_v2_x0_5"].macs >= 5
    assert baseline / costs["separable_fc_x1_0"].macs >= 5
    assert all(c.macs < baseline * 1.1 for c in costs.values())
    for design in designs:
        assert costs[f"{design}_x0_5"].macs < costs[f"{design}_x1_0"].macs


def test_separable_fc_differs_from_separable_only_in_its_head():
    pooled, flat = A.FASHION_FAMILY["separable_x1_0"], A.FASHION_FAMILY["separable_fc_x1_0"]
    assert flat.stages == pooled.stages and (pooled.head, flat.head) == ("avgpool", "flatten")
    # the fully connected layer reads 64 channels x 7 x 7 positions instead of 64 pooled channels
    extra = 64 * 49 * 10 - 64 * 10
    assert A.architecture_costs(flat).parameters - A.architecture_costs(pooled).parameters == extra
    assert A.architecture_costs(flat).macs - A.architecture_costs(pooled).macs == extra


def test_family_exports_to_onnx_and_matches_torch():
    import onnxruntime as ort

    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    cases = dict(A.FASHION_FAMILY)
    cases["se_flatten_rho"] = Architecture(
        (Stage("conv", 16, se=True), Stage("separable", 24, stride=2, se=True),
         Stage("inverted_residual", 24, expansion=3, se=True), Stage("residual", 32, stride=2, se=True),
         Stage("shuffle", 64, stride=2, groups=2, se=True)), head="flatten", resolution_multiplier=0.75)
    for name, a in cases.items():
        model = with_batch_norm_statistics(A.build_model(a), a.input_shape)
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x[:1],), buffer, opset_version=17, dynamo=False,
                              input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
        session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
        got = session.run(None, {"x": x.numpy()})[0]
        with torch.no_grad():
            expected = model(x).numpy()
        assert got.shape == (3, 10), name
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=name)


# ----------------------------------------------------------------------------- plain against residual

def test_plain_and_residual_have_the_same_convolutions():
    for depth in (8, 14):
        plain, residual = A.plain_and_residual(depth, width=8)
        p, r = A.build_model(plain), A.build_model(residual)
        main = lambda m: [n for n, layer in m.named_modules()                      # noqa: E731
                          if isinstance(layer, (nn.Conv2d, nn.Linear)) and "shortcut" not in n]
        assert len(main(p)) == len(main(r)) == depth
        shortcuts = A.conv_costs(8, 16, 1, (14, 14)) + A.batch_norm_costs(16) + \
            A.conv_costs(16, 32, 1, (7, 7)) + A.batch_norm_costs(32)
        assert A.architecture_costs(residual) == A.architecture_costs(plain) + shortcuts
        assert p(torch.zeros(2, 1, 28, 28)).shape == r(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_gradient_reaches_the_stem_through_the_shortcuts_only():
    # Silence every residual branch (its last batch norm outputs 0) and the matching layers of the
    # plain network: the residual network still passes its input, and its gradient, to the stem.
    plain, residual = (A.build_model(a, seed=0) for a in A.plain_and_residual(14, width=8))
    for model in (plain, residual):
        for name, module in model.named_modules():
            silenced = (name.endswith("conv2.bn") if model is residual else
                        name.endswith(("block2.bn", "block4.bn")) and "stage" in name)
            if silenced:
                nn.init.zeros_(module.weight)
                nn.init.zeros_(module.bias)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3])
    grads = {}
    for label, model in (("plain", plain), ("residual", residual)):
        nn.functional.cross_entropy(model(x), y).backward()
        grads[label] = model.stem.conv.weight.grad.abs().sum().item()
    assert grads["plain"] == 0.0
    assert grads["residual"] > 1e-6


def test_a_few_training_steps_lower_the_loss_of_a_residual_network():
    model = A.build_model(A.plain_and_residual(8, width=8)[1], seed=0)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 28, 28, generator=generator), torch.randint(0, 10, (32,), generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# ----------------------------------------------------------------------------- pictures of blocks

def _all_blocks():
    return [A.make_block("conv", 8, 16, stride=2), A.make_block("separable", 8, 16, stride=2, se=True),
            A.make_block("inverted_residual", 8, 8, expansion=4), A.make_block("inverted_residual", 8, 16, 3, 2, 1),
            A.make_block("residual", 8, 8), A.make_block("residual", 8, 16, stride=2),
            A.make_block("shuffle", 8, 8, groups=2), A.make_block("shuffle", 8, 24, stride=2, groups=4)]


def test_block_diagram_follows_the_blocks_own_layers_and_shapes():
    for block in _all_blocks():
        block.train()
        diagram = A.block_diagram(block, (9, 7))
        assert block.training                                               # the mode is restored
        with torch.no_grad():
            out = block.eval()(torch.zeros(1, diagram.input_shape[0], 9, 7))
        assert diagram.output_shape == tuple(out.shape[1:])
        assert diagram.input_shape[1:] == (9, 7)
        boxes = diagram.main + diagram.after + ((diagram.shortcut,) if diagram.shortcut else ())
        names = {name.split(".")[-1] for name, _ in block.named_modules()}
        assert all(b.name in names or b.kind == "identity" for b in boxes), diagram
    inverted = A.block_diagram(A.make_block("inverted_residual", 8, 8, expansion=4))
    assert [b.name for b in inverted.main] == ["expand", "depthwise", "project"]
    assert [b.kind for b in inverted.main] == ["pointwise", "depthwise", "pointwise"]
    assert "ReLU6" in inverted.main[1].label and "linear" in inverted.main[2].label
    assert inverted.merge == "add" and inverted.shortcut.kind == "identity"
    assert inverted.main[0].shape == (32, 14, 14)
    strided = A.block_diagram(A.make_block("inverted_residual", 8, 16, 3, 2, 4))
    assert strided.merge is None and strided.shortcut is None
    shuffle = A.block_diagram(A.make_block("shuffle", 8, 24, stride=2, groups=4))
    assert shuffle.merge == "concat" and shuffle.shortcut.name == "pool" and shuffle.output_shape == (24, 7, 7)
    assert [b.kind for b in shuffle.main] == ["grouped", "other", "depthwise", "grouped"]
    residual = A.block_diagram(A.make_block("residual", 8, 16, stride=2))
    assert residual.shortcut.name == "shortcut" and [b.name for b in residual.after] == ["relu"]
    assert A.block_diagram(A.make_block("conv", 8, 16)).merge is None


def test_plot_block_draws_one_box_per_layer_on_a_new_figure_or_given_axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    for block in _all_blocks():
        diagram = A.block_diagram(block)
        fig = A.plot_block(block, pyplot=False)
        assert isinstance(fig, Figure)
        boxes = [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]
        shortcut_box = diagram.shortcut is not None and diagram.shortcut.kind != "identity"
        assert len(boxes) == len(diagram.main) + len(diagram.after) + 2 + shortcut_box
        texts = " ".join(t.get_text() for t in fig.axes[0].texts)
        assert all(b.name in texts for b in diagram.main)
    fig, axes = plt.subplots(1, 2)
    try:
        assert A.plot_block(_all_blocks()[2], ax=axes[1]) is fig
        assert axes[1].patches and not axes[0].patches
    finally:
        plt.close(fig)


def test_block_diagram_and_plot_block_name_their_bad_arguments():
    with pytest.raises(TypeError, match="block must be a block of course_lib.architectures"):
        A.block_diagram(nn.Conv2d(2, 2, 3))
    with pytest.raises(ValueError, match="input_size"):
        A.block_diagram(A.make_block("conv", 2, 2), (0, 4))
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        A.plot_block(A.make_block("conv", 2, 2), ax="left")
    with pytest.raises(TypeError, match="pyplot"):
        A.plot_block(A.make_block("conv", 2, 2), pyplot=1)


# ----------------------------------------------------------------------------- the panel's experiment

def test_architecture_experiment_costs_the_family_design_at_the_chosen_multipliers():
    for block, design in experiments.DESIGNS.items():
        result = experiments.architecture_experiment(block, 1.0, 1.0, "Arduino Nano 33 BLE Sense")
        family = A.FASHION_FAMILY[f"{design}_x1_0"]
        assert result.architecture == family and result.design == design
        model = A.build_model(family)
        assert A.Costs(result.report.parameters, result.report.macs) == measured(model, (1, 28, 28))
        assert result.report.number_format == "int8"
        assert result.report.weight_bytes == measure.weight_bytes(model, "int8")
        assert result.report.peak_activation_bytes == measure.peak_activation_bytes(model, number_format="int8")
        assert result.verdict.device == "Arduino Nano 33 BLE Sense"
    half = experiments.architecture_experiment("separable", 0.5, 0.5, "STM32F746", depth_multiplier=2)
    assert half.architecture.width_multiplier == 0.5 and half.architecture.resolution == (14, 14)
    assert [s.depth for s in half.architecture.stages] == [2, 2, 2, 2]
    assert half.reference_costs == A.architecture_costs(A.FASHION_FAMILY["separable_x1_0"])
    assert half.zoo_name is None and half.test_accuracy is None


def test_architecture_experiment_macs_fall_about_as_alpha_squared_rho_squared():
    full = experiments.architecture_experiment("conv", 1.0, 1.0, "ESP32").report.macs
    for alpha, rho in ((0.5, 1.0), (1.0, 0.5), (0.5, 0.5)):
        macs = experiments.architecture_experiment("conv", alpha, rho, "ESP32").report.macs
        assert 0.7 * alpha ** 2 * rho ** 2 < macs / full < 1.5 * alpha ** 2 * rho ** 2


def test_architecture_experiment_reports_the_zoo_accuracy_only_for_a_trained_match(monkeypatch):
    from course_lib import zoo
    records = {"mobilenet_v2_x0_5_fashion": {"test_error": 0.1}}

    def entry(name):
        if name not in records:
            raise zoo.CheckpointError(f"baseline {name!r} has not been built")
        return records[name]
    monkeypatch.setattr(zoo, "entry", entry)
    exact = experiments.architecture_experiment("inverted_residual", 0.5, 1.0, "Arduino Nano 33 BLE Sense")
    assert exact.zoo_name == "mobilenet_v2_x0_5_fashion" and exact.test_accuracy == pytest.approx(0.9)
    assert "zoo model mobilenet_v2_x0_5_fashion" in exact.lines()[-1] and "90.00%" in exact.lines()[-1]
    near = experiments.architecture_experiment("inverted_residual", 1.0, 1.0, "Arduino Nano 33 BLE Sense")
    assert near.zoo_name is None and near.nearest_name == "mobilenet_v2_x0_5_fashion"
    assert "not trained" in near.lines()[-1] and "nearest trained: mobilenet_v2_x0_5_fashion" in near.lines()[-1]
    none = experiments.architecture_experiment("residual", 0.5, 1.0, "Arduino Nano 33 BLE Sense")
    assert none.zoo_name is None and none.nearest_name is None
    assert none.lines()[-1] == "Fashion-MNIST test accuracy: not trained (no zoo model at these settings)"
    lines = "\n".join(exact.lines())
    for piece in ("α = 0.5", "ρ = 1", "parameters", "MACs", "int8: weights", "peak activations",
                  "Arduino Nano 33 BLE Sense: FITS", "Estimated latency"):
        assert piece in lines, piece


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(block="dense"), ValueError, "block"),
    (dict(width_multiplier=0), ValueError, "width_multiplier"),
    (dict(width_multiplier=5.0), ValueError, "width_multiplier"),
    (dict(width_multiplier="1"), TypeError, "width_multiplier"),
    (dict(resolution_multiplier=1.5), ValueError, "resolution_multiplier"),
    (dict(resolution_multiplier=0.05), ValueError, "below 1x1"),
    (dict(depth_multiplier=0), ValueError, "depth_multiplier"),
    (dict(depth_multiplier=1.0), TypeError, "depth_multiplier"),
    (dict(device_name="Cray-1"), ValueError, "device"),
    (dict(block="shuffle", width_multiplier=0.1), ValueError, "stages\\[0\\] \\(shuffle\\).*must exceed"),
])
def test_architecture_experiment_names_bad_input(kwargs, error, match):
    args = dict(block="separable", width_multiplier=1.0, resolution_multiplier=1.0,
                device_name="Arduino Nano 33 BLE Sense") | kwargs
    with pytest.raises(error, match=match):
        experiments.architecture_experiment(**args)
