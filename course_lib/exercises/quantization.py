"""Exercises of notebook 02, linear quantization: quantize / dequantize a tensor, a min-max
observer, an integer-only linear layer. (k-means: codebook.py; bits per layer: mixed_precision.py.)

Each exercise has a reference (``*_reference``, or ``MinMaxObserverReference``, for
:func:`falls_back_to`) and a checker (``check_*``) that tests the learner's code on small
hand-made cases and names typical mistakes.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch

from .checking import (call_learner_function, check_returned, check_unchanged, checker, CheckResult, describe, failed,
                       learner_code, not_attempted, passed, require, run_learner)

__all__ = ["linear_quantize_reference", "linear_dequantize_reference", "check_linear_quantize",
           "MinMaxObserverReference", "check_minmax_observer", "integer_linear_reference", "check_integer_linear"]


def _short(t: torch.Tensor):
    """A tensor's values rounded to 4 decimals, for messages."""
    values = t.tolist()
    return round(values, 4) if isinstance(values, float) else \
        [_short(torch.as_tensor(v)) if isinstance(v, list) else round(v, 4) for v in values]


def _per_row(t, like: torch.Tensor) -> torch.Tensor:
    """A per-tensor value as is; a vector (one value per row, dim 0) reshaped to broadcast on ``like``."""
    t = torch.as_tensor(t)
    return t.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() == 1 else t


# ----------------------------------------------------------------------------- linear quantize

def linear_quantize_reference(x: torch.Tensor, scale, zero_point, bits: int) -> torch.Tensor:
    """Signed ``bits``-bit codes :math:`q = \\mathrm{clamp}(\\mathrm{round}(x / s) + z,
    -2^{b-1}, 2^{b-1} - 1)` as int64 (round half to even, as ``torch.round``); a vector
    ``scale``/``zero_point`` holds one value per row (dim 0)."""
    scale, zero_point = _per_row(scale, x), _per_row(zero_point, x)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax).to(torch.int64)


def linear_dequantize_reference(q: torch.Tensor, scale, zero_point) -> torch.Tensor:
    """Real values :math:`x = s (q - z)` as float32 (per-row ``scale``/``zero_point`` as above)."""
    return ((q - _per_row(zero_point, q)) * _per_row(scale, q)).to(torch.float32)


def _quantize_cases():
    g = torch.Generator().manual_seed(3)
    return [
        (torch.tensor([-1.0, -0.26, 0.0, 0.24, 0.5, 2.0]), torch.tensor(0.01), torch.tensor(-10), 8),
        (torch.tensor([-3.0, -0.4, 0.1, 0.7, 3.0]), torch.tensor(0.2), torch.tensor(1), 4),
        (torch.tensor([0.25, 0.75, 1.25, -0.25, -1.25, 3.0]), torch.tensor(0.5), torch.tensor(0), 4),  # halves
        (torch.randn(4, 4, generator=g), torch.tensor([0.01, 0.02, 0.05, 0.1]), torch.tensor([0, 1, -2, 3]), 8),
        (torch.randn(3, 5, generator=g), torch.tensor([0.03, 0.3, 0.003]), torch.tensor([0, 0, 0]), 6),
    ]


