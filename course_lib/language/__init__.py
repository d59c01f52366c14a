"""Compressing a small language model on the CPU (notebook 09): the corpus and the model (``text``,
``gpt``), then each technique, one module each: group-wise weight quantization with packing, GPTQ and AWQ
(``weights``), W8A8 and SmoothQuant (``smoothing``), magnitude, Wanda and 2:4 sparsity (``sparsity``), head
pruning with a Fisher mask (``heads``), the KV cache and its int8 form (``kv_cache``), and the 4-bit model on
ONNX Runtime's ``MatMulNBits`` (``onnx_int4``)."""

from . import gpt, heads, kv_cache, onnx_int4, smoothing, sparsity, text, weights
from .gpt import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .kv_cache import *  # noqa: F401,F403
from .onnx_int4 import *  # noqa: F401,F403
from .smoothing import *  # noqa: F401,F403
from .sparsity import *  # noqa: F401,F403
from .text import *  # noqa: F401,F403
from .weights import *  # noqa: F401,F403

__all__ = [*text.__all__, *gpt.__all__, *weights.__all__, *smoothing.__all__, *sparsity.__all__, *heads.__all__,
           *kv_cache.__all__, *onnx_int4.__all__]
