"""Deployment with a real int8 runtime: ONNX Runtime's static QDQ quantization.

Fake quantization shows what fewer bits cost in accuracy, but it still computes in float. To be
*faster*, the arithmetic itself must run on 8-bit integers. Here the float model is exported to
ONNX, ONNX Runtime quantizes it statically (weights per channel to int8, activations to uint8
with ranges calibrated on real images, in the "QDQ" format), and its graph optimizer fuses each
QuantizeLinear/DequantizeLinear pair around a Conv or Gemm into an integer kernel (``QLinearConv``,
``QGemm``...). :func:`int8_op_counts` reads the optimized graph to prove those kernels run;
:func:`int8_speedup` times int8 against fp32 in one run, and :func:`operator_profile` reads ONNX
Runtime's profiler to show where the time goes, operator by operator.

Integer kernels win where the CPU multiplies int8 fast: x86 with AVX-512 VNNI or AVX-VNNI
(``vpdpbusd``: 64 int8 multiply-adds per instruction), Arm with the dot-product extension. Without
them, or for layers too small to amortise quantizing their inputs, int8 can be no faster.

**The same int8 model on every CPU.** x86 CPUs without VNNI (most laptops and desktops sold before
2020, AMD before Zen 4) multiply uint8 activations by int8 weights with ``vpmaddubsw``, which adds
each *pair* of neighbouring products into a 16-bit integer and saturates it: with :math:`x \\le 255`,
:math:`255\\,(w_a + w_b)` leaves :math:`[-32768, 32767]` as soon as two same-sign weight codes have
:math:`|w_a| + |w_b| > 128`. Full-range int8 weights (:math:`[-127, 127]`) give wrong sums there, and
the answers change with the CPU (ONNX Runtime's quantization guide warns of it). VNNI's
``vpdpbusd``, AMX and Arm's kernels accumulate in 32 bits and never saturate. So the course quantizes
weights so that no two same-sign codes of one output channel sum past :data:`INT16_PAIR_LIMIT` = 128,
whatever the kernel pairs (``weight_range="saturation_safe"``, the default): each channel keeps its
8-bit scale where one weight dominates and falls to 7 bits only where it must. ONNX Runtime's own
remedy, ``reduce_range`` (7-bit weights, :math:`[-64, 64]`, every channel), is ``"reduced"``;
``"full"`` is the range that saturates, kept to show the failure. :func:`int16_pair_sums` checks a
quantized file; :func:`cpu_int8` says what this CPU does.

**How the default was chosen** (the record). Candidates exact on every CPU: ``"reduced"``,
``"saturation_safe"``, and uint8 weights (ONNX Runtime's u8 x u8 kernels widen to 16 bits first).
The rule, fixed before scoring: drop a candidate that is clearly slower than int8 over the full range;
among the rest, take the best mean validation accuracy over the five int8 models the course deploys
(LeNet-5, LeNet-300-100, the small Fashion CNN, the MobileNetV2-style x1.0 of notebook 05, notebook 10's
factorised student), calibrated on the first 1,000 training images; ONNX Runtime 1.32.0 on a 2-core
AVX-512 VNNI machine (exact there). Validation accuracy, % (fp32 / full / reduced / saturation_safe / u8 x u8):
LeNet-5 99.72 / 99.68 / 99.70 / 99.72 / 99.66; LeNet-300-100 99.02 / 99.04 / 99.08 / 99.02 / 99.04;
small CNN 93.40 / 93.36 / 93.44 / 93.48 / 93.44; MobileNetV2-style 91.28 / 91.28 / 90.84 / 91.18 / 91.18;
student 91.26 / 91.28 / 91.14 / 91.18 / 91.30. u8 x u8 was dropped for speed (int8 over fp32 at batch 64:
0.92x against 1.59x for LeNet-5, 0.52x against 0.97x for the MobileNetV2-style network); the two signed
ranges ran at the same speed within timing noise (1.65x / 1.65x, 0.95x / 0.90x). Mean validation:
reduced 94.84 %, saturation_safe 94.92 %; on the MobileNetV2-style network 43 images right only with
saturation_safe against 26 only with reduced (a paired count, p about 0.05), level elsewhere (over the
five models, 85 against 66, p = 0.14: level within noise overall, ahead where 7 bits cost most). Test
accuracies were computed in the same sweep and reported, not used: full 99.49 / 98.97 / 93.26 / 91.58 /
91.33, reduced 99.48 / 98.97 / 93.23 / 91.01 / 91.35, saturation_safe 99.48 / 98.96 / 93.27 / 91.28 / 91.22.
The full range on a CPU without VNNI (the NumPy forward with ``accumulation="int16_pairs"``, and ONNX
Runtime under QEMU's Haswell model for the MobileNetV2-style network): 99.43 / 98.85 / 92.69 / 85.29 / 90.34.
Taught in ``notebooks/02_quantization.ipynb``; the profile and the speedup in notebook 10.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .checks import check_choice, check_int, check_model, check_path, check_tensor, check_type
from .data import ImageSplit, check_split
from .measure import Speedup, run_on_shape, check_input_shape, speedup
from .models import IMAGE_SHAPE

__all__ = ["INT8_OPS", "WEIGHT_RANGES", "INT16_PAIR_LIMIT", "check_file_path", "check_onnx_file", "WEIGHT_OPS",
           "DOT_PRODUCT_FLAGS", "SATURATING_FLAGS", "cpu_int8_features", "CpuInt8", "cpu_int8", "classify_cpu",
           "export_onnx", "load_onnx_graph", "saturation_safe_range", "int16_pair_sums", "quantize_onnx_int8", "ort_session",
           "int8_op_counts", "OrtModel", "deploy_int8", "OperatorTime", "OVERHEAD", "operator_profile",
           "int8_speedup"]

INT8_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "MatMulInteger", "ConvInteger",
            "DynamicQuantizeMatMul", "MatMulIntegerToFloat")
WEIGHT_RANGES = ("saturation_safe", "reduced", "full")
WEIGHT_OPS = ("Conv", "Gemm", "MatMul")          # the operators whose input 1 is a weight
INT16_PAIR_LIMIT = 128      # 255 * 128 = 32,640 <= 32,767: two same-sign products of uint8 x int8 fit int16


# ----------------------------------------------------------------------------- argument checks

def check_file_path(path: Path | str, name: str) -> Path:
    """A file path (str or Path) whose folder exists, as a Path."""
    path = check_path(path, name)
    if not path.parent.is_dir():
        raise ValueError(f"{name} must be in an existing folder, got {str(path)!r}; "
                         f"create {str(path.parent)!r} first")
    if path.is_dir():
        raise ValueError(f"{name} must name a file, got the folder {str(path)!r}")
    return path


def check_onnx_file(path: Path | str, name: str) -> Path:
    """An existing file (str or Path), as a Path."""
    path = check_path(path, name)
    if not path.is_file():
        raise ValueError(f"{name} must be an existing ONNX file, got {str(path)!r}, which "
                         f"{'is a folder' if path.is_dir() else 'does not exist'}")
    return path


def _check_calibration(calibration: ImageSplit) -> None:
    """:func:`course_lib.data.check_split`, with ``course_lib.data.load`` named in full."""
    check_type(calibration, "calibration", ImageSplit, "an ImageSplit (from course_lib.data.load)")
    check_split(calibration, "calibration")


DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
SATURATING_FLAGS = ("avx2", "avx512bw")     # x86 int8 paths through vpmaddubsw (as SSE4.1's pmaddubsw)


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux), None where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            return set(f.read().split())
    except OSError:
        return None


def cpu_int8_features() -> list[str]:
    """The CPU's int8 dot-product features (:data:`DOT_PRODUCT_FLAGS`), from ``/proc/cpuinfo``
    (Linux; empty elsewhere): VNNI and AMX on x86, the dot product (``asimddp``) on Arm."""
    flags = _cpu_flags() or set()
    return [w for w in DOT_PRODUCT_FLAGS if w in flags]


class CpuInt8(NamedTuple):
    """What this CPU does with ONNX Runtime's uint8 x int8 kernels (:func:`cpu_int8`).

    ``flags``: the int8-relevant flags found. ``dot_product``: VNNI, AMX or Arm's dot product, so
    int8 arithmetic is fast and 32-bit exact. ``saturates``: an x86 CPU without them, whose kernels
    add pairs of products in int16 with saturation (True), or not (False), or unknown (None: the
    flags could not be read). ``description``: one line for a learner."""
    machine: str
    flags: tuple[str, ...]
    dot_product: bool
    saturates: bool | None
    description: str


def cpu_int8() -> CpuInt8:
    """This CPU's int8 arithmetic as ONNX Runtime's kernels (MLAS) use it.

    * x86 with AVX-VNNI, AVX512-VNNI or AMX: ``vpdpbusd`` / tile multiplies sum four uint8 x int8
      products straight into int32: fast and exact.
    * x86 without them (AVX-512BW, AVX2 or SSE4.1): ``vpmaddubsw`` adds pairs of products into
      int16 with saturation, then ``vpmaddwd`` widens to int32; exact only if no pair leaves int16
      (:data:`INT16_PAIR_LIMIT`). ONNX Runtime's own comment on its session option
      ``session.x64quantprecision`` says so, and its quantization guide.
    * Arm64: the dot product (``sdot``/``udot``), or 16-bit products (``smull``/``umull``) added
      pairwise into 32 bits (``sadalp``); a product of two 8-bit codes fits 16 bits (only
      :math:`(-128)^2` would not, and symmetric weights never hold -128): nothing saturates.

    The flags come from ``/proc/cpuinfo`` (Linux); elsewhere they are unknown (``saturates`` None),
    except on Apple silicon, whose cores all have the Arm dot product.
    """
    import platform

    return classify_cpu(platform.machine(), platform.system(), _cpu_flags())


def classify_cpu(machine: str, system: str, flags: set[str] | None) -> CpuInt8:
    """:func:`cpu_int8` for a given machine name (``platform.machine()``), operating system
    (``platform.system()``) and set of CPU flags (None: unknown), so that every CPU class can be
    tested on any machine."""
    machine = machine.lower()
    arm = machine in ("arm64", "aarch64")
    if flags is None:
        apple = arm and system == "Darwin"
        found = ("asimddp",) if apple else ()
        return CpuInt8(machine, found, apple, False if arm else None,
                       "Apple silicon: Arm dot product, exact 32-bit int8 sums" if apple else
                       "CPU flags unknown (no /proc/cpuinfo): whether int8 sums saturate cannot be told")
    found = tuple(f for f in DOT_PRODUCT_FLAGS + SATURATING_FLAGS if f in flags)
    dot = any(f in flags for f in DOT_PRODUCT_FLAGS)
    if arm:
        return CpuInt8(machine, found, dot, False,
                       "Arm64 " + ("with the dot product (sdot/udot)" if dot else "without the dot product")
                       + ": exact 32-bit int8 sums")
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return CpuInt8(machine, found, dot, None, f"{machine}: how ONNX Runtime's int8 kernels add is not known here")
    if dot:
        return CpuInt8(machine, found, True, False,
                       f"x86 with {', '.join(f for f in found if f in DOT_PRODUCT_FLAGS)}: "
                       f"int8 dot products into int32, fast and exact")
    return CpuInt8(machine, found, False, True,
                   f"x86 with {', '.join(found) or 'SSE4.1'} but no VNNI: uint8 x int8 products are added "
                   f"in pairs into int16 with saturation (vpmaddubsw)")


def export_onnx(model: nn.Module, path: Path | str, input_shape: tuple[int, ...] = IMAGE_SHAPE) -> Path:
    """Export ``model`` (eval mode, CPU copy) to ONNX with a dynamic batch dimension: input
    ``"x"`` of shape ``(batch, *input_shape)``, output ``"logits"``. The given model is not
    changed. Returns ``path`` as a Path.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``path`` not a str or Path, or
            ``input_shape`` not a tuple of ints.
        ValueError: ``path``'s folder does not exist (or ``path`` is a folder), ``input_shape``
            holds a size < 1, or the model cannot run on an input of that shape.
    """
    check_model(model)
    path = check_file_path(path, "path")
    check_input_shape(input_shape)
    cpu_model = copy.deepcopy(model).cpu().eval()         # the given model is left as it was
    x = torch.zeros(1, *input_shape)
    with torch.no_grad():
        run_on_shape(cpu_model, x, input_shape)          # a clear error before the exporter's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(cpu_model, (x,), str(path), dynamo=False,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return path


def saturation_safe_range(weight: np.ndarray, channel_axis: int = 0) -> np.ndarray:
    """Per output channel, the symmetric range :math:`r` whose int8 codes
    :math:`q = \\mathrm{round}(127\\, w / r)` never saturate a 16-bit pair: with :math:`m_1` the
    largest magnitude of the channel and :math:`p_1 \\ge p_2` (:math:`n_1 \\ge n_2`) its two largest
    positive weights (magnitudes of negative ones),

    .. math:: r = \\max\\Big(m_1,\\; \\tfrac{127}{128}\\,(p_1 + p_2),\\; \\tfrac{127}{128}\\,(n_1 + n_2)\\Big),

    so that :math:`|q_a| + |q_b| \\le 128` for any two same-sign codes (their real sum is at most
    128 codes, and two roundings of numbers summing to an integer sum to it), whichever two a
    kernel pairs. A channel with one dominant weight keeps its full 8-bit scale (:math:`r = m_1`);
    one whose two largest weights are equal falls to 7 bits (:math:`r = 2 m_1 \\cdot 127/128`).
    Mixed signs never overflow (:math:`255 \\cdot 127 < 2^{15}`).

    Args:
        weight: float weights, any shape with ``channel_axis`` the output channels.
        channel_axis: the axis of output channels (0 for Conv and for Gemm with ``transB``).

    Returns:
        float32 array of one range per channel, each > 0 (a channel of zeros gets a tiny one).
    """
    rows = _channel_rows(np.asarray(weight, dtype=np.float64), channel_axis)
    pair = _same_sign_pair_sums(rows)
    r = np.maximum(np.abs(rows).max(axis=1), pair * 127 / 128 * (1 + 1e-6))   # 1e-6: float32 rounding of r
    return np.maximum(r, 1e-8).astype(np.float32)


def _channel_rows(weight: np.ndarray, channel_axis: int) -> np.ndarray:
    """``weight`` as one row per output channel: (channels, the rest)."""
    w = np.moveaxis(weight, channel_axis, 0)
    return w.reshape(w.shape[0], -1)


def _same_sign_pair_sums(rows: np.ndarray) -> np.ndarray:
    """Per row, the largest sum of two entries of one sign, in magnitude: the larger of the two
    largest positive entries' sum and the two largest negative entries' magnitudes' sum."""
    def top_two(a: np.ndarray) -> np.ndarray:                  # the sum of each row's two largest
        return -np.sum(np.partition(-a, 1, axis=1)[:, :2], axis=1) if a.shape[1] >= 2 else a.max(axis=1)
    return np.maximum(top_two(np.maximum(rows, 0)), top_two(np.maximum(-rows, 0)))


