"""An int8 model in C: compiled for this computer and for a Cortex-M4, run in QEMU, measured.

:mod:`course_lib.deploy` reads ONNX Runtime's int8 model as plain arrays, runs them in NumPy with
integers only and writes them as a C header. This module takes the last step: C code that runs
those arrays, in ``course_lib/c/``:

``int8_ops.c``         the operators (convolution, with groups, so depthwise too; fully connected;
                       max pooling; the fixed-point requantization of CMSIS-NN and TensorFlow Lite
                       Micro), plain loops mirroring :mod:`course_lib.deploy`'s NumPy forward
``main.c``             a test program: images in, output codes out, instructions counted
``platform_*.c``       files and text on a desktop (the C library) or on a bare Cortex-M4 (Arm
                       semihosting: the emulator does the I/O for the program)
``startup_cortex_m4.c``, ``cortex_m4.ld``  the vector table and memory map of a bare Cortex-M4, with
                       the flash and SRAM of the course's microcontroller, the Arduino Nano 33 BLE
                       Sense (1 MB, 256 KB): a model that does not fit fails to link

:func:`write_model_source` adds the model's own file: its arrays (``export_c_header``) and one call
per layer, with two activation buffers sized at compile time (no dynamic memory).
:func:`build` compiles it with the system's C compiler (``"host"``) or with ``arm-none-eabi-gcc``
(``"cortex-m4"``); :func:`run` runs it on images, on this computer or in ``qemu-system-arm`` on the
``mps2-an386`` board, a Cortex-M4, the Nano's core. Its output codes are those of
``deploy.forward_int8(..., requantization="fixed_point")``, bit for bit (the tests check it).

**What QEMU measures.** Run with ``-icount shift=0``, QEMU's clock advances by 1 ns per guest
instruction, so the core's SysTick timer (25 MHz on this board) ticks once every 40 instructions:
:attr:`McuRun.instructions` is that count, to within 40. QEMU emulates instructions, not the
pipeline or the flash's wait states: cycles on a real chip differ (on a Cortex-M4 most instructions
take one cycle, a load two, a 64-bit multiply one to four). :func:`memory_layout` reads the
program's flash and SRAM from ``arm-none-eabi-size`` and its symbols from ``arm-none-eabi-nm``.

The tools are Debian's ``gcc`` (or any C compiler as ``cc``), ``gcc-arm-none-eabi`` and
``qemu-system-arm``; :func:`missing_tools` says which are absent.
Taught in notebook 10, the capstone.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .checks import check_choice, check_int, check_path, check_real, check_type
from .deploy import (Flatten, Int8Model, MaxPool2d, QuantizedConv2d, _check_images, _check_model, dequantize_linear,
                     export_c_header, quantize_linear)
from .hardware import Device, LatencyEstimate, Verdict
from .measure import format_bytes

__all__ = ["TARGETS", "TOOLS", "INSTRUCTIONS_PER_TICK", "McuError", "missing_tools", "write_model_source",
           "build", "run", "McuRun", "MemoryLayout", "memory_layout", "measured_verdict"]

TARGETS = ("host", "cortex-m4")
TOOLS = {"host": ("cc",), "cortex-m4": ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm",
                                        "qemu-system-arm")}
INSTALL = {"cc": "apt-get install gcc", "arm-none-eabi-gcc": "apt-get install gcc-arm-none-eabi",
           "arm-none-eabi-size": "apt-get install gcc-arm-none-eabi (binutils-arm-none-eabi)",
           "arm-none-eabi-nm": "apt-get install gcc-arm-none-eabi (binutils-arm-none-eabi)",
           "qemu-system-arm": "apt-get install qemu-system-arm"}
SOURCES = {"host": ("main.c", "int8_ops.c", "platform_host.c"),
           "cortex-m4": ("main.c", "int8_ops.c", "platform_semihost.c", "startup_cortex_m4.c")}
INSTRUCTIONS_PER_TICK = 40          # QEMU -icount shift=0: 1 ns per instruction; SysTick at 25 MHz: 40 ns per tick
HOST_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
# A Cortex-M4 without the C library: -nostdlib, and loops kept as loops (not turned into memset / memcpy calls).
# The Nano's Cortex-M4F has a floating-point unit, but the integer-only code needs none: the soft-float ABI.
M4_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft",
            "-ffreestanding", "-fno-tree-loop-distribute-patterns", "-ffunction-sections", "-fdata-sections",
            "-nostdlib", "-Wl,--gc-sections")


class McuError(RuntimeError):
    """A tool is missing, the C code did not compile or link (a model too large for the Nano does
    not link), or the program failed; the message holds what the tool printed."""


def missing_tools(target: str) -> list[str]:
    """The programs that ``target`` (``"host"`` or ``"cortex-m4"``) needs and this computer lacks,
    each with the Debian package that gives it: an empty list when everything is there.

    Raises:
        ValueError: ``target`` is not one of :data:`TARGETS`.
    """
    check_choice(target, "target", TARGETS)
    return [f"{tool} ({INSTALL[tool]})" for tool in TOOLS[target] if shutil.which(tool) is None]


def _source_folder() -> Path:
    return Path(str(resources.files("course_lib") / "c"))


# ----------------------------------------------------------------------------- the model's C file

def _conv_output(size: int, kernel: int, stride: int, dilation: int, before: int, after: int) -> int:
    return (size + before + after - (kernel - 1) * dilation - 1) // stride + 1


def _layer_calls(model: Int8Model) -> tuple[list[str], list[str], int]:
    """(constant definitions, calls in order, largest activation in bytes) for ``model``'s layers,
    tracking each activation's shape (C, H, W) or (features,) from the input's."""
    shape = tuple(model.input_shape)
    definitions, steps = [], []          # steps: (C statement with {src}/{dst} to fill, comment)
    largest = 0
    for layer in model.layers:
        before = shape
        if isinstance(layer, Flatten):
            shape = (int(np.prod(shape)),)
            continue                                                  # (C, H, W) order: already flat in memory
        if isinstance(layer, MaxPool2d):
            c, h, w = shape
            top, left, bottom, right = layer.padding
            ho = (h + top + bottom - layer.kernel[0]) // layer.stride[0] + 1
            wo = (w + left + right - layer.kernel[1]) // layer.stride[1] + 1
            definitions.append(
                f"static const pool_shape model_{layer.name}_shape = {{{c}, {h}, {w}, {ho}, {wo}, {layer.kernel[0]}, "
                f"{layer.kernel[1]}, {layer.stride[0]}, {layer.stride[1]}, {top}, {left}}};")
            shape = (c, ho, wo)
            steps.append((f"max_pool2d_u8({{src}}, &model_{layer.name}_shape, {{dst}});", layer.name, before, shape))
        else:
            zero_w = np.unique(layer.weight_zero_point)
            if len(zero_w) != 1:
                raise NotImplementedError(f"layer {layer.name!r} has a weight zero point per channel; the C "
                                          f"operators take one per layer (ONNX Runtime's symmetric int8 weights: 0)")
            p = f"model_{layer.name}"
            definitions.append(
                f"static const quant_params model_{layer.name}_params = {{{p}_weight, {p}_bias, {p}_multiplier_q31, "
                f"{p}_shift, {layer.input_zero_point}, {int(zero_w[0])}, {layer.output_zero_point}, "
                f"{int(layer.relu)}}};")
            if isinstance(layer, QuantizedConv2d):
                c, h, w = shape
                o, _, kh, kw = layer.weight.shape
                (sh, sw), (dh, dw), (top, left, bottom, right) = layer.stride, layer.dilation, layer.padding
                ho, wo = _conv_output(h, kh, sh, dh, top, bottom), _conv_output(w, kw, sw, dw, left, right)
                definitions.append(
                    f"static const conv_shape model_{layer.name}_shape = {{{c}, {h}, {w}, {o}, {ho}, {wo}, {kh}, {kw}, "
                    f"{sh}, {sw}, {dh}, {dw}, {top}, {left}, {layer.groups}}};")
                shape = (o, ho, wo)
                steps.append((f"conv2d_u8({{src}}, &model_{layer.name}_shape, &model_{layer.name}_params, {{dst}});",
                              layer.name, before, shape))
            else:
                n, k = layer.weight.shape
                shape = (n,)
                steps.append((f"fully_connected_u8({{src}}, {k}, {n}, &model_{layer.name}_params, {{dst}});",
                              layer.name, before, shape))
        largest = max(largest, int(np.prod(shape)))
    calls = []
    for i, (statement, name, before, after) in enumerate(steps):
        src = "input" if i == 0 else f"arena[{(i - 1) % 2}]"
        dst = "output" if i == len(steps) - 1 else f"arena[{i % 2}]"
        calls.append(f"    {statement.format(src=src, dst=dst):<72s} /* {name}: {before} -> {after} */")
    return definitions, calls, largest


def write_model_source(model: Int8Model, folder: Path | str) -> dict[str, Path]:
    """Write ``model`` as C into ``folder`` (which must exist): ``model_arrays.h`` (its arrays, by
    :func:`course_lib.deploy.export_c_header` with the prefix ``model``), ``model.h`` (the input's,
    output's and activation buffers' sizes, and ``model_forward``) and ``model.c`` (one operator
    call per layer, reading one of two static buffers and writing the other). Returns the paths.

    Raises:
        TypeError: ``model`` is not an Int8Model, ``folder`` not a path.
        ValueError: ``folder`` is not an existing folder.
        NotImplementedError: a layer with a different weight zero point per channel.
    """
    _check_model(model)
    folder = _check_folder(folder)
    definitions, calls, largest = _layer_calls(model)
    input_bytes = int(np.prod(model.input_shape))
    output_bytes = int(model.layers[-1].weight.shape[0])
    export_c_header(model, folder / "model_arrays.h", "model")
    (folder / "model.h").write_text(
        f"/* {model.name}: sizes and entry point, written by course_lib.mcu.write_model_source. */\n"
        "#ifndef MODEL_ENTRY_H\n#define MODEL_ENTRY_H\n\n#include <stdint.h>\n\n"
        f"#define MODEL_INPUT_BYTES {input_bytes}     /* uint8 codes, (C, H, W) order */\n"
        f"#define MODEL_OUTPUT_BYTES {output_bytes}    /* uint8 codes of the logits */\n"
        f"#define MODEL_ARENA_BYTES {largest}     /* the largest activation: each of two buffers */\n\n"
        "void model_forward(const uint8_t *input, uint8_t *output);\n\n#endif /* MODEL_ENTRY_H */\n")
    (folder / "model.c").write_text(
        f"/* {model.name} in integers, one call per layer (course_lib.mcu.write_model_source). Each layer reads\n"
        " * one buffer and writes the other; both are static, sized at compile time by the largest activation. */\n"
        '#include "int8_ops.h"\n#include "model.h"\n#include "model_arrays.h"\n\n'
        + ("static uint8_t arena[2][MODEL_ARENA_BYTES];\n\n" if len(calls) > 1 else "")
        + "\n".join(definitions)
        + "\n\nvoid model_forward(const uint8_t *input, uint8_t *output)\n{\n" + "\n".join(calls) + "\n}\n")
    return {"arrays": folder / "model_arrays.h", "header": folder / "model.h", "source": folder / "model.c"}


def _check_folder(folder) -> Path:
    folder = check_path(folder, "folder", "folder")
    if not folder.is_dir():
        raise ValueError(f"folder must be an existing folder, got {str(folder)!r}; create it first")
    return folder


# ----------------------------------------------------------------------------- building and running

def _command(args: list[str], cwd: Path, timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise McuError(f"{what} ran past {timeout:.0f} s: {' '.join(args)}") from e
    if done.returncode != 0:
        raise McuError(f"{what} failed (exit status {done.returncode}): {' '.join(args)}\n"
                       f"{(done.stdout + done.stderr).strip()[-3000:]}")
    return done


def _require(target: str) -> None:
    missing = missing_tools(target)
    if missing:
        raise McuError(f"the {target} target needs {', '.join(missing)}")


def build(model: Int8Model, folder: Path | str, target: str = "host") -> Path:
    """Write ``model``'s C (:func:`write_model_source`) into ``folder`` and compile it with the
    operators and the test program: for ``"host"`` with ``cc`` into ``model_host``; for
    ``"cortex-m4"`` with ``arm-none-eabi-gcc`` (``-mcpu=cortex-m4 -mthumb -O2``, no C library)
    into ``model.elf``, linked with the Nano's memory map (and ``model.map``, the linker's map).
    Returns the program's path.

    Raises:
        TypeError / ValueError: as :func:`write_model_source`; ``target`` not one of :data:`TARGETS`.
        McuError: a tool is missing, or the compiler or linker failed (a model too large for the
            Nano's 1 MB of flash or 256 KB of SRAM fails to link: the message says which region).
    """
    _check_model(model)
    folder = _check_folder(folder)
    check_choice(target, "target", TARGETS)
    _require(target)
    write_model_source(model, folder)
    src = _source_folder()
    sources = [str(src / name) for name in SOURCES[target]] + ["model.c"]
    if target == "host":
        program = folder / "model_host"
        args = ["cc", *HOST_FLAGS, f"-I{src}", "-I.", *sources, "-o", program.name]
    else:
        program = folder / "model.elf"
        args = ["arm-none-eabi-gcc", *M4_FLAGS, f"-I{src}", "-I.", *sources, f"-T{src / 'cortex_m4.ld'}",
                "-Wl,-Map=model.map", "-lgcc", "-o", program.name]
    _command(args, folder, 120, f"compiling {model.name} for {target}")
    return program


@dataclass(frozen=True)
class McuRun:
    """What :func:`run` returns: the output ``codes`` (B, classes) uint8 and ``logits`` (B, classes)
    float32, as :func:`course_lib.deploy.forward_int8` returns them; on the Cortex-M4 also the
    ``instructions`` of each inference (B,) (QEMU's count, to within :data:`INSTRUCTIONS_PER_TICK`)
    and the ``stack_bytes`` the program used (measured by painting the stack at reset)."""
    codes: np.ndarray
    logits: np.ndarray
    instructions: np.ndarray | None
    stack_bytes: int | None


def run(model: Int8Model, program: Path | str, x: np.ndarray | torch.Tensor, timeout: float = 300) -> McuRun:
    """Run ``program`` (from :func:`build` for ``model``) on the float32 images ``x``: quantize them
    to uint8 codes as the model's input quantization does (a sensor would give the codes), write
    them to ``images.bin`` in the program's folder, run it there (``model.elf`` in QEMU:
    ``qemu-system-arm -M mps2-an386 -icount shift=0`` with semihosting) and read its codes back.

    Args:
        model: the :class:`~course_lib.deploy.Int8Model` the program was built from.
        program: ``model_host`` or ``model.elf``.
        x: float32 images (B, *model.input_shape), B >= 1, finite; not modified.
        timeout: seconds before the run is stopped, > 0.

    Raises:
        TypeError / ValueError: a bad ``model``, ``x`` or ``timeout``; ``program`` missing.
        McuError: a tool is missing, the program failed or ran past ``timeout``, or wrote fewer
            codes than images.
    """
    _check_model(model)
    program = check_path(program, "program")
    if not program.is_file():
        raise ValueError(f"program must be a file built by course_lib.mcu.build, got {str(program)!r}")
    x = _check_images(x, model)
    check_int(timeout, "timeout", 1)
    target = "cortex-m4" if program.suffix == ".elf" else "host"
    _require(target)
    folder = program.parent
    codes_in = quantize_linear(x, model.input_scale, model.input_zero_point)
    (folder / "images.bin").write_bytes(np.ascontiguousarray(codes_in).tobytes())
    if target == "host":
        done = _command([f"./{program.name}"], folder, timeout, f"running {program.name}")
    else:
        done = _command(["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none",
                         "-serial", "none", "-semihosting-config", "enable=on,target=native",
                         "-icount", "shift=0", "-kernel", program.name],
                        folder, timeout, f"running {program.name} in QEMU")
    classes = int(model.layers[-1].weight.shape[0])
    codes = np.frombuffer((folder / "codes.bin").read_bytes(), dtype=np.uint8)
    if codes.size != len(x) * classes:
        raise McuError(f"{program.name} wrote {codes.size} codes for {len(x)} images of {classes} classes:\n"
                       f"{done.stdout}{done.stderr}")
    codes = codes.reshape(len(x), classes).copy()
    logits = dequantize_linear(codes, model.output_scale, model.output_zero_point)
    if target == "host":
        return McuRun(codes, logits, None, None)
    ticks = np.frombuffer((folder / "ticks.bin").read_bytes(), dtype="<u4").astype(np.int64)
    stack = next(int(line.split()[-1]) for line in (done.stdout + done.stderr).splitlines()
                 if line.startswith("stack bytes"))
    return McuRun(codes, logits, ticks * INSTRUCTIONS_PER_TICK, stack)


# ----------------------------------------------------------------------------- what the device holds

@dataclass(frozen=True)
class MemoryLayout:
    """Where a Cortex-M4 program's bytes go (from ``arm-none-eabi-size`` and ``-nm``): ``flash``
    (code, constants and initial data) split into ``weights`` (the model's int8 weights), ``biases``,
    ``requantization`` (multipliers and shifts) and ``code`` (everything else: the operators, the
    test program, the vector table); ``sram`` (data, zeroed data and the stack reserved by the
    linker script) split into ``arena`` (the two activation buffers), ``io`` (the program's input
    and output buffers) and ``stack_reserved``."""
    flash: int
    weights: int
    biases: int
    requantization: int
    code: int
    sram: int
    arena: int
    io: int
    stack_reserved: int


def memory_layout(program: Path | str) -> MemoryLayout:
    """Read ``program``'s (a ``model.elf`` from :func:`build`) section sizes and the sizes of its
    symbols.

    Raises:
        ValueError: ``program`` is not an existing ``.elf`` file.
        McuError: the Arm binutils are missing or fail.
    """
    program = check_path(program, "program")
    if not program.is_file() or program.suffix != ".elf":
        raise ValueError(f"program must be a model.elf built by course_lib.mcu.build(..., 'cortex-m4'), "
                         f"got {str(program)!r}")
    _require("cortex-m4")
    sections = {}
    for line in _command(["arm-none-eabi-size", "-A", program.name], program.parent, 60, "arm-none-eabi-size") \
            .stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    symbols = {}
    for line in _command(["arm-none-eabi-nm", "-S", program.name], program.parent, 60, "arm-none-eabi-nm") \
            .stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            symbols[parts[3]] = int(parts[1], 16)

    def total(suffixes):
        return sum(size for name, size in symbols.items()
                   if name.startswith("model_") and name.endswith(suffixes))

    flash = sections.get(".text", 0) + sections.get(".data", 0)
    weights, biases = total("_weight"), total("_bias")
    requantization = total(("_multiplier_q31", "_shift", "_multiplier"))
    sram = sections.get(".data", 0) + sections.get(".bss", 0) + sections.get(".stack", 0)
    return MemoryLayout(flash, weights, biases, requantization, flash - weights - biases - requantization,
                        sram, symbols.get("arena", 0), symbols.get("image", 0) + symbols.get("codes", 0),
                        sections.get(".stack", 0))


def measured_verdict(layout: MemoryLayout, instructions: float, device: Device) -> Verdict:
    """A :class:`~course_lib.hardware.Verdict` from a built program rather than an estimate: the
    whole program's flash (code included) against the device's flash, its SRAM (buffers and the
    reserved stack included) against the SRAM, so no runtime overhead is added; the time is
    ``instructions`` at the device's clock, *if* each instruction took one cycle (QEMU counts
    instructions, not cycles: labelled as such in ``notes``).

    Raises:
        TypeError: ``layout`` not a MemoryLayout, ``device`` not a Device.
        ValueError: ``instructions`` not a finite number > 0.
    """
    check_type(layout, "layout", MemoryLayout, "a MemoryLayout (from memory_layout)")
    check_type(device, "device", Device, "a Device (course_lib.hardware.get_device)")
    check_real(instructions, "instructions", 0, low_open=True)
    reasons = []
    if layout.flash > device.storage_bytes:
        reasons.append(f"the program needs {format_bytes(layout.flash)} of flash, {device.name} has "
                       f"{format_bytes(device.storage_bytes)}")
    if layout.sram > device.memory_bytes:
        reasons.append(f"the program needs {format_bytes(layout.sram)} of SRAM, {device.name} has "
                       f"{format_bytes(device.memory_bytes)}")
    seconds = float(instructions) / device.clock_hz
    return Verdict(device.name, not reasons, tuple(reasons), layout.flash, device.storage_bytes, layout.sram,
                   device.memory_bytes, LatencyEstimate(device.name, seconds, seconds, 0.0),
                   notes=(f"measured: sizes from the linked program, time from QEMU's instruction count at "
                          f"{device.clock_hz / 1e6:.0f} MHz, one instruction a cycle",))