def _quantize_hint(x, scale, zero_point, bits, got) -> str:
    s, z = _per_row(scale, x), _per_row(zero_point, x)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    v = x / s
    halves = ("halves: use torch.round, which rounds half to EVEN (0.5 -> 0, 1.5 -> 2, 2.5 -> 2) as "
              "PyTorch's quantized kernels do; floor(x + 0.5) and rounding half away from zero give 1 and 3.")
    mistakes = [
        (torch.clamp(torch.round(v) - z, qmin, qmax), "the zero-point is ADDED: q = round(x / s) + z."),
        (torch.round(v) + z, "clamp the codes to the integer range [q_min, q_max]."),
        (torch.clamp(torch.round(v) + z, qmin, qmax + 1), f"off by one: for {bits} signed bits "
         f"q_max = 2**(bits-1) - 1 = {qmax}."),
        (torch.clamp(torch.round(v) + z, qmin + 1, qmax), f"off by one: for {bits} signed bits "
         f"q_min = -2**(bits-1) = {qmin}."),
        (torch.clamp(torch.floor(v + 0.5) + z, qmin, qmax), halves),
        (torch.clamp(torch.sign(v) * torch.floor(v.abs() + 0.5) + z, qmin, qmax), halves),
        (torch.clamp(torch.trunc(v) + z, qmin, qmax), "round to the nearest integer (torch.round), "
         "do not truncate or floor."),
        (torch.clamp(torch.floor(v) + z, qmin, qmax), "round to the nearest integer (torch.round), "
         "do not truncate or floor."),
        (torch.clamp(torch.round(x / s.mean()) + z, qmin, qmax),
         "one scale per channel was asked: do not use a single (per-tensor) scale."),
    ]
    if scale.dim() == 1 and x.dim() == 2 and x.shape[1] == len(scale):
        mistakes.insert(0, (torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax), "the scales apply "
                            "per ROW (output channel, dim 0), not per column: reshape scale to (C, 1)."))
    return next((h for wrong, h in mistakes if wrong.shape == got.shape
                 and torch.equal(wrong.to(torch.int64), got.to(torch.int64))),
                "q = clamp(round(x / scale) + zero_point, -2**(bits-1), 2**(bits-1) - 1).")


_PER_ROW_HINT = {"must match": "per-channel scales have one value per ROW: reshape them to (C, 1, ...) "
                               "to broadcast."}


@checker("linear_quantize / linear_dequantize")
def check_linear_quantize(linear_quantize: Callable, linear_dequantize: Callable) -> CheckResult:
    """Check ``linear_quantize(x, scale, zero_point, bits) -> Tensor``: signed ``bits``-bit
    INTEGER codes (int64 or int32) :math:`q = \\mathrm{clamp}(\\mathrm{round}(x/s) + z,
    -2^{b-1}, 2^{b-1}-1)`, rounding half to even as ``torch.round``; a vector
    ``scale``/``zero_point`` means one per row (dim 0). And ``linear_dequantize(q, scale,
    zero_point) -> Tensor``: float32 :math:`s (q - z)`. Neither modifies its inputs.
    References: :func:`linear_quantize_reference`, :func:`linear_dequantize_reference`."""
    name = "linear_quantize / linear_dequantize"
    cases = _quantize_cases()
    for x, scale, zero_point, bits in cases:
        expected = linear_quantize_reference(x, scale, zero_point, bits)
        where = (f"for x of shape {tuple(x.shape)}, scale {_short(scale)}, zero_point "
                 f"{zero_point.tolist()}, bits {bits}")
        before = (x.clone(), scale.clone(), zero_point.clone())
        got = run_learner(linear_quantize, (x, scale, zero_point, bits), name,
                          case=where[4:], hints=_PER_ROW_HINT)
        require((check_unchanged(before, (x, scale, zero_point), name, where, "x, scale or zero_point",
                                 "x / scale makes a new tensor; x /= scale or x.div_(scale) overwrite x.")
                 or check_returned(got, name, where, torch.Tensor, dtype="integer", shape=x.shape,
                                   what="codes")))
        if not torch.equal(got.to(torch.int64), expected):
            return failed(name, f"{where}: expected {expected.tolist()}, got {got.tolist()}. Hint: "
                          f"{_quantize_hint(x, scale, zero_point, bits, got)}")
        q = expected.clone()
        back = run_learner(linear_dequantize, (q, scale, zero_point), name,
                           case=f"linear_dequantize with codes {describe(q)}",
                           hints=_PER_ROW_HINT)
        truth = linear_dequantize_reference(expected, scale, zero_point)
        where = f"linear_dequantize {where}"
        require((check_unchanged((expected, scale, zero_point), (q, scale, zero_point), name, where,
                                 "q, scale or zero_point", "q - zero_point makes a new tensor; q -= "
                                 "zero_point overwrites the codes.")
                 or check_returned(back, name, where, torch.Tensor, dtype="float", shape=truth.shape,
                                   what="real values")))
        if back.dtype != torch.float32:
            return failed(name, f"{where}: the real values must be float32, got {back.dtype}. Hint: "
                          "convert with .float() (or .to(torch.float32)).")
        if not torch.allclose(back, truth, atol=1e-6):
            sign = (expected + _per_row(zero_point, x)).float() * _per_row(scale, x)
            hint = ("subtract the zero-point before scaling: x = scale * (q - zero_point)."
                    if torch.allclose(back, sign, atol=1e-6)
                    else "x = scale * (q - zero_point), with per-row scales reshaped to (C, 1).")
            return failed(name, f"{where}: expected {_short(truth)}, got {_short(back)}. Hint: {hint}")
    return passed(name, len(cases), "all cases pass (clipping, zero-points, halves rounded to even, "
                  "odd bit widths, per-channel scales, integer codes)")


