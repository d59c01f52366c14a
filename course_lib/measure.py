"""What a model costs: parameters, bytes, MACs, activation memory and measured latency.

* **Parameters** and **nonzeros**: counted over ``model.parameters()``.
* **Weight bytes**: each parameter tensor stored in a number format and an encoding
  (see :mod:`course_lib.encoding`); vectors (biases, batch-norm) are always stored dense.
  Batch norm's running statistics are buffers, not counted: at inference they fold into its
  scale and shift, which the parameters already count.
* **Compressed layers** say how they are stored. A technique that changes how a layer's weight
  is kept (fake-quantized codes, a k-means codebook, ternary values) wraps the ``Linear`` /
  ``Conv2d`` in a :class:`CompressedLayer`, which lists its :class:`StoredTensor` s (codes at so
  many bits, scales, zero-points, codebooks, biases) and the layer whose arithmetic it runs.
  Every count below reads that: bytes from the stored tensors, MACs and activations from the
  wrapped layer, so a compressed model is measured like any other and no technique counts its
  own bytes.
* **MACs** (multiply-accumulates) for one input: a ``Linear`` layer costs
  :math:`C_{in} C_{out}`, a ``Conv2d`` :math:`H_{out} W_{out} C_{out} (C_{in}/g) k_h k_w`;
  other layers (ReLU, pooling, batch norm) are not counted, like ``torch.utils.flop_counter``
  (which counts 2 FLOPs per MAC; the tests check the two agree).
* **Peak activation memory**: running the layers one after another, layer ``i`` needs its input
  and its output in memory at once, so the peak is :math:`\\max_i (|x_i| + |y_i|)` elements,
  times the activation format's bytes. Element-wise layers (ReLU, batch norm, dropout) work in
  place and views (flatten) cost nothing. This is the SRAM a microcontroller needs for
  activations (Lin et al. 2020, MCUNet, Sec. 2, uses the same model of a layer-by-layer runtime).
* **Latency**: wall-clock time of ``model(x)``, median of repeated runs after warm-up, with a
  fixed number of threads. Compare two models with :func:`compare_latency`, which interleaves
  their runs in one process so that machine noise hits both alike, and report the ratio.

:func:`report` gathers all of these in one :class:`ModelReport`, which tables, plots, the
hardware verdicts and the widgets all read. Taught in ``notebooks/00_efficiency_and_hardware.ipynb``.
"""

from __future__ import annotations

import math
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from .checks import (check_choice, check_finite, check_int, check_model, check_tensor, check_type,
                     describe, is_int, is_real)
from .encoding import ENCODINGS, best_encoding, bits_of, storage_bytes
from .models import IMAGE_SHAPE

__all__ = ["IN_PLACE_LAYERS", "VIEW_LAYERS", "ENCODING_CHOICES", "check_input_shape", "format_bytes", "counted",
           "format_name", "WEIGHT_LAYER_TYPES", "weight_layers", "StoredTensor", "CompressedLayer",
           "compressed_layers", "count_parameters", "count_nonzero", "tensor_bytes", "weight_bytes", "LayerTrace",
           "layer_macs", "trace_layers", "run_on_shape", "count_macs", "peak_activation_bytes", "Latency",
           "torch_threads", "measure_latency", "compare_latency", "Speedup", "speedup", "ModelReport",
           "model_arithmetic_format", "report"]

IN_PLACE_LAYERS = (nn.ReLU, nn.ReLU6, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Identity,
                   nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh)
VIEW_LAYERS = (nn.Flatten, nn.Unflatten)
ENCODING_CHOICES = (*ENCODINGS, "best")     # "best": each tensor in its smallest encoding


