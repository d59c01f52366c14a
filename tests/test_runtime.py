
import pytest

from course_lib import data, measure, runtime, train, zoo


def test_int8_deployment_runs_integer_kernels_and_keeps_accuracy(tmp_path):
    model = zoo.load("lenet5")
    test = data.load("mnist", "test").subset(2000)
    fp32, int8, ops = runtime.deploy_int8(model, data.load("mnist", "train").subset(500), tmp_path)
    assert ops["QLinearConv"] == 2 and ops["QGemm"] + ops["QLinearMatMul"] + ops["MatMulInteger"] >= 1
    reference = train.evaluate(model, test).accuracy
    assert abs(train.evaluate(fp32, test).accuracy - reference) < 1e-6
    assert abs(train.evaluate(int8, test).accuracy - reference) < 0.005
    timing = measure.compare_latency({"fp32": fp32, "int8": int8}, batch_size=8, warmup=2, repeats=3)
    assert timing["int8"].median > 0
    assert model.training is False and next(model.parameters()).device.type == "cpu"


def test_cpu_int8_features_is_a_list():
    assert isinstance(runtime.cpu_int8_features(), list)
    cpu = runtime.cpu_int8()
    assert isinstance(cpu, runtime.CpuInt8) and cpu.description and cpu.saturates in (True, False, None)
    assert cpu.dot_product == bool(runtime.cpu_int8_features()) or cpu.flags == ("asimddp",)


@pytest.mark.parametrize("machine, system, flags, dot_product, saturates, words", [
    ("x86_64", "Linux", {"avx2", "avx512bw", "avx512_vnni"}, True, False, "avx512_vnni"),
    ("x86_64", "Linux", {"avx2", "avx_vnni"}, True, False, "avx_vnni"),
    ("x86_64", "Linux", {"avx2", "fma"}, False, True, "vpmaddubsw"),          # most laptops before 2020, AMD before Zen 4
    ("x86_64", "Linux", {"avx2", "avx512bw"}, False, True, "avx512bw"),       # Skylake-SP: AVX-512 without VNNI
    ("x86_64", "Linux", {"sse4_1"}, False, True, "no VNNI"),
    ("aarch64", "Linux", {"asimd", "asimddp"}, True, False, "dot product"),
    ("aarch64", "Linux", {"asimd"}, False, False, "without the dot product"),
    ("arm64", "Darwin", None, True, False, "Apple silicon"),
    ("x86_64", "Windows", None, False, None, "unknown"),
    ("riscv64", "Linux", {"rv64"}, False, None, "not known"),
])
def test_every_cpu_class_is_told(machine, system, flags, dot_product, saturates, words):
    cpu = runtime.classify_cpu(machine, system, flags)
    assert (cpu.dot_product, cpu.saturates) == (dot_product, saturates) and words in cpu.description


# ----------------------------------------------------------------------------- bad input never gives garbage

import collections  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

LINEAR = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
TINY_SPLIT = data.ImageSplit(torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), "tiny", tuple("0123456789"))
EMPTY_SPLIT = data.ImageSplit(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long), "empty", tuple("0123456789"))


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "model_fp32.onnx"
    path.write_bytes(b"stands in for a model: only its existence is checked")
    return path