# ----------------------------------------------------------------------------- MinMaxObserver

class MinMaxObserverReference:
    """Records the running min and max of every tensor it sees; ``qparams(bits)`` turns that
    range, widened to include 0, into an asymmetric unsigned scale and zero-point:
    :math:`s = (\\max - \\min) / (2^b - 1)` (at least 1e-8),
    :math:`z = \\mathrm{clamp}(-\\mathrm{round}(\\min / s), 0, 2^b - 1)` (Jacob et al. 2018)."""

    def __init__(self):
        self.min_val, self.max_val = math.inf, -math.inf

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.min_val = min(self.min_val, x.min().item())
        self.max_val = max(self.max_val, x.max().item())
        return x

    def qparams(self, bits: int = 8) -> tuple[float, int]:
        if self.min_val > self.max_val:
            raise ValueError("call the observer on at least one tensor before qparams()")
        lo, hi = min(self.min_val, 0.0), max(self.max_val, 0.0)
        qmin, qmax = 0, 2 ** bits - 1
        scale = max((hi - lo) / (qmax - qmin), 1e-8)
        zero_point = int(min(max(qmin - round(lo / scale), qmin), qmax))
        return scale, zero_point


def _observer_cases() -> list[tuple[str, list[torch.Tensor], list[int]]]:
    return [
        ("three batches", [torch.tensor([-1.0, 0.5, 2.0]), torch.tensor([[0.25, 3.0]]),
                           torch.tensor([-0.5, 1.0])], [8, 4]),      # range [-1, 3]: z = round(63.75) = 64
        ("ReLU outputs", [torch.tensor([[0.5, 2.0], [1.0, 0.25]]), torch.tensor([3.5, 0.75])], [4]),
        ("negative values", [torch.tensor([-2.0, -0.5]), torch.tensor([-1.0, -0.75])], [8]),
        ("all zeros", [torch.zeros(5)], [8]),
    ]


def _expected_qparams(batches: list[torch.Tensor], bits: int) -> tuple[float, int]:
    obs = MinMaxObserverReference()
    for x in batches:
        obs(x)
    return obs.qparams(bits)


def _qparams_of(lo: float, hi: float, bits: int, widen=True, qmin=0, qmax=None, rounding=round):
    qmax = 2 ** bits - 1 if qmax is None else qmax
    if widen:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (qmax - qmin)
    if scale <= 0:
        return None
    return scale, int(min(max(qmin - rounding(lo / scale), qmin), qmax))