def _output_channel_axis(node, ndim: int) -> int:
    """The axis of a Conv / Gemm / MatMul weight that holds the output channels (ONNX layouts)."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        return 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
    return ndim - 1


def load_onnx_graph(path: Path, name: str):
    """The graph of the ONNX file ``path``; a file that is not ONNX is a ValueError naming the
    argument ``name``."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(str(path)).graph
    except DecodeError as e:
        raise ValueError(f"{name} {str(path)!r} is not an ONNX model ({e})") from e


def _weight_overrides(prepared: Path, per_channel: bool) -> dict:
    """ONNX Runtime ``TensorQuantOverrides`` giving each Conv / Gemm / MatMul weight of ``prepared``
    its :func:`saturation_safe_range` (per channel, or the widest one for the whole tensor)."""
    from onnx import numpy_helper

    graph = load_onnx_graph(prepared, "prepared")
    initializers = {i.name: i for i in graph.initializer}
    overrides = {}
    for node in graph.node:
        if node.op_type not in WEIGHT_OPS or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])
        axis = _output_channel_axis(node, weight.ndim)
        r = saturation_safe_range(weight, axis)
        if per_channel:
            channels = [{"rmin": np.array(-v, np.float32), "rmax": np.array(v, np.float32)} for v in r]
            channels[0]["axis"] = axis
            overrides[node.input[1]] = channels
        else:
            overrides[node.input[1]] = [{"rmin": np.array(-r.max(), np.float32), "rmax": np.array(r.max(), np.float32)}]
    return overrides


