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

import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from .encoding import ENCODINGS, bits_of, storage_bytes
from .models import IMAGE_SHAPE

IN_PLACE_LAYERS = (nn.ReLU, nn.ReLU6, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Identity,
                   nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh)
VIEW_LAYERS = (nn.Flatten, nn.Unflatten)


def format_bytes(n: float) -> str:
    """Bytes for people, in the course's one convention, powers of 1024: ``"56.2 KiB"``
    (1 KiB = 1,024 bytes), ``"1.6 MiB"``, ``"4.0 GiB"``. (Datasheets write "KB" and "MB" for
    these same units: a "256 KB" SRAM holds 256 KiB.)"""
    for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _check_input_shape(input_shape: tuple[int, ...]) -> None:
    if not input_shape or any(int(s) < 1 for s in input_shape):
        raise ValueError(f"input_shape must be a tuple of positive ints (C, H, W), got {input_shape}")


def format_name(number_format: str | int) -> str:
    """The canonical name of a number format: ``"fp32"``, ``"fp16"``, ``"bf16"`` stay as they are;
    an int ``n`` or ``"intn"`` becomes ``"int<n>"`` (so ``8`` and ``"int8"`` are one format)."""
    bits = bits_of(number_format)
    if isinstance(number_format, str):
        return number_format
    return f"int{bits}"


# ----------------------------------------------------------------------------- compressed layers

WEIGHT_LAYER_TYPES = (nn.Linear, nn.Conv2d)


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The ``Linear`` and ``Conv2d`` layers of a model, by name, in order: the layers whose
    weights pruning and quantization act on. Layers already inside a :class:`CompressedLayer`
    are not listed (the compressed layer stands for them)."""
    _check_model(model)
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
        raise NotImplementedError

    def stored_tensors(self) -> list[StoredTensor]:
        raise NotImplementedError

    def run_layer(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The wrapped layer's operation with another weight (its own bias, stride, padding)."""
        if isinstance(self.layer, nn.Linear):
            return nn.functional.linear(x, weight, self.layer.bias)
        return self.layer._conv_forward(x, weight, self.layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_layer(x, self.weight_as_computed())


def compressed_layers(model: nn.Module) -> dict[str, CompressedLayer]:
    """The :class:`CompressedLayer` s of a model, by name."""
    _check_model(model)
    return {name: m for name, m in model.named_modules() if isinstance(m, CompressedLayer)}


def _parameters_outside(model: nn.Module, compressed: dict[str, CompressedLayer]) -> list[torch.Tensor]:
    """Parameters that no compressed layer accounts for (plain layers, batch norm)."""
    owned = {id(p) for m in compressed.values() for p in m.parameters()}
    return [p for p in model.parameters() if id(p) not in owned]


# ----------------------------------------------------------------------------- counting

def count_parameters(model: nn.Module) -> int:
    """Number of weights and biases the model computes with; a compressed layer counts those of
    the layer it stands for (its codebook or scales are storage, counted in bytes)."""
    _check_model(model)
    compressed = compressed_layers(model)
    return (sum(p.numel() for p in _parameters_outside(model, compressed))
            + sum(p.numel() for m in compressed.values() for p in m.layer.parameters()))


def count_nonzero(model: nn.Module) -> int:
    """Nonzero weights and biases, a compressed layer's weight counted as computed."""
    _check_model(model)
    compressed = compressed_layers(model)
    total = sum(int(torch.count_nonzero(p)) for p in _parameters_outside(model, compressed))
    for m in compressed.values():
        total += int(torch.count_nonzero(m.weight_as_computed().detach()))
        if m.layer.bias is not None:
            total += int(torch.count_nonzero(m.layer.bias))
    return total


def _check_encoding(encoding: str) -> None:
    if encoding not in (*ENCODINGS, "best"):
        raise ValueError(f"encoding must be one of {(*ENCODINGS, 'best')}, got {encoding!r}")


def tensor_bytes(t: torch.Tensor, number_format: str | int, encoding: str = "dense") -> int:
    """Bytes of one stored tensor: 2+ dimensions in ``encoding`` (``"best"``: its smallest
    one), vectors dense."""
    _check_encoding(encoding)
    t = t.detach().cpu()
    if t.dim() < 2 or encoding == "dense":
        return storage_bytes(t, number_format, "dense")
    if encoding == "best":
        return min(storage_bytes(t, number_format, e) for e in ENCODINGS)
    return storage_bytes(t, number_format, encoding)


def weight_bytes(model: nn.Module, number_format: str | int = "fp32", encoding: str = "dense") -> int:
    """Bytes to store the model: each compressed layer's :class:`StoredTensor` s at their own
    bits, every other parameter in ``number_format``; tensors of 2+ dimensions in ``encoding``
    (or, with ``encoding="best"``, each in its smallest one), vectors dense."""
    _check_model(model)
    bits_of(number_format)
    _check_encoding(encoding)
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
    """MACs of one ``Linear`` or ``Conv*d`` layer for one sample, from its output shape."""
    out_per_sample = output[0].numel()
    if isinstance(module, nn.Linear):
        return out_per_sample * module.in_features
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        kernel = module.weight[0].numel()        # (C_in / groups) * kh * kw
        return out_per_sample * kernel
    return 0


def trace_layers(model: nn.Module, input_shape: tuple[int, ...] = IMAGE_SHAPE) -> list[LayerTrace]:
    """Run one zero input of shape ``(1, *input_shape)`` and record every leaf layer."""
    _check_model(model)
    _check_input_shape(input_shape)
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
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return traces


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = IMAGE_SHAPE) -> int:
    """Multiply-accumulates for one input (see the module docstring for what is counted)."""
    return sum(t.macs for t in trace_layers(model, input_shape))


