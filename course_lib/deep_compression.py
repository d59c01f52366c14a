"""Deep Compression: pruning, trained weight sharing and Huffman coding, and what they save.

Han, Mao & Dally (2016), "Deep Compression: Compressing Deep Neural Networks with Pruning,
Trained Quantization and Huffman Coding" (ICLR), chains three stages the course has met:

1. **Pruning** (Sec. 2, :mod:`course_lib.pruning`): most weights are set to zero; the nonzeros
   are stored in the relative-index format (:func:`course_lib.encoding.encode_relative_index`):
   each entry holds the gap since the previous entry in ``index_bits`` bits, and a gap too long
   for them is bridged by a filler entry whose value is zero.
2. **Trained quantization** (Sec. 3, :mod:`course_lib.codebook`): k-means shares each layer's
   nonzero weights among a few values, and each entry stores a ``bits``-bit index into the
   layer's codebook. The codebook is then fine-tuned (Sec. 3.3): the gradient of a shared value
   is the sum of the gradients of the weights that share it,
   :math:`\\partial L / \\partial c_k = \\sum_{i: I_i = k} \\partial L / \\partial W_i`, which autograd
   computes when the weight is built as ``codebook[indices]``.
3. **Huffman coding** (Sec. 4, :func:`course_lib.encoding.huffman_code`) of the two streams of
   integers, the weight indices and the gaps: both are far from uniform.

**The codebook** here has :math:`2^b` entries of which entry 0 is pinned to 0.0: it is the value
of every pruned weight and of the fillers, so a filler needs no extra symbol and :math:`b` bits
address every entry. The other :math:`2^b - 1` values are learned (k-means on the nonzero
weights, linear initialisation, then fine-tuning). A compressed layer thus takes at most
:math:`2^b` distinct values, zero included, and the zeros stay zero through fine-tuning.

**Storage of one layer** with :math:`n` weights, :math:`E` entries (nonzeros + fillers),
:math:`b` bits per weight index, :math:`p` bits per gap and :math:`m` biases:

.. math::
    \\text{P+Q} = E\\,b + E\\,p + (2^b - 1)\\cdot 32 + 32\\,m, \\qquad
    \\text{P+Q+H} = H_w + T_w + H_p + T_p + (2^b - 1)\\cdot 32 + 32\\,m,

where :math:`H_w, H_p` are the Huffman-coded streams (:math:`\\sum_s c_s \\ell_s` bits) and
:math:`T_w, T_p` their code tables (one 8-bit code length per symbol of the alphabet,
:func:`course_lib.encoding.huffman_table_bits`). **Biases are kept dense in fp32** and counted on
both sides (the paper's tables count weights only; the biases are 0.15% of LeNet-300-100's
parameters and 0.13% of LeNet-5's). The ratio is against the dense fp32 model,
:math:`32\\,(n + m)` bits per layer, summed over the layers.

The paper's Tables 2 (LeNet-300-100) and 3 (LeNet-5) give one row per layer and a total, in
these columns, which :meth:`CompressionTable.rows` reproduces for the course's models: the
layer's number of weights; ``Weights% (P)``, the fraction kept by pruning; the average bits per
weight index after pruning and quantization (P+Q) and after Huffman coding too (P+Q+H); the same
two for the position (gap) indices; and the compress rate, compressed size over dense size, after
P+Q and after P+Q+H. (The per-layer figures of those tables are not quoted here: compare the
course's rows with the paper itself.)

Table 1 gives the end results: LeNet-300-100 1.64% -> 1.58% top-1 error at 40x (1070 KB ->
27 KB), LeNet-5 0.80% -> 0.74% at 39x (1720 KB -> 44 KB). The course counts the LeNets' gaps
in 5 bits in every layer (:data:`LENET_INDEX_BITS`), the width Sec. 3 gives for fc layers.
Taught in ``notebooks/10_capstone.ipynb``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from . import encoding
from .checks import check_finite, check_int, check_model, check_tensor, check_type, describe
from .codebook import Codebook, nearest_centroid
from .data import ImageSplit, check_split
from .measure import CompressedLayer, StoredTensor, weight_layers
from .quantization import check_bits, check_weight
from .selection import check_scan, choose_within_drop, per_layer, scan_layers
from .train import TrainingSettings, fine_tune

__all__ = ["CENTROID_BITS", "BIAS_BITS", "DENSE_BITS", "LENET_INDEX_BITS", "INDEX_BITS_RANGE", "PaperResult",
           "PAPER_TABLE_1", "share_nonzero_weights", "SparseSharedWeights", "share_model_weights",
           "as_plain_model", "LayerAccount", "CompressionTable", "account_layer", "account_model",
           "DeepCompressed", "deep_compress", "bits_sensitivity_scan", "choose_bits"]

CENTROID_BITS = 32            # each learned shared value is stored in fp32
BIAS_BITS = 32                # biases are stored dense in fp32
DENSE_BITS = 32               # the reference: every parameter in fp32
LENET_INDEX_BITS = encoding.DEFAULT_INDEX_BITS["fc"]   # 5-bit gaps in every LeNet layer (Sec. 3's width for fc layers)
INDEX_BITS_RANGE = (1, 16)


@dataclass(frozen=True)
class PaperResult:
    """One row of Deep Compression's Table 1: errors before and after, and the ratio."""
    baseline_error: float
    error: float
    ratio: float
    dense_kb: int
    compressed_kb: int