def int16_pair_sums(int8_path: Path | str) -> dict[str, int]:
    """For each int8 weight of a QDQ model feeding a Conv, Gemm or MatMul, the largest
    :math:`|q_a| + |q_b|` over two same-sign codes of one output channel: the worst pair a
    ``vpmaddubsw`` kernel could add, however it orders the reduction. Every value
    :math:`\\le` :data:`INT16_PAIR_LIMIT` means the model computes exactly on every CPU; above it,
    x86 CPUs without VNNI may saturate. Keys are the weights' initializer names.

    Raises:
        TypeError: ``int8_path`` is not a str or Path.
        ValueError: the file does not exist or is not an ONNX model.
    """
    int8_path = check_onnx_file(int8_path, "int8_path")
    from onnx import numpy_helper

    graph = load_onnx_graph(int8_path, "int8_path")
    initializers = {i.name: i for i in graph.initializer}
    consumers = defaultdict(list)
    for node in graph.node:
        for i, name in enumerate(node.input):
            consumers[name].append((node, i))
    sums = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in initializers:
            continue
        codes = numpy_helper.to_array(initializers[node.input[0]])
        users = [n for n, i in consumers[node.output[0]] if n.op_type in WEIGHT_OPS and i == 1]
        if codes.dtype != np.int8 or not users:
            continue
        rows = _channel_rows(codes.astype(np.int64), _output_channel_axis(users[0], codes.ndim))
        sums[node.input[0]] = int(_same_sign_pair_sums(rows).max())
    return sums


