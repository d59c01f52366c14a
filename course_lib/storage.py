"""Compressed models saved in their compressed form, and loaded back: the bytes a report counts,
written to a file.

:func:`course_lib.measure.weight_bytes` counts what a device would store; ``torch.save`` writes
something else (every weight as a 4-byte float, zeros and fake-quantized codes included). Here each
stored tensor becomes one record of packed bits, exactly as ``measure`` counts it:

* **dense** at :math:`b` bits: :math:`n b` bits (fp32 values as their IEEE bit patterns);
* **bitmask**: one bit per position, then the nonzero values (:math:`n + k b`);
* **CSR**: the nonzeros with their column indices, then the row pointers
  (:math:`k (b + c) + (r + 1) p`, with :math:`c, p` the 8-, 16- or 32-bit widths ``measure`` uses);
* **relative index**: Deep Compression's (gap, value) entries, fillers included (:math:`E (b + g)`);
* **Deep Compression with Huffman coding** (:func:`save_deep_compressed`): per layer, the codebook, the
  bias, the two canonical Huffman code tables and the Huffman-coded streams of weight indices and gaps,
  as :func:`course_lib.deep_compression.account_layer` counts them (Han, Mao & Dally 2016, Sec. 4).

A record holds :math:`\\lceil \\text{bits} / 8 \\rceil` bytes: the same rounding as ``measure``, so the
records of a model hold exactly ``measure.weight_bytes`` bytes (Deep Compression's accounting counts
bits, so its file holds at most one padding byte more per layer). The file is a safetensors file: an
8-byte length, a JSON header (each record's name, dtype uint8, shape and offsets, and this module's
description of every record in the header's metadata), then the records. That header is the format's
fixed overhead: :attr:`SavedModel.header_bytes`, measured, so that ``file_bytes = 8 + header_bytes +
payload_bytes`` exactly. Loading reads the file with ``safetensors`` (no pickle, no code run) into a
copy of an architecture the caller gives, so that the reloaded model gives the same outputs, bit for bit.

What each kind of model stores:

==============================  ====================================================================
plain parameters                fp32 values; tensors of 2+ dimensions in the chosen encoding, vectors
                                dense (a pruned model: its zeros cost nothing in a sparse encoding)
``quantization.FakeQuantized``  the integer weight codes at their bits (two's complement), one fp32
                                scale per output channel (or one), the fp32 bias, and, with quantized
                                inputs, their fp32 scale and int32 zero point
``codebook.SharedWeights``      the :math:`b`-bit index of every weight (dense), the :math:`2^b` fp32
                                centroids, the fp32 bias (k-means weight sharing)
``deep_compression.``           the :math:`b`-bit index of every entry in the chosen encoding (index 0
``SparseSharedWeights``         is the pruned zero), the :math:`2^b - 1` fp32 shared values, the bias
==============================  ====================================================================

Taught in notebooks 01 (a pruned model in a sparse encoding), 02 (int8 and k-means) and 09 (Deep
Compression with Huffman coding, and a factorised model).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from torch import nn

from . import encoding
from .checks import check_choice, check_model, check_path, check_type
from .runtime import check_file_path
from .codebook import SharedWeights
from .deep_compression import LENET_INDEX_BITS, SparseSharedWeights, account_model
from .measure import CompressedLayer, StoredTensor, compressed_layers, weight_bytes
from .quantization import (FakeQuantized, QParams, _levels_to_bits, dequantize, fake_quantize, quantize,
                           weight_code_bits, weight_qparams)

__all__ = ["ENCODINGS", "SavedModel", "StorageError", "save_compressed", "load_compressed", "save_deep_compressed",
           "load_deep_compressed", "CodesLayer", "CodebookLayer", "file_overhead"]

ENCODINGS = encoding.ENCODINGS
FORMAT = "course_lib.storage/1"
FLOAT_BITS = 32


class StorageError(ValueError):
    """A file that is not one of this module's, is corrupted, or does not match the architecture
    it is loaded into; the message names the file and the record."""


@dataclass(frozen=True)
class SavedModel:
    """A file written by this module: its ``path``, its size on disk ``file_bytes``, the bytes of
    its records ``payload_bytes`` (what the report counts), and ``header_bytes``, the safetensors
    header (JSON: names, shapes, offsets, and this module's metadata), so that
    ``file_bytes == 8 + header_bytes + payload_bytes``."""
    path: Path
    file_bytes: int
    payload_bytes: int
    header_bytes: int


# ----------------------------------------------------------------------------- packed bits

def _field_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Each integer of ``values`` as ``bits`` bits, most significant first (two's complement for
    negative codes), flattened: an array of 0/1 of length ``len(values) * bits``."""
    v = np.asarray(values).astype(np.int64).reshape(-1) & ((1 << bits) - 1)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    return ((v[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)


def _read_fields(stream: np.ndarray, start: int, count: int, bits: int, signed: bool = False) -> np.ndarray:
    """``count`` integers of ``bits`` bits from the bit array ``stream`` at ``start`` (int64)."""
    chunk = stream[start:start + count * bits].astype(np.int64).reshape(count, bits)
    v = chunk @ (1 << np.arange(bits - 1, -1, -1, dtype=np.int64)) if count else np.zeros(0, np.int64)
    if signed:
        v = np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
    return v


def _float_fields(t: torch.Tensor) -> np.ndarray:
    """fp32 values as their 32-bit patterns (int64), so they pack like any other field."""
    return t.detach().cpu().to(torch.float32).numpy().view(np.uint32).astype(np.int64)


def _floats(fields: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(fields.astype(np.uint32).view(np.float32).copy())


# ----------------------------------------------------------------------------- one tensor, encoded

def _encode(values: np.ndarray, present: np.ndarray, shape: tuple[int, ...], bits: int,
            enc: str) -> tuple[np.ndarray, dict]:
    """A tensor of integer fields (float bit patterns or codes) in ``enc``, as a bit array, and its
    description; ``present`` marks the entries a sparse encoding keeps (the nonzero values: a float
    -0.0, whose bit pattern is not 0, is a zero). Counted as :func:`encoding.storage_bits` counts it."""
    flat = np.asarray(values, dtype=np.int64).reshape(-1)
    n = flat.size
    if enc == "dense" or len(shape) < 2:
        return _field_bits(flat, bits), {"encoding": "dense"}
    flat = np.where(np.asarray(present).reshape(-1), flat, 0)           # -0.0 stored as an absent zero
    nonzero = np.flatnonzero(flat)
    if enc == "bitmask":
        mask = np.zeros(n, np.uint8)
        mask[nonzero] = 1
        return np.concatenate([mask, _field_bits(flat[nonzero], bits)]), {"encoding": enc, "nonzeros": int(nonzero.size)}
    if enc == "csr":
        rows, cols = shape[0], n // shape[0]
        col_bits = encoding.unsigned_int_bits(max(0, cols - 1))
        pointer_bits = encoding.unsigned_int_bits(int(nonzero.size))
        pointers = np.searchsorted(nonzero, np.arange(rows + 1) * cols)
        return (np.concatenate([_field_bits(flat[nonzero], bits), _field_bits(nonzero % cols, col_bits),
                                _field_bits(pointers, pointer_bits)]),
                {"encoding": enc, "nonzeros": int(nonzero.size), "col_bits": col_bits, "pointer_bits": pointer_bits})
    index_bits = encoding.DEFAULT_INDEX_BITS["conv" if len(shape) == 4 else "fc"]
    encoded = encoding.encode_relative_index(torch.from_numpy(flat.astype(np.float64)).reshape(shape), index_bits)
    entries = encoded.values.numpy().astype(np.int64)
    stream = np.concatenate([_field_bits(encoded.gaps.numpy(), index_bits).reshape(-1, index_bits),   # (gap, value)
                             _field_bits(entries, bits).reshape(-1, bits)], axis=1).reshape(-1)    # per entry
    return stream, {"encoding": enc, "entries": int(len(entries)), "index_bits": index_bits}


def _decode(stream: np.ndarray, shape: tuple[int, ...], bits: int, info: dict, signed: bool) -> np.ndarray:
    """The integer fields :func:`_encode` wrote, as a flat int64 array of ``prod(shape)``."""
    n = int(np.prod(shape)) if shape else 1
    enc = info["encoding"]
    if enc == "dense":
        return _read_fields(stream, 0, n, bits, signed)
    flat = np.zeros(n, np.int64)
    if enc == "bitmask":
        positions = np.flatnonzero(stream[:n])
        flat[positions] = _read_fields(stream, n, info["nonzeros"], bits, signed)
        return flat
    if enc == "csr":
        k, cols = info["nonzeros"], n // shape[0]
        values = _read_fields(stream, 0, k, bits, signed)
        columns = _read_fields(stream, k * bits, k, info["col_bits"])
        pointers = _read_fields(stream, k * (bits + info["col_bits"]), shape[0] + 1, info["pointer_bits"])
        rows = np.repeat(np.arange(shape[0]), np.diff(pointers))
        flat[rows * cols + columns] = values
        return flat
    g, e = info["index_bits"], info["entries"]
    pairs = stream[:e * (g + bits)].reshape(e, g + bits)
    gaps = _read_fields(pairs[:, :g].reshape(-1), 0, e, g)
    values = _read_fields(pairs[:, g:].reshape(-1), 0, e, bits, signed)
    positions = np.cumsum(gaps + 1) - 1
    flat[positions] = values
    return flat


# ----------------------------------------------------------------------------- the file

def _write(path: Path, records: dict[str, tuple[np.ndarray, dict]], model_kind: str) -> SavedModel:
    tensors = {name: np.packbits(bits) if bits.size else np.zeros(0, np.uint8) for name, (bits, _) in records.items()}
    described = {name: dict(info, bits_used=int(bits.size)) for name, (bits, info) in records.items()}
    save_file(tensors, str(path), metadata={"format": FORMAT, "kind": model_kind, "records": json.dumps(described)})
    raw = path.read_bytes()[:8]
    header = int.from_bytes(raw, "little")
    payload = sum(int(t.size) for t in tensors.values())
    return SavedModel(path, path.stat().st_size, payload, header)


def file_overhead(saved: SavedModel) -> int:
    """The bytes of ``saved``'s file that are not records: the 8-byte length and the JSON header."""
    check_type(saved, "saved", SavedModel, "a SavedModel (from save_compressed)")
    return 8 + saved.header_bytes


def _existing_file(path, writer: str) -> Path:
    path = check_path(path, "path")
    if not path.is_file():
        raise ValueError(f"path must be an existing file written by {writer}, got {str(path)!r}")
    return path


def _read(path: Path, kind: str) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT or meta.get("kind") != kind:
                raise StorageError(f"{path.name} is not a {kind} file written by course_lib.storage "
                                   f"(format {meta.get('format')!r}, kind {meta.get('kind')!r})")
            described = json.loads(meta["records"])
            streams = {name: np.unpackbits(f.get_tensor(name))[:info["bits_used"]] for name, info in described.items()}
    except StorageError:
        raise
    except Exception as e:     # safetensors' own errors for a truncated or altered file
        raise StorageError(f"{path.name} cannot be read as a compressed model: {type(e).__name__}: {e}") from e
    for name, info in described.items():
        if streams[name].size != info["bits_used"]:
            raise StorageError(f"{path.name}: record {name!r} holds {streams[name].size} bits, its header says "
                               f"{info['bits_used']}: the file is truncated or altered")
    return streams, described


# ----------------------------------------------------------------------------- what loading builds

class CodesLayer(CompressedLayer):
    """A layer loaded from its integer weight codes: weight :math:`s (q - z)` exactly as
    :func:`course_lib.quantization.dequantize` computes it from the codes and scales that
    :class:`~course_lib.quantization.FakeQuantized` stored, inputs fake-quantized as there."""

    def __init__(self, layer: nn.Module, codes: torch.Tensor, qparams: QParams, code_bits: int,
                 input_qparams: QParams | None):
        super().__init__(layer)
        self.register_buffer("codes", codes)
        self.qparams, self.code_bits, self.input_qparams = qparams, code_bits, input_qparams
        self.activation_bits = None if input_qparams is None else _levels_to_bits(input_qparams)
        self.layer.weight.requires_grad_(False)

    def weight_as_computed(self) -> torch.Tensor:
        return dequantize(self.codes, self.qparams)

    def stored_tensors(self):
        stored = [StoredTensor("weight codes", self.weight_as_computed().detach(), self.code_bits),
                  StoredTensor("weight scales", torch.ones(self.qparams.scale.numel()), FLOAT_BITS)]
        if self.layer.bias is not None:
            stored.append(StoredTensor("bias", self.layer.bias.detach(), FLOAT_BITS))
        if self.input_qparams is not None:
            stored.append(StoredTensor("input scale and zero-point", torch.ones(2), FLOAT_BITS))
        return stored

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_qparams is not None:
            x = fake_quantize(x, self.input_qparams)
        return self.run_layer(x, self.weight_as_computed())


class CodebookLayer(CompressedLayer):
    """A layer loaded from weight indices into a codebook: weight ``codebook[indices]``, as
    :class:`~course_lib.codebook.SharedWeights` and
    :class:`~course_lib.deep_compression.SparseSharedWeights` compute it."""

    def __init__(self, layer: nn.Module, indices: torch.Tensor, codebook: torch.Tensor, bits: int, stored_codebook: int):
        super().__init__(layer)
        self.register_buffer("indices", indices)
        self.register_buffer("codebook", codebook)
        self.bits, self.stored_codebook = bits, stored_codebook
        self.layer.weight.requires_grad_(False)

    def weight_as_computed(self) -> torch.Tensor:
        return self.codebook[self.indices]

    def stored_tensors(self):
        stored = [StoredTensor("indices", self.weight_as_computed().detach(), self.bits),
                  StoredTensor("codebook", self.codebook[-self.stored_codebook:].detach(), FLOAT_BITS)]
        if self.layer.bias is not None:
            stored.append(StoredTensor("bias", self.layer.bias.detach(), FLOAT_BITS))
        return stored


# ----------------------------------------------------------------------------- saving and loading

def _plain(records: dict, name: str, t: torch.Tensor, enc: str) -> None:
    bits, info = _encode(_float_fields(t), (t != 0).cpu().numpy(), tuple(t.shape), FLOAT_BITS, enc)
    records[name] = (bits, dict(info, kind="float", shape=list(t.shape)))


def _layer_records(records: dict, name: str, m: CompressedLayer, enc: str) -> None:
    layer = m.layer
    if isinstance(m, FakeQuantized):
        if m.weight_scheme != "affine":
            raise NotImplementedError(f"layer {name!r}: saving {m.weight_scheme} weights is not supported; "
                                      f"affine codes (2 to 16 bits) are")
        p = weight_qparams(layer.weight.detach(), m.weight_bits, m.per_channel)
        codes = quantize(layer.weight.detach(), p)
        bits = weight_code_bits("affine", m.weight_bits)
        packed, info = _encode(codes.numpy(), codes.numpy() != 0, tuple(codes.shape), bits, enc)
        records[f"{name}.codes"] = (packed, dict(info, kind="codes", shape=list(codes.shape), code_bits=bits,
                                                 axis=p.axis, qmin=p.qmin, qmax=p.qmax))
        _plain(records, f"{name}.scales", p.scale.reshape(-1), "dense")
        if p.zero_point.abs().max() > 0:
            raise NotImplementedError(f"layer {name!r}: weight zero points must be 0 (symmetric codes)")
        if m.input_qparams is not None:
            q = m.input_qparams
            scale = _float_fields(q.scale.reshape(-1))
            records[f"{name}.input"] = (np.concatenate([_field_bits(scale, FLOAT_BITS),
                                                        _field_bits(q.zero_point.reshape(-1).numpy(), 32)]),
                                        {"kind": "input", "qmin": q.qmin, "qmax": q.qmax})
    elif isinstance(m, (SharedWeights, SparseSharedWeights)):
        sparse = isinstance(m, SparseSharedWeights)
        if not sparse and enc != "dense":
            raise ValueError(f"layer {name!r}: k-means indices are stored dense (every weight has a centroid); "
                             f"use encoding='dense'")
        indices = m.indices.detach().cpu().numpy()
        packed, info = _encode(indices, indices != 0, tuple(indices.shape), m.bits, enc)
        records[f"{name}.indices"] = (packed, dict(info, kind="indices", shape=list(indices.shape), bits=m.bits))
        _plain(records, f"{name}.codebook", m.centroids.detach().reshape(-1), "dense")
        records[f"{name}.codebook"][1]["sparse"] = sparse
    else:
        raise NotImplementedError(f"layer {name!r}: a {type(m).__name__} cannot be saved yet")
    if layer.bias is not None:
        _plain(records, f"{name}.bias", layer.bias.detach(), "dense")


def save_compressed(model: nn.Module, path: Path | str, encoding_name: str = "dense") -> SavedModel:
    """Write ``model`` as it is stored: every compressed layer's tensors at their bits, every other
    parameter in fp32, tensors of 2+ dimensions in ``encoding_name`` (``"dense"``, ``"bitmask"``,
    ``"csr"``, ``"relative_index"``), vectors dense. The records hold exactly
    ``measure.weight_bytes(model, "fp32", encoding_name)`` bytes. ``model`` is not modified.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``path`` not a path.
        ValueError: an unknown encoding, a folder that does not exist, a parameter with NaN or inf;
            k-means indices in a sparse encoding.
        NotImplementedError: a compressed layer this module cannot store (ternary or binary codes).
    """
    check_model(model)
    path = check_file_path(path, "path")
    check_choice(encoding_name, "encoding_name", ENCODINGS)
    weight_bytes(model, "fp32", encoding_name)                  # checks every parameter is finite
    compressed = compressed_layers(model)
    inside = {id(p) for m in compressed.values() for p in m.parameters()}
    records: dict[str, tuple[np.ndarray, dict]] = {}
    for name, p in model.named_parameters():
        if id(p) not in inside:
            _plain(records, name, p, encoding_name)
    for name, m in compressed.items():
        _layer_records(records, name, m, encoding_name)
    return _write(path, records, "model")


def load_compressed(path: Path | str, model: nn.Module) -> nn.Module:
    """The model saved in ``path``, built in a copy of ``model`` (the architecture: the plain
    model the compressed one came from, or the compressed one itself). Plain parameters are
    decoded into place; each compressed layer becomes a :class:`CodesLayer` or :class:`CodebookLayer`
    computing the same weight bit for bit. ``model`` is not modified.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: ``path`` is not an existing file.
        StorageError: the file is not one of this module's, is corrupted, or does not fit ``model``.
    """
    check_model(model)
    path = _existing_file(path, "save_compressed")
    streams, described = _read(path, "model")
    loaded = copy.deepcopy(model)
    params = dict(loaded.named_parameters())
    layers = {k.rsplit(".", 1)[0] for k in described if k.rsplit(".", 1)[-1] in ("codes", "indices")}
    for name, info in described.items():
        owner = name.rsplit(".", 1)[0]
        if owner in layers:
            continue
        if name not in params:
            raise StorageError(f"{path.name}: record {name!r} has no parameter of that name in the model given")
        fields = _decode(streams[name], tuple(info["shape"]), FLOAT_BITS, info, signed=False)
        value = _floats(fields).reshape(info["shape"])
        if tuple(params[name].shape) != tuple(value.shape):
            raise StorageError(f"{path.name}: record {name!r} has shape {tuple(value.shape)}, the model's "
                               f"parameter {tuple(params[name].shape)}")
        with torch.no_grad():
            params[name].copy_(value)
    for name in sorted(layers):
        current = loaded.get_submodule(name)
        plain = current.layer if isinstance(current, CompressedLayer) else current
        plain = copy.deepcopy(plain)
        if f"{name}.bias" in described:
            info = described[f"{name}.bias"]
            with torch.no_grad():
                plain.bias.copy_(_floats(_decode(streams[f"{name}.bias"], tuple(info["shape"]), FLOAT_BITS, info, False)))
        if f"{name}.codes" in described:
            info = described[f"{name}.codes"]
            codes = _decode(streams[f"{name}.codes"], tuple(info["shape"]), info["code_bits"], info, signed=True)
            scale_info = described[f"{name}.scales"]
            scale = _floats(_decode(streams[f"{name}.scales"], tuple(scale_info["shape"]), FLOAT_BITS, scale_info, False))
            p = QParams(scale if info["axis"] is not None else scale.reshape(()), torch.zeros(
                scale.shape if info["axis"] is not None else ()), info["qmin"], info["qmax"], info["axis"])
            input_qparams = None
            if f"{name}.input" in described:
                raw = streams[f"{name}.input"]
                s = _floats(_read_fields(raw, 0, 1, FLOAT_BITS))
                z = torch.from_numpy(_read_fields(raw, FLOAT_BITS, 1, 32, signed=True)).to(torch.float32)
                iq = described[f"{name}.input"]
                input_qparams = QParams(s.reshape(()), z.reshape(()), iq["qmin"], iq["qmax"], None)
            layer = CodesLayer(plain, torch.from_numpy(codes).reshape(info["shape"]), p, info["code_bits"],
                               input_qparams)
        else:
            info, book = described[f"{name}.indices"], described[f"{name}.codebook"]
            indices = torch.from_numpy(_decode(streams[f"{name}.indices"], tuple(info["shape"]), info["bits"], info,
                                               False)).reshape(info["shape"])
            values = _floats(_decode(streams[f"{name}.codebook"], tuple(book["shape"]), FLOAT_BITS, book, False))
            codebook = torch.cat([values.new_zeros(1), values]) if book["sparse"] else values
            layer = CodebookLayer(plain, indices, codebook, info["bits"], len(values))
        loaded.set_submodule(name, layer)
    return loaded


# ----------------------------------------------------------------------------- Deep Compression, Huffman-coded

def _deep_layer_record(name: str, m: nn.Module, bits: int, index_bits: int) -> tuple[np.ndarray, dict]:
    """One layer as Deep Compression stores it (:func:`course_lib.deep_compression.account_layer`):
    the :math:`2^b - 1` shared values in fp32, the bias in fp32, then for the weight indices and for
    the gaps of the relative index a canonical Huffman code table (an 8-bit length per symbol) and
    the Huffman-coded stream."""
    w = m.weight.detach().cpu()
    values = w[w != 0].unique()                                      # sorted: the codebook's entries 1, 2, ...
    book = torch.zeros(2 ** bits - 1)
    book[:len(values)] = values
    encoded = encoding.encode_relative_index(w, index_bits)
    symbols = torch.zeros(len(encoded.values), dtype=torch.long)      # fillers point to index 0, the zero
    real = encoded.values != 0
    symbols[real] = torch.searchsorted(values, encoded.values[real]) + 1
    parts = [_field_bits(_float_fields(book), FLOAT_BITS)]
    if m.bias is not None:
        parts.append(_field_bits(_float_fields(m.bias), FLOAT_BITS))
    stream_bits = {}
    for part, stream, alphabet in (("weight", symbols, 2 ** bits), ("gap", encoded.gaps, 2 ** index_bits)):
        if len(stream) == 0:
            stream_bits[part] = 0
            continue
        code = encoding.huffman_code(torch.bincount(stream, minlength=alphabet))
        coded = encoding.huffman_encode(stream, code)
        parts += [_field_bits(np.array(code.lengths), 8),
                  np.unpackbits(np.frombuffer(coded.data, np.uint8))[:coded.bit_count]]
        stream_bits[part] = coded.bit_count
    info = {"kind": "deep", "shape": list(w.shape), "bits": bits, "index_bits": index_bits,
            "entries": len(symbols), "bias": m.bias is not None, "weight_stream_bits": stream_bits["weight"],
            "gap_stream_bits": stream_bits["gap"]}
    return np.concatenate(parts), info


def save_deep_compressed(model: nn.Module, path: Path | str, bits: int | dict[str, int],
                         index_bits: int | dict[str, int] = LENET_INDEX_BITS) -> SavedModel:
    """Write a pruned model whose layers share at most :math:`2^b - 1` nonzero values (a zoo
    ``*_deep_compressed`` model, or :func:`course_lib.deep_compression.as_plain_model` of one) in
    Deep Compression's final format: per layer the codebook, the bias, and both streams of the
    relative index Huffman-coded with their code tables. Each layer's record holds
    :math:`\\lceil` ``account_layer(...).bits_pqh`` :math:`/ 8 \\rceil` bytes. ``model`` is not modified.

    Raises:
        TypeError / ValueError: as :func:`course_lib.deep_compression.account_model` (a layer with
            more distinct values than its bits address is named); a bad path.
    """
    check_model(model)
    path = check_file_path(path, "path")
    table = account_model(model, bits, index_bits)                    # checks the bits and every layer
    records = {}
    for row in table.layers:
        records[row.layer] = _deep_layer_record(row.layer, model.get_submodule(row.layer), row.bits, row.index_bits)
        assert records[row.layer][0].size == row.bits_pqh, (row.layer, records[row.layer][0].size, row.bits_pqh)
    covered = {f"{row.layer}.{p}" for row in table.layers for p in ("weight", "bias")}
    for name, p in model.named_parameters():
        if name not in covered:
            _plain(records, name, p, "dense")
    return _write(path, records, "deep_compressed")


def load_deep_compressed(path: Path | str, model: nn.Module) -> nn.Module:
    """The plain model saved by :func:`save_deep_compressed`, decoded into a copy of ``model`` (the
    architecture): every weight rebuilt from its Huffman-coded indices and gaps and its codebook.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``. ValueError: ``path`` is not a file.
        StorageError: the file is not such a file, is corrupted, or does not fit ``model``.
    """
    check_model(model)
    path = _existing_file(path, "save_deep_compressed")
    streams, described = _read(path, "deep_compressed")
    loaded = copy.deepcopy(model)
    params = dict(loaded.named_parameters())
    for name, info in described.items():
        stream = streams[name]
        if info["kind"] == "float":
            target, value = params.get(name), _floats(_decode(stream, tuple(info["shape"]), FLOAT_BITS, info, False))
        else:
            b, g = info["bits"], info["index_bits"]
            cursor = (2 ** b - 1) * FLOAT_BITS
            book = torch.cat([torch.zeros(1), _floats(_read_fields(stream, 0, 2 ** b - 1, FLOAT_BITS))])
            layer = loaded.get_submodule(name)
            if info["bias"]:
                m = layer.bias.numel()
                with torch.no_grad():
                    layer.bias.copy_(_floats(_read_fields(stream, cursor, m, FLOAT_BITS)))
                cursor += m * FLOAT_BITS
            decoded = {}
            for part, alphabet in (("weight", 2 ** b), ("gap", 2 ** g)):
                count = info[f"{part}_stream_bits"]
                if info["entries"] == 0:
                    decoded[part] = torch.zeros(0, dtype=torch.long)
                    continue
                code = encoding.canonical_code(_read_fields(stream, cursor, alphabet, 8).tolist())
                cursor += alphabet * 8
                bits_ = stream[cursor:cursor + count]
                decoded[part] = encoding.huffman_decode(encoding.HuffmanBits(np.packbits(bits_).tobytes(), count), code)
                cursor += count
            flat = torch.zeros(int(np.prod(info["shape"])))
            positions = torch.cumsum(decoded["gap"] + 1, 0) - 1
            flat[positions] = book[decoded["weight"]]
            target, value = layer.weight, flat.reshape(info["shape"])
        if target is None or tuple(target.shape) != tuple(value.shape):
            raise StorageError(f"{path.name}: record {name!r} does not fit the model given")
        with torch.no_grad():
            target.copy_(value)
    return loaded
