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
Taught in ``notebooks/02_quantization.ipynb``; the profile and the speedup in notebook 08.
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
from .measure import Speedup, _run_on_shape, check_input_shape, speedup
from .models import IMAGE_SHAPE

INT8_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "MatMulInteger", "ConvInteger",
            "DynamicQuantizeMatMul", "MatMulIntegerToFloat")


# ----------------------------------------------------------------------------- argument checks

def _check_path(path: Path | str, name: str) -> Path:
    """A file path (str or Path) whose folder exists, as a Path."""
    path = check_path(path, name)
    if not path.parent.is_dir():
        raise ValueError(f"{name} must be in an existing folder, got {str(path)!r}; "
                         f"create {str(path.parent)!r} first")
    if path.is_dir():
        raise ValueError(f"{name} must name a file, got the folder {str(path)!r}")
    return path


def _check_onnx_file(path: Path | str, name: str) -> Path:
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


def cpu_int8_features() -> list[str]:
    """The CPU's int8 dot-product features, from ``/proc/cpuinfo`` (Linux; empty elsewhere)."""
    wanted = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return []
    return [w for w in wanted if w in flags]


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
    path = _check_path(path, "path")
    check_input_shape(input_shape)
    cpu_model = copy.deepcopy(model).cpu().eval()         # the given model is left as it was
    x = torch.zeros(1, *input_shape)
    with torch.no_grad():
        _run_on_shape(cpu_model, x, input_shape)          # a clear error before the exporter's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(cpu_model, (x,), str(path), dynamo=False,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return path


def quantize_onnx_int8(fp32_path: Path | str, int8_path: Path | str, calibration: ImageSplit,
                       n: int = 1000, per_channel: bool = True) -> Path:
    """ONNX Runtime static quantization in QDQ format: int8 weights (per channel), uint8
    activations calibrated (min-max) on the first ``n`` images of ``calibration`` (all of them
    if it holds fewer), after ONNX Runtime's recommended pre-processing (shape inference, graph
    optimization), written beside ``int8_path`` as ``*.prepared.onnx``. Returns ``int8_path``.

    Args:
        fp32_path: an existing ONNX file (from :func:`export_onnx`); not modified.
        int8_path: where to write the quantized model (its folder must exist; not ``fp32_path``).
        calibration: an :class:`~course_lib.data.ImageSplit` of images the model takes.
        n: an int >= 1. per_channel: a bool (one weight scale per output channel).

    Raises:
        TypeError: a path that is not a str or Path, ``calibration`` not an ImageSplit, ``n``
            not an int, ``per_channel`` not a bool.
        ValueError: ``fp32_path`` does not exist, ``int8_path``'s folder does not exist or it
            is ``fp32_path``, ``calibration`` is empty, ``n`` < 1.
    """
    fp32_path = _check_onnx_file(fp32_path, "fp32_path")
    int8_path = _check_path(int8_path, "int8_path")
    if int8_path.resolve() == fp32_path.resolve():
        raise ValueError(f"int8_path must differ from fp32_path (the float model would be "
                         f"overwritten), got {str(int8_path)!r} for both")
    _check_calibration(calibration)
    check_int(n, "n", 1)
    check_type(per_channel, "per_channel", bool, "a bool")
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
        quantize_static(str(prepared), str(int8_path), Batches(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
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
    path = _check_onnx_file(path, "path")
    check_int(threads, "threads", 1, allow_none=True)
    if optimized_path is not None:
        optimized_path = _check_path(optimized_path, "optimized_path")
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
    optimized_path = _check_onnx_file(optimized_path, "optimized_path")
    import onnx
    from google.protobuf.message import DecodeError

    try:
        graph = onnx.load(str(optimized_path)).graph
    except DecodeError as e:
        raise ValueError(f"optimized_path {str(optimized_path)!r} is not an ONNX model ({e})") from e
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
                threads: int | None = None) -> tuple[OrtModel, OrtModel, Counter]:
    """Export ``model``, quantize it to int8 with ONNX Runtime, and return
    ``(fp32 runtime model, int8 runtime model, int8 kernel counts of the optimized graph)``.

    Writes ``model_fp32.onnx``, ``model_int8.onnx`` and ``model_int8_optimized.onnx`` into
    ``folder`` (created if missing, and removed again if a step fails). The given model is not
    changed.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``calibration`` not an ImageSplit,
            ``folder`` not a str or Path, ``threads`` neither None nor an int.
        ValueError: ``calibration`` is empty, ``folder`` is an existing file, ``threads`` < 1
            (all checked before anything is written), or the model cannot run on a
            ``(1, 28, 28)`` image.
    """
    check_model(model)
    _check_calibration(calibration)
    folder = check_path(folder, "folder", "folder")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder must be a folder (created if missing), got the file {str(folder)!r}")
    check_int(threads, "threads", 1, allow_none=True)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fp32 = export_onnx(model, folder / "model_fp32.onnx")
        int8 = quantize_onnx_int8(fp32, folder / "model_int8.onnx", calibration)
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
    path = _check_onnx_file(path, "path")
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
    fp32_path = _check_onnx_file(fp32_path, "fp32_path")
    int8_path = _check_onnx_file(int8_path, "int8_path")
    check_input_shape(input_shape)
    check_int(threads, "threads", 1)
    fp32 = OrtModel(ort_session(fp32_path, threads))
    int8 = OrtModel(ort_session(int8_path, threads))
    return speedup(fp32, int8, input_shape=input_shape, batch_size=batch_size, warmup=warmup,
                   repeats=repeats, threads=threads)