def peak_activation_bytes(model: nn.Module, input_shape: tuple[int, ...] = IMAGE_SHAPE,
                          number_format: str | int = "fp32") -> int:
    """Peak bytes of activations for one input, layer by layer: :math:`\\max_i(|x_i|+|y_i|)`."""
    bits = bits_of(number_format)
    peak = max((t.live_elements for t in trace_layers(model, input_shape)), default=0)
    return -(-peak * bits // 8)


# ----------------------------------------------------------------------------- latency

@dataclass(frozen=True)
class Latency:
    """Seconds per call of ``model(x)`` for a batch: median and spread of ``times``."""
    batch_size: int
    threads: int
    device: str
    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def per_sample(self) -> float:
        return self.median / self.batch_size

    def quantile(self, q: float) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def torch_threads(threads: int | None):
    """Run a block with ``torch.set_num_threads(threads)``, restoring the previous value."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def _check_timing_args(batch_size: int, warmup: int, repeats: int, threads: int | None) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")


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
    """Time ``model(x)`` on a random batch on the model's device, in eval mode, no grad."""
    return compare_latency({"model": model}, input_shape, batch_size, warmup, repeats, threads)["model"]


def compare_latency(models: dict[str, nn.Module], input_shape: tuple[int, ...] = IMAGE_SHAPE,
                    batch_size: int = 1, warmup: int = 10, repeats: int = 50,
                    threads: int | None = None) -> dict[str, Latency]:
    """Time several models in one process, their runs interleaved (a, b, a, b, ...) so that a
    burst of machine noise slows all of them alike. Divide medians for a speedup."""
    if not models:
        raise ValueError("models must hold at least one model")
    for m in models.values():
        _check_model(m)
    _check_input_shape(input_shape)
    _check_timing_args(batch_size, warmup, repeats, threads)
    inputs = {name: _example_input(m, input_shape, batch_size) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    states = {name: m.training for name, m in models.items()}
    with torch_threads(threads) as used_threads, torch.inference_mode():
        for m in models.values():
            m.eval()
        try:
            for _ in range(warmup):
                for name, m in models.items():
                    _timed_call(m, inputs[name])
            for _ in range(repeats):
                for name, m in models.items():
                    times[name].append(_timed_call(m, inputs[name]))
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
        return self.baseline.median / self.candidate.median


def speedup(baseline: nn.Module, candidate: nn.Module, **timing) -> Speedup:
    """Median latency of ``baseline`` over that of ``candidate``, measured interleaved."""
    result = compare_latency({"baseline": baseline, "candidate": candidate}, **timing)
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


def computed_format(model: nn.Module) -> str:
    """The number format a model computes in: ``"int<b>"`` when every weight layer is a
    :class:`CompressedLayer` whose inputs are quantized (``b`` the widest input bits), else
    ``"fp32"`` (plain layers, or weight-only compression, compute in floating point)."""
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
            ``None``: :func:`computed_format` (``"fp32"`` for a plain model, ``"int8"`` for a
            model whose layers all quantize their inputs to 8 bits). Give one to ask "what if
            this plain model were stored in int8?". Compressed layers always store their
            tensors at their own bits.
        encoding: ``"dense"``, a sparse encoding, or ``"best"`` (each tensor in its smallest).
        activation_format: the activations' format; default ``number_format``.

    Raises:
        TypeError / ValueError: naming the argument, for a bad model, format, encoding or shape.
    """
    _check_model(model)
    _check_encoding(encoding)
    number_format = computed_format(model) if number_format is None else format_name(number_format)
    activation_format = number_format if activation_format is None else format_name(activation_format)
    act_bits = bits_of(activation_format)
    layers = tuple(trace_layers(model, input_shape))
    traffic = sum(t.live_elements for t in layers)
    latency = {b: measure_latency(model, input_shape, batch_size=b, threads=threads, repeats=repeats)
               for b in latency_batch_sizes}
    return ModelReport(
        name=name, number_format=number_format, encoding=encoding,
        parameters=count_parameters(model), nonzeros=count_nonzero(model),
        weight_bytes=weight_bytes(model, number_format, encoding),
        macs=sum(t.macs for t in layers),
        peak_activation_bytes=-(-max((t.live_elements for t in layers), default=0) * act_bits // 8),
        activation_traffic_bytes=-(-traffic * act_bits // 8),
        layers=layers, latency=latency)