def quantize_onnx_int8(fp32_path: Path | str, int8_path: Path | str, calibration: ImageSplit,
                       n: int = 1000, per_channel: bool = True, weight_range: str = "saturation_safe") -> Path:
    """ONNX Runtime static quantization in QDQ format: int8 weights (per channel), uint8
    activations calibrated (min-max) on the first ``n`` images of ``calibration`` (all of them
    if it holds fewer), after ONNX Runtime's recommended pre-processing (shape inference, graph
    optimization), written beside ``int8_path`` as ``*.prepared.onnx``. Returns ``int8_path``.

    ``weight_range`` sets the weights' symmetric range, and so whether the model computes the same
    on every CPU (module docstring):

    * ``"saturation_safe"`` (default): each channel's :func:`saturation_safe_range`; no two
      same-sign codes sum past :data:`INT16_PAIR_LIMIT`, so the sums are exact on every CPU, and
      channels keep 8 bits where they can. Checked after writing (:func:`int16_pair_sums`).
    * ``"reduced"``: ONNX Runtime's ``reduce_range``: every weight in :math:`[-64, 64]` (7 bits).
    * ``"full"``: :math:`[-127, 127]`; exact only on CPUs with VNNI, AMX or Arm's kernels.

    Args:
        fp32_path: an existing ONNX file (from :func:`export_onnx`); not modified.
        int8_path: where to write the quantized model (its folder must exist; not ``fp32_path``).
        calibration: an :class:`~course_lib.data.ImageSplit` of images the model takes.
        n: an int >= 1. per_channel: a bool (one weight scale per output channel).
        weight_range: one of :data:`WEIGHT_RANGES`.

    Raises:
        TypeError: a path that is not a str or Path, ``calibration`` not an ImageSplit, ``n``
            not an int, ``per_channel`` not a bool.
        ValueError: ``fp32_path`` does not exist, ``int8_path``'s folder does not exist or it
            is ``fp32_path``, ``calibration`` is empty, ``n`` < 1, ``weight_range`` unknown.
    """
    fp32_path = check_onnx_file(fp32_path, "fp32_path")
    int8_path = check_file_path(int8_path, "int8_path")
    if int8_path.resolve() == fp32_path.resolve():
        raise ValueError(f"int8_path must differ from fp32_path (the float model would be "
                         f"overwritten), got {str(int8_path)!r} for both")
    _check_calibration(calibration)
    check_int(n, "n", 1)
    check_type(per_channel, "per_channel", bool, "a bool")
    check_choice(weight_range, "weight_range", WEIGHT_RANGES)
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images = calibration.images[:n].detach().float().cpu().numpy()        # (n, C, H, W) float32

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.chunks = iter([{"x": images[i:i + 100]} for i in range(0, len(images), 100)])

        def get_next(self):
            return next(self.chunks, None)

    prepared = int8_path.with_suffix(".prepared.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(fp32_path), str(prepared))     # shape inference and graph cleanup first
        extra = ({"TensorQuantOverrides": _weight_overrides(prepared, per_channel)}
                 if weight_range == "saturation_safe" else {})
        quantize_static(str(prepared), str(int8_path), Batches(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, reduce_range=weight_range == "reduced",
                        extra_options=extra)
    if weight_range != "full":
        worst = max(int16_pair_sums(int8_path).values(), default=0)
        if worst > INT16_PAIR_LIMIT:            # a guarantee, not a hope: never ship a model that may saturate
            raise RuntimeError(f"quantized weights have a same-sign pair summing to {worst} > "
                               f"{INT16_PAIR_LIMIT} despite weight_range={weight_range!r}; please report this")
    return int8_path


def ort_session(path: Path | str, threads: int | None = None, optimized_path: Path | str | None = None):
    """An ONNX Runtime CPU session with all graph optimizations; ``optimized_path`` saves the
    optimized graph (what actually runs).

    Args:
        path: an existing ONNX file.
        threads: intra-op threads, an int >= 1; None: torch's current thread count.
        optimized_path: None, or a file path in an existing folder.

    Raises:
        TypeError: a path that is not a str or Path, or ``threads`` neither None nor an int.
        ValueError: ``path`` does not exist, ``threads`` < 1, or ``optimized_path``'s folder
            does not exist.
    """
    path = check_onnx_file(path, "path")
    check_int(threads, "threads", 1, allow_none=True)
    if optimized_path is not None:
        optimized_path = check_file_path(optimized_path, "optimized_path")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads() if threads is None else threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle worker threads would otherwise spin for a while after each call, stealing the cores
    # from whatever runs next (another model timed in the same loop).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def int8_op_counts(optimized_path: Path | str) -> Counter:
    """How many nodes of each integer-kernel type (:data:`INT8_OPS`) the graph in
    ``optimized_path`` holds; types with no node are absent (a Counter reads them as 0).

    Raises:
        TypeError: ``optimized_path`` is not a str or Path.
        ValueError: the file does not exist or is not an ONNX model.
    """
    optimized_path = check_onnx_file(optimized_path, "optimized_path")
    graph = load_onnx_graph(optimized_path, "optimized_path")
    return Counter(node.op_type for node in graph.node if node.op_type in INT8_OPS)


class OrtModel(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` call interface, so the course's
    evaluation and latency tools (``train.evaluate``, ``measure.compare_latency``) time and
    score it exactly like a PyTorch model. CPU tensors in, CPU tensors out; no training.

    Raises (on construction):
        TypeError: ``session`` is not an ``onnxruntime.InferenceSession`` (from :func:`ort_session`).
    """

    def __init__(self, session):
        import onnxruntime as ort

        if not isinstance(session, ort.InferenceSession):
            raise TypeError(f"session must be an onnxruntime.InferenceSession (from ort_session), "
                            f"got {type(session).__name__}")
        super().__init__()
        self.session = session
        self.register_buffer("anchor", torch.zeros(1))   # gives the module a device (CPU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, *input_shape) float32 -> logits (B, classes) float32, on the CPU.

        Raises:
            TypeError: ``x`` is not a float32 tensor (the exported graph takes float32 only).
        """
        check_tensor(x, "x")
        if x.dtype != torch.float32:
            raise TypeError(f"x must be a float32 tensor, got dtype {x.dtype}; use x.float()")
        logits = self.session.run(None, {"x": np.ascontiguousarray(x.detach().cpu().numpy())})[0]
        return torch.from_numpy(logits)


def deploy_int8(model: nn.Module, calibration: ImageSplit, folder: Path | str,
                threads: int | None = None, weight_range: str = "saturation_safe") -> tuple[OrtModel, OrtModel, Counter]:
    """Export ``model``, quantize it to int8 with ONNX Runtime (:func:`quantize_onnx_int8`, with
    its ``weight_range``: by default exact on every CPU), and return
    ``(fp32 runtime model, int8 runtime model, int8 kernel counts of the optimized graph)``.

    Writes ``model_fp32.onnx``, ``model_int8.onnx`` and ``model_int8_optimized.onnx`` into
    ``folder`` (created if missing, and removed again if a step fails). The given model is not
    changed.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``calibration`` not an ImageSplit,
            ``folder`` not a str or Path, ``threads`` neither None nor an int.
        ValueError: ``calibration`` is empty, ``folder`` is an existing file, ``threads`` < 1,
            ``weight_range`` unknown (all checked before anything is written), or the model
            cannot run on a ``(1, 28, 28)`` image.
    """
    check_model(model)
    _check_calibration(calibration)
    check_choice(weight_range, "weight_range", WEIGHT_RANGES)
    folder = check_path(folder, "folder", "folder")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder must be a folder (created if missing), got the file {str(folder)!r}")
    check_int(threads, "threads", 1, allow_none=True)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fp32 = export_onnx(model, folder / "model_fp32.onnx")
        int8 = quantize_onnx_int8(fp32, folder / "model_int8.onnx", calibration, weight_range=weight_range)
        optimized = folder / "model_int8_optimized.onnx"
        fp32_model = OrtModel(ort_session(fp32, threads))
        int8_model = OrtModel(ort_session(int8, threads, optimized))
    except BaseException:
        if created:                       # leave no half-written folder behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return fp32_model, int8_model, int8_op_counts(optimized)


# ----------------------------------------------------------------------------- where ONNX Runtime spends its time

class OperatorTime(NamedTuple):
    """One row of :func:`operator_profile`: an operator type (or a node), its mean microseconds per
    run, and its share of the mean run time."""
    name: str
    op_type: str
    microseconds: float
    share: float


OVERHEAD = "(session overhead)"


def _profile_options(threads: int, prefix: str):
    import onnxruntime as ort

    options = ort.SessionOptions()              # as runtime.ort_session, with the profiler on
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    options.profile_file_prefix = prefix
    return options


def operator_profile(path: Path | str, batch_size: int = 1, runs: int = 200, warmup: int = 20,
                     threads: int = 1, by: str = "op_type", seed: int = 0) -> list[OperatorTime]:
    """Per-operator time of an ONNX model in ONNX Runtime, from its profiler
    (``SessionOptions.enable_profiling``; the JSON trace holds one ``"Node"`` event per kernel call
    and one ``"model_run"`` event per run, in microseconds). The model runs ``warmup + runs`` times
    on one seeded random batch; the warm-up runs are left out.

    Rows, slowest first: each operator type (``by="op_type"``) or node (``by="node"``) with its
    mean microseconds per run and share of the mean ``model_run`` time, then
    :data:`OVERHEAD`: the run time outside every kernel (input and output copies, scheduling).
    Shares add up to 1. The profiler counts whole microseconds, so tiny kernels read 0-3 us.

    Raises:
        TypeError / ValueError: ``path`` not an existing file; ``batch_size``, ``runs`` or
            ``threads`` not an int >= 1, ``warmup`` not an int >= 0, ``seed`` out of
            [0, 2**32 - 1]; ``by`` neither ``"op_type"`` nor ``"node"``.
    """
    path = check_onnx_file(path, "path")
    check_int(batch_size, "batch_size", 1)
    check_int(runs, "runs", 1)
    check_int(warmup, "warmup", 0)
    check_int(threads, "threads", 1)
    check_int(seed, "seed", 0, 2 ** 32 - 1)
    check_choice(by, "by", ("op_type", "node"))
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as folder:
        session = ort.InferenceSession(str(path), _profile_options(threads, str(Path(folder) / "profile")),
                                       providers=["CPUExecutionProvider"])
        graph_input = session.get_inputs()[0]
        shape = [batch_size, *(d if isinstance(d, int) else 1 for d in graph_input.shape[1:])]
        x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
        for _ in range(warmup + runs):
            session.run(None, {graph_input.name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    model_runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    start = model_runs[warmup]["ts"]                                   # the first timed run
    total = sum(e["dur"] for e in model_runs[warmup:]) / runs
    times: dict[tuple[str, str], float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["ts"] >= start and e["name"].endswith("_kernel_time"):
            op_type = e["args"]["op_name"]
            key = (op_type, op_type) if by == "op_type" else (e["name"][:-len("_kernel_time")], op_type)
            times[key] += e["dur"] / runs
    rows = [OperatorTime(name, op_type, t, t / total) for (name, op_type), t in times.items()]
    rows.sort(key=lambda r: -r.microseconds)
    outside = max(total - sum(r.microseconds for r in rows), 0.0)
    return rows + [OperatorTime(OVERHEAD, OVERHEAD, outside, outside / total)]


# ----------------------------------------------------------------------------- int8 against fp32, measured

def int8_speedup(fp32_path: Path | str, int8_path: Path | str, input_shape: tuple[int, ...] = IMAGE_SHAPE,
                 batch_size: int = 1, threads: int = 1, warmup: int = 20, repeats: int = 100) -> Speedup:
    """ONNX Runtime fp32 against ONNX Runtime int8 of the same model, timed in one run with their
    calls interleaved (:func:`course_lib.measure.speedup`: the median of ``repeats`` timed calls
    after ``warmup`` untimed ones, on the same seeded random batch). ``.ratio`` is
    :math:`t_{fp32} / t_{int8}`: above 1, int8 is faster. Both sessions use ``threads`` intra-op
    threads. Speed is a property of the machine: see :func:`course_lib.runtime.cpu_int8_features`.

    Raises:
        TypeError / ValueError: a path that is not an existing file, a bad ``input_shape``,
            ``batch_size``, ``threads`` or ``repeats`` not an int >= 1, ``warmup`` < 0.
    """
    fp32_path = check_onnx_file(fp32_path, "fp32_path")
    int8_path = check_onnx_file(int8_path, "int8_path")
    check_input_shape(input_shape)
    check_int(threads, "threads", 1)
    fp32 = OrtModel(ort_session(fp32_path, threads))
    int8 = OrtModel(ort_session(int8_path, threads))
    return speedup(fp32, int8, input_shape=input_shape, batch_size=batch_size, warmup=warmup,
                   repeats=repeats, threads=threads)