def _observer_hint(batches, bits, scale, zero_point) -> str:
    lo, hi = min(b.min().item() for b in batches), max(b.max().item() for b in batches)
    last = batches[-1]
    mistakes = [
        (_qparams_of(last.min().item(), last.max().item(), bits), "keep the running min and max over ALL "
         "calls (min(self.min_val, x.min())), not only the last tensor's range."),
        (_qparams_of(lo, hi, bits, widen=False), "widen the range to include 0 (lo = min(lo, 0), "
         "hi = max(hi, 0)), so that zero is exact; all-positive ReLU outputs then get zero_point 0."),
        (_qparams_of(lo, hi, bits, qmin=-(2 ** (bits - 1)), qmax=2 ** (bits - 1) - 1), "the codes are "
         "UNSIGNED: q_min = 0, q_max = 2**bits - 1."),
        (_qparams_of(lo, hi, bits, qmax=2 ** bits), f"off by one: q_max = 2**bits - 1 = {2 ** bits - 1}."),
        (_qparams_of(lo, hi, bits, rounding=math.trunc), "round the zero-point to the nearest integer "
         "(round), do not truncate with int()."),
        (_qparams_of(lo, hi, bits, rounding=lambda v: -round(v)), "zero_point = q_min - round(min / scale): "
         "for a negative min it is positive."),
    ]
    for wrong, hint in mistakes:
        if wrong is not None and math.isclose(wrong[0], scale, rel_tol=1e-5) and wrong[1] == zero_point:
            return hint
    return ("scale = (max - min) / (2**bits - 1) over the range widened to include 0; zero_point = "
            "clamp(0 - round(min / scale), 0, 2**bits - 1).")


_FLOOR_HINT = ("for a constant (e.g. all-zero) input max - min = 0, so the scale is 0: floor the scale, "
               "max(scale, 1e-8), as course_lib.quantization.choose_qparams does.")


@checker("MinMaxObserver")
def check_minmax_observer(MinMaxObserver: Callable) -> CheckResult:
    """Check a class ``MinMaxObserver``: ``obs = MinMaxObserver()``; ``obs(x)`` returns ``x``
    (without modifying it) and tracks the running min and max over ALL calls;
    ``obs.qparams(bits) -> (scale, zero_point)``, a Python float > 0 and a Python int, for
    asymmetric UNSIGNED codes :math:`[0, 2^b - 1]` with the range widened to include 0:
    :math:`s = (\\max - \\min)/(2^b - 1)`, :math:`z = \\mathrm{clamp}(0 - \\mathrm{round}(\\min/s),
    0, 2^b - 1)`; an all-zero input still gives a positive, finite scale (floor it at e.g. 1e-8).
    Reference: :class:`MinMaxObserverReference`."""
    name = "MinMaxObserver"
    cls = learner_code(MinMaxObserver)
    cases = _observer_cases()
    for label, batches, bit_widths in cases:
        where = f"for {label} {[_short(b.reshape(-1)) for b in batches]}"
        obs = run_learner(cls, (), name, case="MinMaxObserver()")
        for x in batches:
            original = x.clone()
            out, failure = call_learner_function(obs, (x,), name, case=f"obs({describe(x)}) {where}")
            if failure:
                return failure if failure.failed else not_attempted(name, "__call__ is not written yet")
            require(check_unchanged(original, x, name, f"{where}, obs(x)", "x", "read x.min() and x.max() "
                                    "only; clamp_ and other in-place ops overwrite the activations."))
            if out is None:
                return failed(name, f"{where}, obs(x) returned None. Hint: return x unchanged, so the "
                              "observer can sit in the forward pass without changing it.")
            if not (isinstance(out, torch.Tensor) and out.shape == x.shape and torch.equal(out, x)):
                return failed(name, f"{where}, obs(x) must return x unchanged, got {describe(out)}.")
        if not callable(getattr(obs, "qparams", None)):
            return failed(name, f"{where}: your observer has no method qparams(bits). Hint: define "
                          "`def qparams(self, bits=8):` returning (scale, zero_point).")
        for bits in bit_widths:
            qp, failure = call_learner_function(obs.qparams, (bits,), name, case=f"obs.qparams({bits}) {where}",
                                                hints=dict.fromkeys(("ZeroDivisionError", "NaN"), _FLOOR_HINT))
            if failure:
                return failure if failure.failed else not_attempted(name, "qparams is not written yet")
            at = f"{where}, qparams({bits})"
            require(check_returned(qp, name, at, (tuple, list), what="(scale, zero_point)"))
            if len(qp) != 2:
                return failed(name, f"{at} must return (scale, zero_point), got {len(qp)} values.")
            scale, zero_point = qp
            failure = (check_returned(scale, name, at, (float, int), what="scale")
                       or check_returned(zero_point, name, at, int, what="zero_point"))
            if failure:
                if isinstance(zero_point, float):
                    return failed(name, f"{at} zero_point must be an int, got {zero_point!r}. Hint: the "
                                  "zero-point is an integer code: int(round(...)).")
                return failure
            if not (math.isfinite(scale) and scale > 0):
                return failed(name, f"{at} the scale must be positive and finite, got {scale}. Hint: "
                              f"{_FLOOR_HINT}")
            expected_scale, expected_zero = _expected_qparams(batches, bits)
            if label == "all zeros":
                ok = zero_point == 0
            else:
                ok = math.isclose(scale, expected_scale, rel_tol=1e-5) and zero_point == expected_zero
            if not ok:
                return failed(name, f"{at}: expected (scale, zero_point) = ({expected_scale:.6g}, "
                              f"{expected_zero}), got ({scale:.6g}, {zero_point}). Hint: "
                              f"{_observer_hint(batches, bits, scale, zero_point)}")
    return passed(name, len(cases), "all cases pass (range over all calls, zero included, rounded int "
                  "zero-point, constant input, input returned unchanged)")