@pytest.mark.parametrize("call, error, fragment", [
    (lambda d, f: runtime.export_onnx("lenet5", d / "m.onnx"), TypeError, "model must be a torch.nn.Module, got str"),
    (lambda d, f: runtime.export_onnx(LINEAR, 3), TypeError, "path must be a file path (str or Path), got int"),
    (lambda d, f: runtime.export_onnx(LINEAR, d / "missing" / "m.onnx"), ValueError, "path must be in an existing folder"),
    (lambda d, f: runtime.export_onnx(LINEAR, d), ValueError, "path must name a file, got the folder"),
    (lambda d, f: runtime.export_onnx(LINEAR, d / "m.onnx", (1, 2.7, 28)), TypeError, "input_shape"),
    (lambda d, f: runtime.export_onnx(LINEAR, d / "m.onnx", (3, 32, 32)), ValueError,
     "model cannot run on input_shape (3, 32, 32)"),
    (lambda d, f: runtime.quantize_onnx_int8(d / "none.onnx", d / "q.onnx", TINY_SPLIT), ValueError,
     "fp32_path must be an existing ONNX file, got"),
    (lambda d, f: runtime.quantize_onnx_int8(d / "none.onnx", d / "q.onnx", TINY_SPLIT), ValueError, "does not exist"),
    (lambda d, f: runtime.quantize_onnx_int8(None, d / "q.onnx", TINY_SPLIT), TypeError, "fp32_path must be a file path"),
    (lambda d, f: runtime.quantize_onnx_int8(f, f, TINY_SPLIT), ValueError, "int8_path must differ from fp32_path"),
    (lambda d, f: runtime.quantize_onnx_int8(f, d / "no" / "q.onnx", TINY_SPLIT), ValueError,
     "int8_path must be in an existing folder"),
    (lambda d, f: runtime.quantize_onnx_int8(f, d / "q.onnx", "mnist"), TypeError,
     "calibration must be an ImageSplit (from course_lib.data.load), got str"),
    (lambda d, f: runtime.quantize_onnx_int8(f, d / "q.onnx", EMPTY_SPLIT), ValueError,
     "calibration must hold at least one image"),
    (lambda d, f: runtime.quantize_onnx_int8(f, d / "q.onnx", TINY_SPLIT, n=0), ValueError, "n must be an int >= 1, got 0"),
    (lambda d, f: runtime.quantize_onnx_int8(f, d / "q.onnx", TINY_SPLIT, n=10.0), TypeError,
     "n must be an int >= 1, got float 10.0"),
    (lambda d, f: runtime.quantize_onnx_int8(f, d / "q.onnx", TINY_SPLIT, n=True), TypeError, "got bool"),
    (lambda d, f: runtime.quantize_onnx_int8(f, d / "q.onnx", TINY_SPLIT, per_channel="yes"), TypeError,
     "per_channel must be a bool, got str"),
    (lambda d, f: runtime.ort_session(d / "none.onnx"), ValueError, "path must be an existing ONNX file"),
    (lambda d, f: runtime.ort_session(d), ValueError, "which is a folder"),
    (lambda d, f: runtime.ort_session(None), TypeError, "path must be a file path (str or Path), got NoneType"),
    (lambda d, f: runtime.ort_session(f, threads=0), ValueError, "threads must be an int >= 1 or None, got 0"),
    (lambda d, f: runtime.ort_session(f, threads=1.5), TypeError, "threads must be an int >= 1 or None, got float"),
    (lambda d, f: runtime.ort_session(f, optimized_path=d / "no" / "o.onnx"), ValueError,
     "optimized_path must be in an existing folder"),
    (lambda d, f: runtime.int8_op_counts(d / "none.onnx"), ValueError, "optimized_path must be an existing ONNX file"),
    (lambda d, f: runtime.int8_op_counts(f), ValueError, "is not an ONNX model"),
    (lambda d, f: runtime.OrtModel("session"), TypeError, "session must be an onnxruntime.InferenceSession"),
    (lambda d, f: runtime.deploy_int8("lenet5", TINY_SPLIT, d), TypeError, "model must be a torch.nn.Module"),
    (lambda d, f: runtime.deploy_int8(LINEAR, None, d), TypeError, "calibration must be an ImageSplit"),
    (lambda d, f: runtime.deploy_int8(LINEAR, TINY_SPLIT, 3), TypeError, "folder must be a folder path"),
    (lambda d, f: runtime.deploy_int8(LINEAR, TINY_SPLIT, f), ValueError, "folder must be a folder (created if missing)"),
    (lambda d, f: runtime.deploy_int8(LINEAR, TINY_SPLIT, d, threads=True), TypeError, "threads"),
])
def test_bad_input_raises_a_named_error(tmp_path, onnx_file, call, error, fragment):
    with pytest.raises(error) as info:
        call(tmp_path, onnx_file)
    assert fragment in str(info.value)


def test_nothing_is_written_on_error(tmp_path):
    out = tmp_path / "deploy"
    with pytest.raises(ValueError, match="threads"):
        runtime.deploy_int8(LINEAR, TINY_SPLIT, out, threads=0)
    with pytest.raises(ValueError, match="input_shape"):
        runtime.export_onnx(LINEAR, tmp_path / "m.onnx", (3, 32, 32))
    with pytest.raises(ValueError, match="cannot run"):            # fails after the folder was made
        runtime.deploy_int8(nn.Sequential(nn.Linear(5, 2)), TINY_SPLIT, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_tiny_export_runs_in_onnx_runtime(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3)).train()
    path = runtime.export_onnx(model, str(tmp_path / "tiny.onnx"), (4,))
    assert model.training                                   # the given model is left as it was
    ort_model = runtime.OrtModel(runtime.ort_session(path, threads=1))
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ort_model(x), model(x), atol=1e-5)
    assert runtime.int8_op_counts(path) == collections.Counter()      # a float graph: no int8 kernel
    with pytest.raises(TypeError, match="x must be a float32 tensor, got dtype torch.float64"):
        ort_model(x.double())