PAPER_TABLE_1 = {"lenet_300_100": PaperResult(0.0164, 0.0158, 40, 1070, 27),
                 "lenet5": PaperResult(0.0080, 0.0074, 39, 1720, 44)}


# ----------------------------------------------------------------------------- argument checks

def _check_index_bits(index_bits: int, name: str = "index_bits") -> None:
    check_int(index_bits, name, *INDEX_BITS_RANGE)


# ----------------------------------------------------------------------------- stage 2: weight sharing

def share_nonzero_weights(w: torch.Tensor, bits: int, iterations: int = 20) -> Codebook:
    """k-means weight sharing of a pruned weight, zeros kept zero: a codebook of :math:`2^b`
    values whose entry 0 is 0.0 (the pruned weights' index) and whose entries
    :math:`1..2^b-1` are the centroids of Lloyd's algorithm on the nonzero weights alone,
    linearly initialised between their smallest and largest value (the paper's best
    initialisation, Sec. 3.2), sorted ascending. An empty cluster keeps its centroid.

    Returns:
        A :class:`course_lib.codebook.Codebook`: ``centroids`` (2^b,) float32 with
        ``centroids[0] == 0``, ``indices`` int64 of ``w``'s shape, 0 exactly where ``w`` is 0.
        ``w`` is not modified. ``bits=1`` leaves one shared value for all the nonzeros.

    Raises:
        TypeError: ``w`` is not a float tensor, ``bits`` or ``iterations`` not an int.
        ValueError: ``w`` is empty or holds NaN / inf, ``bits`` outside [1, 16], ``iterations`` < 1.
    """
    check_weight(w)
    check_bits(bits)
    check_int(iterations, "iterations", 1)
    flat = w.detach().reshape(-1).float()                                  # (n,)
    nonzero = flat != 0
    x = flat[nonzero]                                                      # (nnz,)
    k = 2 ** bits - 1                                                      # learned values
    if x.numel() == 0:
        centroids = torch.zeros(k, device=flat.device)
    else:
        centroids = torch.linspace(x.min().item(), x.max().item(), k, device=flat.device)
        for _ in range(iterations):
            assigned = nearest_centroid(x, centroids)                      # (nnz,)
            sums = torch.zeros(k, device=x.device).index_add_(0, assigned, x)
            counts = torch.bincount(assigned, minlength=k).float()
            centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids).sort().values
    indices = torch.zeros_like(flat, dtype=torch.long)
    if x.numel():
        indices[nonzero] = nearest_centroid(x, centroids) + 1              # 0 is the pinned zero
    table = torch.cat([torch.zeros(1, device=flat.device), centroids])    # (2^b,)
    return Codebook(table, indices.reshape(w.shape))