# ----------------------------------------------------------------------------- integer_linear

def integer_linear_reference(x_q: torch.Tensor, x_scale: float, x_zero_point: int, w_q: torch.Tensor,
                             w_scale, bias: torch.Tensor | None, y_scale: float,
                             y_zero_point: int) -> torch.Tensor:
    """A Linear layer in integers (Jacob et al. 2018, Sec. 2.2): accumulate
    :math:`(x_q - z_x) w_q^T` in integers, add the bias quantized with scale :math:`s_x s_w`,
    requantize with :math:`M = s_x s_w / s_y`, add :math:`z_y`, clamp to [0, 255]. ``w_scale`` is
    a float or one value per output channel (out,). Returns int64 codes (B, out)."""
    acc = (x_q.to(torch.int64) - x_zero_point) @ w_q.to(torch.int64).T      # (B, out) integers
    s_xw = x_scale * torch.as_tensor(w_scale, dtype=torch.float64)           # () or (out,): acc's scale
    if bias is not None:
        acc = acc + torch.round(bias.to(torch.float64) / s_xw).to(torch.int64)
    y = torch.round(acc.to(torch.float64) * (s_xw / y_scale)) + y_zero_point
    return torch.clamp(y, 0, 255).to(torch.int64)


def _integer_cases():
    g = torch.Generator().manual_seed(7)
    x_q = torch.randint(0, 256, (4, 5), generator=g)
    w_q = torch.randint(-127, 128, (3, 5), generator=g)
    x3 = torch.randint(0, 256, (3, 6), generator=g)
    w3 = torch.randint(-127, 128, (3, 6), generator=g)
    return [  # (x_q, x_scale, x_zero_point, w_q, w_scale, bias, y_scale, y_zero_point)
        (x_q, 0.02, 120, w_q, 0.01, torch.tensor([0.5, -1.0, 2.0]), 0.05, 100),
        (x_q, 0.05, 30, w_q, 0.004, None, 0.1, 128),
        (x3, 0.02, 128, w3, torch.tensor([0.01, 0.002, 0.005]), torch.tensor([1.0, -0.25, 0.75]), 0.04, 90),
    ]