def check_input_shape(input_shape: tuple[int, ...]) -> None:
    """``input_shape`` is one sample's shape, no batch dimension: a non-empty tuple (a list or
    ``torch.Size`` will do) of ints >= 1.

    Raises:
        TypeError: not a tuple or list, or holding a non-int (``(1, 28.0, 28)``).
        ValueError: empty, or holding an int < 1.
    """
    expected = "a tuple of positive ints like (1, 28, 28) (one sample's shape, no batch dimension)"
    check_type(input_shape, "input_shape", (tuple, list), expected)
    for s in input_shape:
        if not is_int(s):
            raise TypeError(f"input_shape must be {expected}, got {tuple(input_shape)!r} "
                            f"(holding {describe(s)})")
    if not input_shape or any(s < 1 for s in input_shape):
        raise ValueError(f"input_shape must be {expected}, got {tuple(input_shape)!r}")


def counted(n: int, noun: str) -> str:
    """A count with its noun in the right number: ``"1 epoch"``, ``"3 epochs"``, ``"0 proposals"``
    (the plural adds an s)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def format_bytes(n: float) -> str:
    """Bytes for people, in the course's one convention, powers of 1024: ``"56.2 KiB"``
    (1 KiB = 1,024 bytes), ``"1.64 MiB"``, ``"4.00 GiB"`` (two decimals from MiB up, so that
    1.02 MiB of weights does not read as the 1.00 MiB of flash it overflows). (Datasheets write "KB" and "MB" for
    these same units: a "256 KB" SRAM holds 256 KiB.) A negative ``n`` (a difference of two
    sizes) keeps its sign: ``"-2.0 KiB"``.

    Raises:
        TypeError: ``n`` is not a real number (a str, a tensor, a bool).
        ValueError: ``n`` is NaN or infinite.
    """
    if not is_real(n):
        raise TypeError(f"n must be a number of bytes (an int or a float), got {describe(n)}")
    if not math.isfinite(n):
        raise ValueError(f"n must be a finite number of bytes, got {n}")
    for unit, size, decimals in (("GiB", 1024 ** 3, 2), ("MiB", 1024 ** 2, 2), ("KiB", 1024, 1)):
        if abs(n) >= size:
            return f"{n / size:,.{decimals}f} {unit}"
    return f"{n:,.0f} B"


def format_name(number_format: str | int) -> str:
    """The canonical name of a number format: ``"fp32"``, ``"fp16"``, ``"bf16"`` stay as they are;
    an int ``n`` or ``"intn"`` becomes ``"int<n>"`` (so ``8`` and ``"int8"`` are one format).

    Raises:
        TypeError / ValueError: as :func:`course_lib.encoding.bits_of` (``"8"``, ``8.0``, ``"int64"``).
    """
    bits = bits_of(number_format)
    if isinstance(number_format, str):
        return number_format
    return f"int{bits}"


# ----------------------------------------------------------------------------- compressed layers

WEIGHT_LAYER_TYPES = (nn.Linear, nn.Conv2d)


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The ``Linear`` and ``Conv2d`` layers of a model, by name, in order: the layers whose
    weights pruning and quantization act on. Layers already inside a :class:`CompressedLayer`
    are not listed (the compressed layer stands for them).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    check_model(model)
    inside = [name for name, m in model.named_modules() if isinstance(m, CompressedLayer)]
    return {name: m for name, m in model.named_modules()
            if isinstance(m, WEIGHT_LAYER_TYPES)
            and not any(name.startswith(prefix + ".") for prefix in inside)}


@dataclass(frozen=True)
class StoredTensor:
    """One tensor as a compressed layer keeps it in storage.

    ``values`` holds the numbers to store (for a weight: the values as computed, so that its
    zeros are the positions a sparse encoding can skip); ``bits`` is the width of each stored
    value. Tensors of two or more dimensions may be stored in a sparse encoding; vectors
    (scales, zero-points, codebooks, biases) are stored dense.
    """
    name: str
    values: torch.Tensor
    bits: int

    def __post_init__(self) -> None:
        """Raises TypeError / ValueError for a non-str name, non-tensor values, or bits that are
        not an int in [1, 32] (what :func:`course_lib.encoding.bits_of` can count)."""
        check_type(self.name, "name", str, "a str")
        check_tensor(self.values, "values")
        check_int(self.bits, "bits", 1, 32)


class CompressedLayer(nn.Module):
    """A ``Linear`` or ``Conv2d`` whose weight is stored and computed in another form.

    Subclasses (:class:`course_lib.quantization.FakeQuantized`,
    :class:`course_lib.codebook.SharedWeights`) define

    * :meth:`weight_as_computed`: the weight the forward pass multiplies by;
    * :meth:`stored_tensors`: what a device would store, each tensor with its bits;
    * ``activation_bits``: the bits of the inputs it computes on (``None``: floating point).

    The wrapped ``layer`` gives the arithmetic (stride, padding, bias): :func:`count_macs` and
    :func:`peak_activation_bytes` count it as that layer.
    """

    activation_bits: int | None = None

    def __init__(self, layer: nn.Module):
        super().__init__()
        if not isinstance(layer, WEIGHT_LAYER_TYPES):
            raise TypeError(f"layer must be nn.Linear or nn.Conv2d, got {type(layer).__name__}")
        self.layer = layer

    def weight_as_computed(self) -> torch.Tensor:
        """The weight the forward pass multiplies by, of the wrapped layer's weight shape."""
        raise NotImplementedError

    def stored_tensors(self) -> list[StoredTensor]:
        """What a device would store for this layer, each tensor with its bits."""
        raise NotImplementedError

    def run_layer(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The wrapped layer's operation with another weight (its own bias, stride, padding)."""
        if isinstance(self.layer, nn.Linear):
            return nn.functional.linear(x, weight, self.layer.bias)
        return self.layer._conv_forward(x, weight, self.layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped layer's operation with :meth:`weight_as_computed` as its weight."""
        return self.run_layer(x, self.weight_as_computed())


def compressed_layers(model: nn.Module) -> dict[str, CompressedLayer]:
    """The :class:`CompressedLayer` s of a model, by name, in order.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    check_model(model)
    return {name: m for name, m in model.named_modules() if isinstance(m, CompressedLayer)}


def _parameters_outside(model: nn.Module, compressed: dict[str, CompressedLayer]) -> list[torch.Tensor]:
    """Parameters that no compressed layer accounts for (plain layers, batch norm)."""
    owned = {id(p) for m in compressed.values() for p in m.parameters()}
    return [p for p in model.parameters() if id(p) not in owned]


# ----------------------------------------------------------------------------- counting

def count_parameters(model: nn.Module) -> int:
    """Number of weights and biases the model computes with; a compressed layer counts those of
    the layer it stands for (its codebook or scales are storage, counted in bytes).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    check_model(model)
    compressed = compressed_layers(model)
    return (sum(p.numel() for p in _parameters_outside(model, compressed))
            + sum(p.numel() for m in compressed.values() for p in m.layer.parameters()))


def count_nonzero(model: nn.Module) -> int:
    """Nonzero weights and biases, a compressed layer's weight counted as computed (so
    :math:`1 - \\text{nonzeros} / \\text{parameters}` is the model's sparsity).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    check_model(model)
    compressed = compressed_layers(model)
    total = sum(int(torch.count_nonzero(p)) for p in _parameters_outside(model, compressed))
    for m in compressed.values():
        total += int(torch.count_nonzero(m.weight_as_computed().detach()))
        if m.layer.bias is not None:
            total += int(torch.count_nonzero(m.layer.bias))
    return total


def tensor_bytes(t: torch.Tensor, number_format: str | int, encoding: str = "dense") -> int:
    """Bytes of one stored tensor: 2+ dimensions in ``encoding`` (``"best"``: its smallest
    one), vectors dense. ``t`` is not modified.

    Args:
        t: any shape, finite values.
        number_format: as :func:`course_lib.encoding.bits_of` (``"fp32"``, ``"int8"``, ``4``).
        encoding: one of :data:`course_lib.encoding.ENCODINGS`, or ``"best"``.

    Raises:
        TypeError: ``t`` is not a tensor, or ``number_format`` has a wrong type.
        ValueError: ``t`` holds NaN or inf, or an unknown format or encoding.
    """
    check_tensor(t, "t")
    bits_of(number_format)
    check_choice(encoding, "encoding", ENCODING_CHOICES)
    t = t.detach().cpu()
    if t.dim() < 2 or encoding == "dense":
        return storage_bytes(t, number_format, "dense")
    if encoding == "best":
        return best_encoding(t, number_format)[1]
    return storage_bytes(t, number_format, encoding)


def weight_bytes(model: nn.Module, number_format: str | int = "fp32", encoding: str = "dense") -> int:
    """Bytes to store the model: each compressed layer's :class:`StoredTensor` s at their own
    bits, every other parameter in ``number_format``; tensors of 2+ dimensions in ``encoding``
    (or, with ``encoding="best"``, each in its smallest one), vectors dense.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, or ``number_format`` has a wrong type.
        ValueError: an unknown format or encoding, or a parameter holding NaN or inf (its
            bytes in a sparse encoding would be meaningless).
    """
    check_model(model)
    bits_of(number_format)
    check_choice(encoding, "encoding", ENCODING_CHOICES)
    for name, p in model.named_parameters():
        check_finite(p, f"model parameter {name!r}", "check the training or compression step that produced it")
    compressed = compressed_layers(model)
    total = sum(tensor_bytes(p, number_format, encoding) for p in _parameters_outside(model, compressed))
    for m in compressed.values():
        total += sum(tensor_bytes(t.values, t.bits, encoding) for t in m.stored_tensors())
    return total


# ----------------------------------------------------------------------------- per-layer trace

@dataclass(frozen=True)
class LayerTrace:
    """One leaf layer as it ran on one input (batch size 1)."""
    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    macs: int
    parameters: int
    live_elements: int   # activation elements that must be in memory while this layer runs


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """MACs of one ``Linear`` or ``Conv*d`` layer for one sample, from its batched output
    ``(N, ...)``: each output value costs one MAC per input it sums, so a ``Linear`` costs
    :math:`|y| \\cdot C_{in}` and a convolution :math:`|y| \\cdot (C_{in}/g)\\,k_h k_w`, with
    :math:`|y|` the output elements of one sample. Any other layer costs 0.

    Raises:
        TypeError: ``module`` is not an ``nn.Module`` or ``output`` not a tensor.
        ValueError: ``output`` is not a batch of at least one sample of this layer's output
            (a ``Linear`` gives ``(N, ..., C_out)``, a ``Conv2d`` ``(N, C_out, H, W)``).
    """
    check_model(module, "module")
    check_tensor(output, "output")
    if isinstance(module, nn.Linear):
        fits = output.dim() >= 2 and output.shape[-1] == module.out_features
        expected = f"(N, ..., {module.out_features})"
    elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        fits = output.dim() == module.weight.dim() and output.shape[1] == module.out_channels
        expected = f"(N, {module.out_channels}, {', '.join('...' for _ in module.kernel_size)})"
    else:
        return 0
    if not fits or output.shape[0] < 1:
        raise ValueError(f"output must be a batch of {type(module).__name__} outputs {expected} with "
                         f"N >= 1, got shape {tuple(output.shape)}")
    out_per_sample = output[0].numel()
    if isinstance(module, nn.Linear):
        return out_per_sample * module.in_features
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        kernel = module.weight[0].numel()        # (C_in / groups) * kh * kw
        return out_per_sample * kernel
    return 0


def trace_layers(model: nn.Module, input_shape: tuple[int, ...] = IMAGE_SHAPE) -> list[LayerTrace]:
    """Run one zero input of shape ``(1, *input_shape)`` and record every leaf layer: its
    input and output shapes, :func:`layer_macs`, parameters, and the activation elements live
    while it runs (input + output; input only for in-place layers; none for views). The model's
    train/eval mode is restored afterwards.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, or ``input_shape`` not a tuple of ints.
        ValueError: ``input_shape`` holds a size < 1, or the model cannot run on it.
    """
    check_model(model)
    check_input_shape(input_shape)
    traces: list[LayerTrace] = []
    hooks = []

    def record(name: str):
        def hook(module, inputs, output):
            x = inputs[0]
            if isinstance(module, VIEW_LAYERS):
                live = 0
            elif isinstance(module, IN_PLACE_LAYERS):
                live = x[0].numel()
            else:
                live = x[0].numel() + output[0].numel()
            runs = module.layer if isinstance(module, CompressedLayer) else module
            traces.append(LayerTrace(name, type(module).__name__, tuple(x.shape[1:]),
                                     tuple(output.shape[1:]), layer_macs(runs, output),
                                     sum(p.numel() for p in runs.parameters(recurse=False)), live))
        return hook

    # Leaves are the layers that run: modules without children, and compressed layers, which
    # run their wrapped layer's arithmetic themselves (their children are not called).
    compressed = list(compressed_layers(model))
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in compressed):
            continue
        if isinstance(module, CompressedLayer) or len(list(module.children())) == 0:
            hooks.append(module.register_forward_hook(record(name)))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            run_on_shape(model, torch.zeros(1, *input_shape, device=device), input_shape)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return traces


def run_on_shape(model: nn.Module, x: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """``model(x)``, a shape mismatch reported as a ValueError naming ``input_shape``."""
    try:
        return model(x)
    except NotImplementedError:           # a layer's own gap (an unfinished CompressedLayer), not the shape
        raise
    except RuntimeError as e:
        raise ValueError(f"model cannot run on input_shape {tuple(input_shape)!r} (a batch of shape "
                         f"{tuple(x.shape)}); give the shape of one sample it takes. Torch said: {e}") from e


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = IMAGE_SHAPE) -> int:
    """Multiply-accumulates for one input of shape ``input_shape``: the sum of
    :func:`layer_macs` over :func:`trace_layers` (see the module docstring for what is counted).

    Raises:
        TypeError / ValueError: as :func:`trace_layers`.
    """
    return sum(t.macs for t in trace_layers(model, input_shape))


def peak_activation_bytes(model: nn.Module, input_shape: tuple[int, ...] = IMAGE_SHAPE,
                          number_format: str | int = "fp32") -> int:
    """Peak bytes of activations for one input, layer by layer:
    :math:`\\lceil b \\cdot \\max_i(|x_i|+|y_i|) / 8 \\rceil` with :math:`b` the bits of
    ``number_format`` (see the module docstring for in-place layers and views).

    Raises:
        TypeError / ValueError: as :func:`trace_layers`, or a bad ``number_format``
            (:func:`course_lib.encoding.bits_of`).
    """
    check_model(model)
    check_input_shape(input_shape)
    bits = bits_of(number_format)
    peak = max((t.live_elements for t in trace_layers(model, input_shape)), default=0)
    return -(-peak * bits // 8)


# ----------------------------------------------------------------------------- latency

@dataclass(frozen=True)
class Latency:
    """Seconds per call of ``model(x)`` for a batch: median and spread of ``times``.

    Raises (on construction):
        TypeError / ValueError: ``batch_size`` or ``threads`` not an int >= 1, ``device`` not a
            str, or ``times`` not a non-empty tuple of finite numbers >= 0.
    """
    batch_size: int
    threads: int
    device: str
    times: tuple[float, ...]

    def __post_init__(self) -> None:
        check_int(self.batch_size, "batch_size", 1)
        check_int(self.threads, "threads", 1)
        check_type(self.device, "device", str, "a str like 'cpu'")
        if not isinstance(self.times, tuple) or not self.times:
            raise TypeError(f"times must be a non-empty tuple of seconds, got {self.times!r}")
        for t in self.times:
            if not is_real(t) or not (math.isfinite(t) and t >= 0):
                raise ValueError(f"times must hold finite numbers of seconds >= 0, got {t!r}")

    @property
    def median(self) -> float:
        """Median of ``times``, in seconds per call (per batch)."""
        return statistics.median(self.times)

    @property
    def per_sample(self) -> float:
        """``median / batch_size``: seconds per example."""
        return self.median / self.batch_size

    def quantile(self, q: float) -> float:
        """The ``q``-quantile of ``times`` by rank: :math:`t_{(\\min(n-1, \\lfloor q n \\rfloor))}` of
        the :math:`n` times sorted ascending, so ``q=0`` is the fastest run, ``q=1`` the slowest.

        Raises:
            TypeError: ``q`` is not a real number. ValueError: ``q`` is NaN or outside [0, 1].
        """
        if not is_real(q):
            raise TypeError(f"q must be a number in [0, 1], got {describe(q)}")
        if not 0.0 <= q <= 1.0:           # also False for NaN
            raise ValueError(f"q must be in [0, 1], got {q}")
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def torch_threads(threads: int | None):
    """Run a block with ``torch.set_num_threads(threads)``, restoring the previous value; the
    block receives the number of threads in use. ``None`` keeps the current setting.

    Raises (on entering the block, before anything changes):
        TypeError: ``threads`` is neither None nor an int. ValueError: it is < 1.
    """
    check_int(threads, "threads", 1, allow_none=True)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def _timed_call(model: nn.Module, x: torch.Tensor) -> float:
    synchronize = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    synchronize()
    start = time.perf_counter()
    model(x)
    synchronize()
    return time.perf_counter() - start


def _example_input(model: nn.Module, input_shape, batch_size) -> torch.Tensor:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch_size, *input_shape, generator=generator).to(device)


def measure_latency(model: nn.Module, input_shape: tuple[int, ...] = IMAGE_SHAPE,
                    batch_size: int = 1, warmup: int = 10, repeats: int = 50,
                    threads: int | None = None) -> Latency:
    """Time ``model(x)`` on a random batch ``(batch_size, *input_shape)`` on the model's
    device, in eval mode, no grad: ``warmup`` untimed calls, then ``repeats`` timed ones with
    ``threads`` torch threads (None: torch's current setting). The model's mode is restored.

    Raises:
        TypeError / ValueError: as :func:`compare_latency`.
    """
    return compare_latency({"model": model}, input_shape, batch_size, warmup, repeats, threads)["model"]


def compare_latency(models: dict[str, nn.Module], input_shape: tuple[int, ...] = IMAGE_SHAPE,
                    batch_size: int = 1, warmup: int = 10, repeats: int = 50,
                    threads: int | None = None) -> dict[str, Latency]:
    """Time several models in one process, their runs interleaved (a, b, a, b, ...) so that a
    burst of machine noise slows all of them alike. Divide medians for a speedup.

    Each model gets the same random batch ``(batch_size, *input_shape)`` on its own device;
    ``warmup`` rounds are untimed, ``repeats`` rounds timed, with ``threads`` torch threads
    (None: torch's current setting). Models run in eval mode under ``torch.inference_mode``;
    their train/eval modes and the thread count are restored afterwards, also on error.

    Raises:
        TypeError: ``models`` is not a dict of ``nn.Module``, or an argument has a wrong type
            (``batch_size=2.0``, ``threads=True``).
        ValueError: ``models`` is empty, ``batch_size``, ``repeats`` or ``threads`` < 1,
            ``warmup`` < 0, a bad ``input_shape``, or a model that cannot run on it.
    """
    check_type(models, "models", dict, "a dict {name: model}")
    if not models:
        raise ValueError("models must hold at least one model, got an empty dict")
    for name, m in models.items():
        check_model(m, f"models[{name!r}]")
    check_input_shape(input_shape)
    check_int(batch_size, "batch_size", 1)
    check_int(warmup, "warmup", 0)
    check_int(repeats, "repeats", 1)
    check_int(threads, "threads", 1, allow_none=True)
    inputs = {name: _example_input(m, input_shape, batch_size) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    states = {name: m.training for name, m in models.items()}
    with torch_threads(threads) as used_threads, torch.inference_mode():
        for m in models.values():
            m.eval()
        running = next(iter(models))
        try:
            for _ in range(warmup):
                for running, m in models.items():
                    _timed_call(m, inputs[running])
            for _ in range(repeats):
                for running, m in models.items():
                    times[running].append(_timed_call(m, inputs[running]))
        except NotImplementedError:
            raise
        except RuntimeError as e:
            raise ValueError(f"model {running!r} cannot run on input_shape {tuple(input_shape)!r} "
                             f"(a batch of shape {tuple(inputs[running].shape)}). Torch said: {e}") from e
        finally:
            for name, m in models.items():
                m.train(states[name])
    return {name: Latency(batch_size, used_threads, str(inputs[name].device), tuple(t))
            for name, t in times.items()}


@dataclass(frozen=True)
class Speedup:
    """A candidate against a baseline, timed side by side: ``ratio`` > 1 means faster."""
    baseline: Latency
    candidate: Latency

    @property
    def ratio(self) -> float:
        """``baseline.median / candidate.median``."""
        return self.baseline.median / self.candidate.median


def speedup(baseline: nn.Module, candidate: nn.Module, *, input_shape: tuple[int, ...] = IMAGE_SHAPE,
            batch_size: int = 1, warmup: int = 10, repeats: int = 50, threads: int | None = None) -> Speedup:
    """Median latency of ``baseline`` over that of ``candidate``, measured interleaved by
    :func:`compare_latency` (same keyword arguments): :math:`t_{baseline} / t_{candidate}`.

    Raises:
        TypeError / ValueError: as :func:`compare_latency`, naming ``baseline`` or ``candidate``.
    """
    result = compare_latency({"baseline": baseline, "candidate": candidate}, input_shape, batch_size,
                             warmup, repeats, threads)
    return Speedup(result["baseline"], result["candidate"])


# ----------------------------------------------------------------------------- the report

@dataclass(frozen=True)
class ModelReport:
    """Everything the course measures about a model, in one place.

    ``latency`` maps batch size to a measured :class:`Latency` (empty unless asked for).
    Estimated latencies on other devices live in :mod:`course_lib.hardware`, never here.
    """
    name: str
    number_format: str
    encoding: str
    parameters: int
    nonzeros: int
    weight_bytes: int
    macs: int
    peak_activation_bytes: int
    activation_traffic_bytes: int
    layers: tuple[LayerTrace, ...]
    latency: dict[int, Latency] = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        """Fraction of zeros among the parameters: ``1 - nonzeros / parameters`` (0 if none)."""
        return 1.0 - self.nonzeros / self.parameters if self.parameters else 0.0

    def summary(self) -> dict[str, object]:
        """A flat dict for a table row (latency in milliseconds per batch, median)."""
        row: dict[str, object] = {
            "model": self.name, "format": self.number_format, "encoding": self.encoding,
            "parameters": self.parameters, "nonzeros": self.nonzeros,
            "weight KiB": round(self.weight_bytes / 1024, 1), "MACs": self.macs,
            "peak activations KiB": round(self.peak_activation_bytes / 1024, 1),
        }
        for batch, lat in sorted(self.latency.items()):
            row[f"measured ms (batch {batch})"] = round(1000 * lat.median, 3)
        return row


def model_arithmetic_format(model: nn.Module) -> str:
    """The number format a model computes in: ``"int<b>"`` when every weight layer is a
    :class:`CompressedLayer` whose inputs are quantized (``b`` the widest input bits), else
    ``"fp32"`` (plain layers, or weight-only compression, compute in floating point).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    compressed = compressed_layers(model)
    plain = weight_layers(model)
    bits = [m.activation_bits for m in compressed.values()]
    if compressed and not plain and all(b is not None for b in bits):
        return f"int{max(bits)}"
    return "fp32"


def report(model: nn.Module, name: str = "model", number_format: str | int | None = None,
           encoding: str = "dense", input_shape: tuple[int, ...] = IMAGE_SHAPE,
           activation_format: str | int | None = None, latency_batch_sizes: tuple[int, ...] = (),
           threads: int | None = None, repeats: int = 50) -> ModelReport:
    """Measure ``model``: counts, bytes, MACs, activations, and (if ``latency_batch_sizes`` is
    given) measured latency at each batch size.

    Args:
        number_format: the format the model computes in and stores its plain parameters in.
            ``None``: :func:`model_arithmetic_format` (``"fp32"`` for a plain model, ``"int8"`` for a
            model whose layers all quantize their inputs to 8 bits). Give one to ask "what if
            this plain model were stored in int8?". Compressed layers always store their
            tensors at their own bits.
        name: what tables and verdicts call the model (a str).
        encoding: ``"dense"``, a sparse encoding, or ``"best"`` (each tensor in its smallest).
        input_shape: one sample's shape, no batch dimension, e.g. ``(1, 28, 28)``.
        activation_format: the activations' format; default ``number_format``.
        latency_batch_sizes: a tuple of ints >= 1; empty: no timing.
        threads, repeats: as :func:`measure_latency` (checked even when nothing is timed).

    Raises:
        TypeError / ValueError: naming the argument, for a bad model, name, format, encoding,
            shape, batch sizes, threads or repeats; all are checked before anything runs.
    """
    check_model(model)
    check_type(name, "name", str, "a str")
    check_choice(encoding, "encoding", ENCODING_CHOICES)
    check_input_shape(input_shape)
    expected = "a tuple of ints >= 1 like (1, 32)"
    check_type(latency_batch_sizes, "latency_batch_sizes", (tuple, list), expected)
    if any(not is_int(b) for b in latency_batch_sizes):
        raise TypeError(f"latency_batch_sizes must be {expected}, got {tuple(latency_batch_sizes)!r}")
    if any(b < 1 for b in latency_batch_sizes):
        raise ValueError(f"latency_batch_sizes must be {expected}, got {tuple(latency_batch_sizes)!r}")
    check_int(threads, "threads", 1, allow_none=True)
    check_int(repeats, "repeats", 1)
    if number_format is not None:
        number_format = format_name(number_format)
    if activation_format is not None:
        try:
            activation_format = format_name(activation_format)
        except (TypeError, ValueError) as e:        # bits_of names its argument number_format
            raise type(e)(str(e).replace("number_format", "activation_format", 1)) from None
    number_format = model_arithmetic_format(model) if number_format is None else number_format
    activation_format = number_format if activation_format is None else activation_format
    act_bits = bits_of(activation_format)
    layers = tuple(trace_layers(model, input_shape))
    traffic = sum(t.live_elements for t in layers)
    stored_bytes = weight_bytes(model, number_format, encoding)      # checks for NaN before timing
    latency = {b: measure_latency(model, input_shape, batch_size=b, threads=threads, repeats=repeats)
               for b in latency_batch_sizes}
    return ModelReport(
        name=name, number_format=number_format, encoding=encoding,
        parameters=count_parameters(model), nonzeros=count_nonzero(model),
        weight_bytes=stored_bytes,
        macs=sum(t.macs for t in layers),
        peak_activation_bytes=-(-max((t.live_elements for t in layers), default=0) * act_bits // 8),
        activation_traffic_bytes=-(-traffic * act_bits // 8),
        layers=layers, latency=latency)