class SparseSharedWeights(CompressedLayer):
    """A pruned Linear or Conv2d whose weight is ``codebook[indices]`` with ``codebook[0] = 0``
    fixed and the other :math:`2^b - 1` values trainable (:attr:`centroids`): fine-tuning moves
    the shared values (Deep Compression, Sec. 3.3) while the pruned weights stay exactly zero
    and every weight keeps its cluster.

    The given layer is copied, never changed. Stored, as :mod:`course_lib.measure` counts it:
    a ``bits``-bit index per entry, the :math:`2^b - 1` learned values in fp32, the bias in fp32.

    Raises (on construction):
        TypeError: ``layer`` is not an ``nn.Linear`` / ``nn.Conv2d``; as :func:`share_nonzero_weights`.
        ValueError: as :func:`share_nonzero_weights`.
    """

    def __init__(self, layer: nn.Module, bits: int, iterations: int = 20):
        check_type(layer, "layer", (nn.Linear, nn.Conv2d), "nn.Linear or nn.Conv2d")
        shared = share_nonzero_weights(layer.weight, bits, iterations)
        super().__init__(copy.deepcopy(layer))
        self.bits = bits
        self.centroids = nn.Parameter(shared.centroids[1:].to(layer.weight.device))   # (2^b - 1,)
        self.register_buffer("indices", shared.indices.to(layer.weight.device))
        self.layer.weight.requires_grad_(False)        # the copy's float weight is not used

    def codebook(self) -> torch.Tensor:
        """The :math:`2^b` values an index can point to: 0, then the learned centroids."""
        return torch.cat([self.centroids.new_zeros(1), self.centroids])

    def weight_as_computed(self) -> torch.Tensor:
        """``codebook()[indices]``: the weight the forward pass multiplies by."""
        return self.codebook()[self.indices]

    def stored_tensors(self) -> list[StoredTensor]:
        """The ``bits``-bit indices (as the computed weight, so zeros stay visible to a sparse
        encoding), the fp32 learned values and the fp32 bias."""
        stored = [StoredTensor("indices", self.weight_as_computed().detach(), self.bits),
                  StoredTensor("codebook", self.centroids.detach(), CENTROID_BITS)]
        if self.layer.bias is not None:
            stored.append(StoredTensor("bias", self.layer.bias.detach(), BIAS_BITS))
        return stored

    def extra_repr(self) -> str:
        return f"0 and {2 ** self.bits - 1} shared values ({self.bits}-bit indices)"


def share_model_weights(model: nn.Module, bits: int | dict[str, int], iterations: int = 20) -> nn.Module:
    """A copy of a pruned ``model`` with every Linear/Conv2d wrapped in
    :class:`SparseSharedWeights` at its ``bits``. The given model is not changed.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, a bit width not an int.
        ValueError: the model has no Linear/Conv2d, ``bits`` (a dict) does not name every weight
            layer, a width is outside [1, 16], or a weight holds NaN (the layer is named).
    """
    check_model(model)
    layers = weight_layers(model)
    if not layers:
        raise ValueError("model has no Linear or Conv2d layer to share weights in")
    bits_of_layer = per_layer(bits, layers, "bits", check_bits, every_layer=True)
    check_int(iterations, "iterations", 1)
    shared = copy.deepcopy(model)
    for name, b in bits_of_layer.items():
        try:
            shared.set_submodule(name, SparseSharedWeights(shared.get_submodule(name), b, iterations))
        except ValueError as e:
            raise ValueError(f"layer {name!r}: {e}") from e
    return shared