def _integer_mistakes(x_q, s_x, z_x, w_q, s_w, bias, s_y, z_y) -> list[tuple[torch.Tensor, str]]:
    s_w = torch.as_tensor(s_w, dtype=torch.float64)
    acc = (x_q - z_x) @ w_q.T
    s_xw = s_x * s_w
    b = torch.zeros(w_q.shape[0], dtype=torch.float64) if bias is None else bias.double()

    def requantize(acc, m=s_xw / s_y, add=0.0, clamp=True, zero=z_y):
        y = torch.round(acc.double() * m + add) + zero
        return torch.clamp(y, 0, 255) if clamp else y
    out = [
        (requantize(x_q @ w_q.T + torch.round(b / s_xw)), "subtract x_zero_point from the input codes "
         "before the product: (x_q - x_zero_point) @ w_q.T."),
        (requantize(acc + torch.round(b / s_y)), "the bias joins the ACCUMULATOR, whose scale is "
         "x_scale * w_scale: quantize it as round(bias / (x_scale * w_scale)), not with y_scale."),
        (requantize(acc, add=b), "the bias is a real number: quantize it to the accumulator's scale, "
         "round(bias / (x_scale * w_scale)), and add it before requantizing."),
        (requantize(acc + torch.round(b / s_xw), clamp=False), "clamp the output codes to [0, 255]."),
        (requantize(acc + torch.round(b / s_xw), zero=0), "add y_zero_point after requantizing."),
        (requantize(acc + torch.round(b / s_xw), m=s_y / s_xw), "the requantization multiplier is "
         "M = x_scale * w_scale / y_scale."),
    ]
    if s_w.dim() == 1 and x_q.shape[0] == w_q.shape[0]:
        m = (s_xw / s_y).reshape(-1, 1)
        out.append((requantize(acc + torch.round(b / s_xw.reshape(-1, 1)), m=m),
                    "per-channel scales belong to the OUTPUT channels, the columns of the (B, out) "
                    "accumulator: broadcast w_scale as shape (1, out), not (out, 1)."))
    return out


@checker("integer_linear")
def check_integer_linear(integer_linear: Callable) -> CheckResult:
    """Check ``integer_linear(x_q, x_scale, x_zero_point, w_q, w_scale, bias, y_scale,
    y_zero_point) -> Tensor``: ``x_q`` (B, in) unsigned 8-bit codes (int64) with a float scale and
    an int zero-point; ``w_q`` (out, in) signed symmetric codes (zero-point 0) with a float scale
    or one per output channel (a (out,) tensor); ``bias`` float (out,) or None. Accumulate
    :math:`(x_q - z_x) w_q^T` in integers, add the bias quantized as
    :math:`\\mathrm{round}(b / (s_x s_w))`, multiply by :math:`M = s_x s_w / s_y`, round, add
    :math:`z_y`, clamp to [0, 255]; return int64 codes (B, out), within one code of the reference
    (Jacob et al. 2018, Sec. 2.2). Inputs unchanged. Reference: :func:`integer_linear_reference`."""
    name = "integer_linear"
    cases = _integer_cases()
    for args in cases:
        x_q, s_x, z_x, w_q, s_w, bias, s_y, z_y = args
        per_channel = isinstance(s_w, torch.Tensor)
        where = (f"for x_q {tuple(x_q.shape)} (x_scale={s_x}, x_zero_point={z_x}), w_q {tuple(w_q.shape)} "
                 f"with {'per-channel w_scale ' + str(_short(s_w)) if per_channel else f'w_scale={s_w}'}, "
                 f"bias {None if bias is None else bias.tolist()}, y_scale={s_y}, y_zero_point={z_y}")
        before = copy.deepcopy(args)
        got = run_learner(integer_linear, args, name, case=where[4:],
                          hints={"must match": "per-channel scales belong to the OUTPUT "
                                 "channels: broadcast w_scale as shape (1, out)."})
        require((check_unchanged(before, args, name, where, "its inputs", "x_q - x_zero_point makes a "
                                 "new tensor; x_q -= x_zero_point overwrites the caller's codes.")
                 or check_returned(got, name, where, torch.Tensor, dtype="integer",
                                   shape=(x_q.shape[0], w_q.shape[0]), what="output codes")))
        expected = integer_linear_reference(*args)
        if (got.to(torch.int64) - expected).abs().max() > 1:
            close = lambda wrong: wrong.shape == got.shape and bool(((wrong - got.double()).abs() <= 1).all())
            hint = next((h for wrong, h in _integer_mistakes(*args) if close(wrong)),
                        "acc = (x_q - x_zero_point) @ w_q.T + round(bias / (x_scale * w_scale)); "
                        "y_q = clamp(round(acc * x_scale * w_scale / y_scale) + y_zero_point, 0, 255).")
            return failed(name, f"{where}: expected {expected.tolist()}, got {got.tolist()}. Hint: {hint}")
    return passed(name, len(cases), "all cases pass (zero-points, bias at the accumulator's scale, "
                  "clamping, per-channel weight scales), within one code of the reference")
