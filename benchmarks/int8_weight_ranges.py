"""The int8 weight ranges compared on the five int8 models the course deploys.

For each model and each weight range of :func:`course_lib.runtime.quantize_onnx_int8` (calibrated on
the first 1,000 training images): the largest same-sign pair of weight codes, validation and test
accuracy on ONNX Runtime (exact on a CPU with VNNI, AMX or Arm's kernels, and on every CPU for the two
safe ranges), test accuracy on an x86 CPU without VNNI computed by the NumPy forward with saturating
int16 pairs (models the NumPy forward reads), and int8 speed over ONNX Runtime's fp32 at batch 64 on
this CPU, one thread. The record in ``course_lib/runtime.py``'s docstring came from this comparison.

    python3 benchmarks/int8_weight_ranges.py          # about three minutes on 2 cores
"""
import tempfile
from pathlib import Path

import numpy as np
import torch

from course_lib import data, deploy, lowrank, runtime, zoo


def capstone_student() -> torch.nn.Module:
    """Notebook 10's factorised student: fc1 at rank 16, the first factor with a zero bias."""
    factorised = lowrank.factorize_model(zoo.load("tiny_cnn_fashion_distilled"), {"fc1": 16})
    factorised.fc1.project.bias = torch.nn.Parameter(torch.zeros(factorised.fc1.project.out_features))
    return factorised


MODELS = {"lenet5": (lambda: zoo.load("lenet5"), "mnist"),
          "lenet_300_100": (lambda: zoo.load("lenet_300_100"), "mnist"),
          "small_cnn_fashion": (lambda: zoo.load("small_cnn_fashion"), "fashion-mnist"),
          "mobilenet_v2_x1_0_fashion": (lambda: zoo.load("mobilenet_v2_x1_0_fashion"), "fashion-mnist"),
          "capstone student": (capstone_student, "fashion-mnist")}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def main() -> None:
    torch.set_num_threads(1)
    print(f"this CPU: {runtime.cpu_int8().description}")
    print(f"{'model':26s} {'weight range':16s} {'pair':>4s} {'validation':>10s} {'test':>7s} "
          f"{'test, no VNNI':>13s} {'int8 / fp32, b=64':>17s}")
    with tempfile.TemporaryDirectory() as folder:
        for name, (build, dataset) in MODELS.items():
            model = build()
            fp32 = runtime.export_onnx(model, Path(folder) / f"{name}.onnx")
            splits = {s: data.load(dataset, s) for s in ("validation", "test")}
            x = {s: split.images.numpy() for s, split in splits.items()}
            y = {s: split.labels.numpy() for s, split in splits.items()}
            session = runtime.ort_session(fp32, threads=1)
            print(f"{name:26s} {'fp32':16s} {'':>4s} {100 * accuracy(session.run(None, {'x': x['validation']})[0], y['validation']):9.2f}% "
                  f"{100 * accuracy(session.run(None, {'x': x['test']})[0], y['test']):6.2f}%")
            for weight_range in runtime.WEIGHT_RANGES:
                path = runtime.quantize_onnx_int8(fp32, Path(folder) / f"{name}_{weight_range}.onnx",
                                                  data.load(dataset, "train"), weight_range=weight_range)
                session = runtime.ort_session(path, threads=1)
                scores = {s: accuracy(session.run(None, {"x": x[s]})[0], y[s]) for s in x}
                try:
                    arrays = deploy.read_int8_model(path)
                    saturating = f"{100 * accuracy(deploy.forward_int8(arrays, x['test'], accumulation='int16_pairs').logits, y['test']):12.2f}%"
                except NotImplementedError:             # an operator the NumPy forward does not read
                    saturating = f"{'(not read)':>13s}"
                speed = runtime.int8_speedup(fp32, path, batch_size=64, warmup=10, repeats=30).ratio
                pair = max(runtime.int16_pair_sums(path).values())
                print(f"{'':26s} {weight_range:16s} {pair:4d} {100 * scores['validation']:9.2f}% "
                      f"{100 * scores['test']:6.2f}% {saturating} {speed:16.2f}x")


if __name__ == "__main__":
    main()