def as_plain_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each :class:`SparseSharedWeights` replaced by its plain layer
    holding the shared weight (``codebook[indices]``): what the zoo saves, and what
    :func:`account_model` can still count, since each layer keeps at most :math:`2^b` values."""
    check_model(model)
    plain = copy.deepcopy(model)
    for name, m in list(plain.named_modules()):
        if isinstance(m, SparseSharedWeights):
            layer = m.layer
            with torch.no_grad():
                layer.weight.copy_(m.weight_as_computed())
            layer.weight.requires_grad_(True)
            plain.set_submodule(name, layer)
    return plain


# ----------------------------------------------------------------------------- the accounting

@dataclass(frozen=True)
class LayerAccount:
    """What one layer costs in Deep Compression's format, in bits (a row of Tables 2-3)."""
    layer: str
    kind: str                     # "conv" or "fc"
    weights: int                  # n
    nonzeros: int
    biases: int                   # m
    bits: int                     # b: bits per weight index (codebook of 2^b values, 0 included)
    index_bits: int               # p: bits per gap of the relative index
    entries: int                  # nonzeros + fillers
    weight_index_bits: int        # E b
    position_index_bits: int      # E p
    weight_index_huffman_bits: int    # Huffman stream + code table of the weight indices
    position_index_huffman_bits: int  # Huffman stream + code table of the gaps
    codebook_bits: int            # (2^b - 1) * 32
    bias_bits: int                # 32 m

    @property
    def kept(self) -> float:
        """Fraction of weights kept, the paper's "Weights% (P)"."""
        return self.nonzeros / self.weights

    @property
    def dense_bits(self) -> int:
        """:math:`32 (n + m)`: the layer in fp32, dense."""
        return DENSE_BITS * (self.weights + self.biases)

    @property
    def bits_pq(self) -> int:
        """After pruning and quantization: fixed-length indices and gaps, codebook, biases."""
        return self.weight_index_bits + self.position_index_bits + self.codebook_bits + self.bias_bits

    @property
    def bits_pqh(self) -> int:
        """After Huffman coding too: both streams Huffman-coded, with their code tables."""
        return (self.weight_index_huffman_bits + self.position_index_huffman_bits
                + self.codebook_bits + self.bias_bits)

    def row(self) -> dict[str, object]:
        """The layer as a table row in the paper's columns (bits per entry averaged)."""
        per_entry = max(1, self.entries)
        return {"layer": self.layer, "weights": self.weights, "kept %": round(100 * self.kept, 2),
                "weight bits (P+Q)": self.bits,
                "weight bits (P+Q+H)": round(self.weight_index_huffman_bits / per_entry, 2),
                "index bits (P+Q)": self.index_bits,
                "index bits (P+Q+H)": round(self.position_index_huffman_bits / per_entry, 2),
                "entries": self.entries, "codebook bits": self.codebook_bits, "bias bits": self.bias_bits,
                "rate % (P+Q)": round(100 * self.bits_pq / self.dense_bits, 2),
                "rate % (P+Q+H)": round(100 * self.bits_pqh / self.dense_bits, 2)}


@dataclass(frozen=True)
class CompressionTable:
    """Every layer's :class:`LayerAccount` and the whole model's totals. Parameters outside the
    Linear/Conv2d layers (none in the LeNets) are counted dense in fp32 on both sides."""
    layers: tuple[LayerAccount, ...]
    other_parameters: int = 0

    @property
    def dense_bits(self) -> int:
        return sum(l.dense_bits for l in self.layers) + DENSE_BITS * self.other_parameters

    @property
    def bits_pq(self) -> int:
        return sum(l.bits_pq for l in self.layers) + DENSE_BITS * self.other_parameters

    @property
    def bits_pqh(self) -> int:
        return sum(l.bits_pqh for l in self.layers) + DENSE_BITS * self.other_parameters

    @property
    def ratio_pq(self) -> float:
        """Dense fp32 size over the size after pruning and quantization."""
        return self.dense_bits / self.bits_pq

    @property
    def ratio(self) -> float:
        """Dense fp32 size over the size after all three stages: the paper's compression rate."""
        return self.dense_bits / self.bits_pqh

    @property
    def kept(self) -> float:
        return sum(l.nonzeros for l in self.layers) / sum(l.weights for l in self.layers)

    def rows(self) -> list[dict[str, object]]:
        """One dict per layer and a ``"total"`` row, ready for ``pandas.DataFrame(rows)``."""
        entries = max(1, sum(l.entries for l in self.layers))
        total = {"layer": "total", "weights": sum(l.weights for l in self.layers),
                 "kept %": round(100 * self.kept, 2),
                 "weight bits (P+Q)": round(sum(l.weight_index_bits for l in self.layers) / entries, 2),
                 "weight bits (P+Q+H)": round(sum(l.weight_index_huffman_bits for l in self.layers) / entries, 2),
                 "index bits (P+Q)": round(sum(l.position_index_bits for l in self.layers) / entries, 2),
                 "index bits (P+Q+H)": round(sum(l.position_index_huffman_bits for l in self.layers) / entries, 2),
                 "entries": sum(l.entries for l in self.layers),
                 "codebook bits": sum(l.codebook_bits for l in self.layers),
                 "bias bits": sum(l.bias_bits for l in self.layers),
                 "rate % (P+Q)": round(100 * self.bits_pq / self.dense_bits, 2),
                 "rate % (P+Q+H)": round(100 * self.bits_pqh / self.dense_bits, 2)}
        return [l.row() for l in self.layers] + [total]


def _stream_bits(counts: torch.Tensor, alphabet: int) -> int:
    """Huffman-coded bits of a histogram plus its code table (0 for an empty stream)."""
    if int(counts.sum()) == 0:
        return 0
    return encoding.huffman_bits(counts) + encoding.huffman_table_bits(alphabet)


def account_layer(name: str, weight: torch.Tensor, bias: torch.Tensor | None, bits: int,
                  index_bits: int = LENET_INDEX_BITS) -> LayerAccount:
    """Count one layer stored as Deep Compression stores it (module docstring): its weight
    relative-index encoded with ``index_bits``-bit gaps, each entry holding a ``bits``-bit index
    into a codebook of 0 and at most :math:`2^b - 1` shared values, both streams then
    Huffman-coded; the bias dense in fp32.

    The weight's distinct nonzero values, sorted, are the codebook's entries 1, 2, ...; a
    filler's index is 0. Inputs are not modified.

    Args:
        name: the layer's name, for the table and the messages.
        weight: (out, in) or (out, in, kh, kw), finite, at most :math:`2^b - 1` distinct nonzeros.
        bias: (out,) or None.
        bits: an int in [1, 16]; index_bits: an int in [1, 16].

    Raises:
        TypeError: a wrong type (``weight`` not a float tensor, ``bits`` not an int...).
        ValueError: NaN / inf, out-of-range bits, or more distinct nonzero values than
            :math:`2^b - 1` (share the weights first: :func:`share_model_weights`).
    """
    check_type(name, "name", str, "a str")
    check_weight(weight, "weight")
    if weight.dim() < 2:
        raise ValueError(f"weight must be a layer's weight (out, in) or (out, in, kh, kw), got shape "
                         f"{tuple(weight.shape)}")
    if bias is not None:
        check_tensor(bias, "bias")
        check_finite(bias, "bias")
    check_bits(bits)
    _check_index_bits(index_bits)
    w = weight.detach().cpu()
    values = w[w != 0].unique()                                            # sorted ascending
    if len(values) > 2 ** bits - 1:
        raise ValueError(f"weight of layer {name!r} takes {len(values)} distinct nonzero values, more "
                         f"than the {2 ** bits - 1} that {bits}-bit indices address besides 0; share "
                         f"its weights first (deep_compression.share_model_weights) or raise bits")
    encoded = encoding.encode_relative_index(w, index_bits)               # (E,) values and gaps
    symbols = torch.zeros(len(encoded.values), dtype=torch.long)          # fillers: index 0
    real = encoded.values != 0
    symbols[real] = torch.searchsorted(values, encoded.values[real]) + 1
    entries = len(symbols)
    weight_counts = torch.bincount(symbols, minlength=2 ** bits)
    gap_counts = torch.bincount(encoded.gaps, minlength=2 ** index_bits)
    biases = 0 if bias is None else bias.numel()
    return LayerAccount(
        layer=name, kind="conv" if w.dim() == 4 else "fc", weights=w.numel(),
        nonzeros=int(real.sum()), biases=biases, bits=bits, index_bits=index_bits, entries=entries,
        weight_index_bits=entries * bits, position_index_bits=entries * index_bits,
        weight_index_huffman_bits=_stream_bits(weight_counts, 2 ** bits),
        position_index_huffman_bits=_stream_bits(gap_counts, 2 ** index_bits),
        codebook_bits=(2 ** bits - 1) * CENTROID_BITS, bias_bits=BIAS_BITS * biases)


def account_model(model: nn.Module, bits: int | dict[str, int] | None = None,
                  index_bits: int | dict[str, int] = LENET_INDEX_BITS) -> CompressionTable:
    """:func:`account_layer` for every Linear/Conv2d of ``model`` (plain, or wrapped in
    :class:`SparseSharedWeights`), in order, plus the other parameters dense in fp32.

    Args:
        bits: an int for every layer or a dict naming each; None: each
            :class:`SparseSharedWeights` layer's own (then every weight layer must be one).
        index_bits: an int for every layer (default 5) or a dict naming each.

    Raises:
        TypeError / ValueError: as :func:`account_layer`, the layer named; a dict that does not
            name every weight layer; ``bits=None`` with a layer that is not shared.
    """
    check_model(model)
    shared = {n: m for n, m in model.named_modules() if isinstance(m, SparseSharedWeights)}
    layers = {**weight_layers(model), **shared}
    layers = {n: layers[n] for n, _ in model.named_modules() if n in layers}    # in model order
    if not layers:
        raise ValueError("model has no Linear or Conv2d layer to account for")
    if bits is None:
        plain = [n for n in layers if n not in shared]
        if plain:
            raise ValueError(f"bits must be given for layers that are not SparseSharedWeights: {plain}")
        per_layer_bits = {n: m.bits for n, m in shared.items()}
    else:
        per_layer_bits = per_layer(bits, layers, "bits", check_bits, every_layer=True)
    per_layer_index = per_layer(index_bits, layers, "index_bits", _check_index_bits, every_layer=True)
    rows = []
    for name, m in layers.items():
        weight = m.weight_as_computed() if name in shared else m.weight
        layer = m.layer if name in shared else m
        try:
            rows.append(account_layer(name, weight, layer.bias, per_layer_bits[name], per_layer_index[name]))
        except ValueError as e:
            raise ValueError(f"layer {name!r}: {e}") from e
    counted = {id(p) for m in layers.values() for p in (m.layer if isinstance(m, SparseSharedWeights)
                                                         else m).parameters()}
    counted |= {id(m.centroids) for m in shared.values()}
    other = sum(p.numel() for p in model.parameters() if id(p) not in counted)
    return CompressionTable(tuple(rows), other)


# ----------------------------------------------------------------------------- the pipeline

class DeepCompressed(NamedTuple):
    model: nn.Module              # Linear/Conv2d layers wrapped in SparseSharedWeights
    table: CompressionTable


def deep_compress(model: nn.Module, bits: int | dict[str, int], train: ImageSplit | None = None,
                  fine_tuning: TrainingSettings | None = None, *,
                  index_bits: int | dict[str, int] = LENET_INDEX_BITS, iterations: int = 20,
                  device: torch.device | str | None = None, progress: bool = True) -> DeepCompressed:
    """Stages 2 and 3 of Deep Compression on a pruned model (zeros in its weights): share each
    layer's nonzero weights among :math:`2^b - 1` values and zero
    (:func:`share_model_weights`), fine-tune the shared values on ``train`` as ``fine_tuning`` says
    (:func:`course_lib.train.fine_tune`: only the codebooks and biases train, the zeros stay
    zero), and count the result (:func:`account_model`). The given model is not changed.

    Args:
        model: a pruned model (prune it first, e.g. :func:`course_lib.pruning.iterative_prune`).
        bits: bits per weight index, an int in [1, 16] or a dict naming every weight layer.
        train: training images for the codebook fine-tuning (never the test set); needed when
            ``fine_tuning`` has epochs.
        fine_tuning: a :class:`course_lib.train.TrainingSettings` (None: no fine-tuning).
        device, progress: as :func:`course_lib.train.fit`.
        index_bits: bits per gap, an int in [1, 16] or a dict naming every weight layer.
        iterations: Lloyd iterations per layer.

    Returns:
        ``(model, table)``: the shared copy and its :class:`CompressionTable`.

    Raises:
        TypeError / ValueError: a bad argument, named, before anything is computed.
    """
    check_model(model)
    layers = weight_layers(model)
    if not layers:
        raise ValueError("model has no Linear or Conv2d layer to compress")
    per_layer(bits, layers, "bits", check_bits, every_layer=True)
    per_layer(index_bits, layers, "index_bits", _check_index_bits, every_layer=True)
    check_int(iterations, "iterations", 1)
    check_type(fine_tuning, "fine_tuning", TrainingSettings, "a TrainingSettings (train.TrainingSettings(epochs=...))",
               allow_none=True)
    check_split(train, "train", allow_none=True)
    epochs = fine_tuning.epochs if fine_tuning is not None else 0
    if epochs and train is None:
        raise ValueError(f"{epochs} epochs of codebook fine-tuning need training images: pass train=")
    shared = share_model_weights(model, bits, iterations)
    if epochs:
        fine_tune(shared, train, fine_tuning, device=device,
                  progress=progress, description="codebook fine-tuning")
    shared.eval()
    return DeepCompressed(shared, account_model(shared, index_bits=index_bits))


# ----------------------------------------------------------------------------- choosing bits on validation

def bits_sensitivity_scan(model: nn.Module, split: ImageSplit, candidates: tuple[int, ...] = (2, 3, 4, 5, 6),
                          ) -> dict[str, list[tuple[int, float]]]:
    """Accuracy on ``split`` when each layer alone has its weights shared at each candidate
    width (no fine-tuning), the others left as they are: ``{layer: [(bits, accuracy), ...]}``.
    The scan drives choices, so ``split`` is validation data, never the test set.

    Raises:
        TypeError / ValueError: a bad model or split, ``candidates`` not a non-empty tuple of
            ints in [1, 16].
    """
    check_model(model)
    check_split(split)
    if not isinstance(candidates, (tuple, list)) or not candidates:
        raise TypeError(f"candidates must be a non-empty tuple of ints in [1, 16], got {describe(candidates)}")
    for b in candidates:
        check_bits(b, "each of candidates")
    def share_one_layer(model: nn.Module, name: str, b: int) -> nn.Module:
        trial = copy.deepcopy(model)
        trial.set_submodule(name, SparseSharedWeights(trial.get_submodule(name), b))
        return trial

    return scan_layers(model, split, weight_layers(model), candidates, share_one_layer)


def choose_bits(scan: dict[str, list[tuple[int, float]]], baseline_accuracy: float,
                max_drop: float) -> dict[str, int]:
    """For each layer, the fewest scanned bits whose accuracy stays within ``max_drop``
    (absolute: 0.001 is a tenth of a point) of ``baseline_accuracy``, boundary included; the
    most scanned bits if none does. The mirror of :func:`course_lib.pruning.choose_sparsities`;
    ``scan`` is what :func:`bits_sensitivity_scan` measures (how the zoo's Deep Compression
    recipes chose their bits, recorded in :data:`course_lib.zoo.RECIPES`).

    Raises:
        TypeError: ``scan`` is not a non-empty dict. ValueError: a layer with no points, a point
            that is not a (bits, accuracy) pair, bits outside [1, 32], an accuracy outside [0, 1].
    """
    check_scan(scan, "bits")
    for layer, points in scan.items():
        for k, (b, _) in enumerate(points):
            check_int(b, f"scan[{layer!r}][{k}] bits", 1, 32)
    return choose_within_drop(scan, baseline_accuracy, max_drop, most_aggressive=min, fallback=max)
