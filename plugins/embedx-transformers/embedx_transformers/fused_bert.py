"""A fused forward pass for plain BERT encoders on the CPU, equal to transformers' within float rounding.

On a CPU the encoder's matrix products already run near the machine's GEMM peak, so what is left
to win is around them. Per layer this pass:

- runs query, key and value as one product (one weight of 3 x hidden rows);
- uses oneDNN's linear with weights packed once for it, which is a few percent faster than the
  default GEMM here, and applies GELU inside the product instead of as a separate pass over the
  4 x hidden activations (MiniLM on 2 cores: GELU alone was 6% of the forward time);
- keeps the activations as one [tokens, hidden] matrix, with no per-module Python.

Only checked shapes of model take this path (``supports``): model type ``bert``, absolute
positions, exact (erf) GELU, no decoder or cross-attention, float32 on the CPU, and a torch build
with oneDNN. Everything else, and ``fused=false``, runs transformers' own modules. The first
call compares both on a small input and falls back (with a warning) if they differ.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

#: each BertLayer's packed weights, for as long as the layer lives (every cut of a model shares them)
_PACKED: weakref.WeakKeyDictionary[Any, _PackedLayer] = weakref.WeakKeyDictionary()
#: the most a hidden state may differ from transformers' own forward in the load-time check
SELF_CHECK_TOLERANCE = 1e-4


def supports(model: Any, model_type: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``model`` is a plain BERT encoder this pass computes exactly as transformers does."""
    config = getattr(model, "config", None)
    return (model_type == "bert" and device.type == "cpu" and dtype == torch.float32 and config is not None
            and getattr(config, "position_embedding_type", "absolute") == "absolute"
            and getattr(config, "hidden_act", None) == "gelu"
            and not getattr(config, "is_decoder", False) and not getattr(config, "add_cross_attention", False)
            and not getattr(config, "chunk_size_feed_forward", 0)
            and hasattr(model, "embeddings") and hasattr(getattr(model, "encoder", None), "layer")
            and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


@dataclass
class _PackedLayer:
    qkv: tuple[torch.Tensor, torch.Tensor]
    attention_out: tuple[torch.Tensor, torch.Tensor]
    attention_norm: tuple[torch.Tensor, torch.Tensor, float]
    intermediate: tuple[torch.Tensor, torch.Tensor]
    output: tuple[torch.Tensor, torch.Tensor]
    output_norm: tuple[torch.Tensor, torch.Tensor, float]


def _pack(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), None), bias.detach().contiguous()


def _norm(module: Any) -> tuple[torch.Tensor, torch.Tensor, float]:
    return module.weight.detach(), module.bias.detach(), float(module.eps)


def pack_layer(layer: Any) -> _PackedLayer:
    """One ``BertLayer``'s weights, packed for oneDNN (shared by every cut of the model that runs it)."""
    attention = layer.attention.self
    qkv_weight = torch.cat([attention.query.weight, attention.key.weight, attention.value.weight])
    qkv_bias = torch.cat([attention.query.bias, attention.key.bias, attention.value.bias])
    return _PackedLayer(qkv=_pack(qkv_weight, qkv_bias),
                        attention_out=_pack(layer.attention.output.dense.weight, layer.attention.output.dense.bias),
                        attention_norm=_norm(layer.attention.output.LayerNorm),
                        intermediate=_pack(layer.intermediate.dense.weight, layer.intermediate.dense.bias),
                        output=_pack(layer.output.dense.weight, layer.output.dense.bias),
                        output_norm=_norm(layer.output.LayerNorm))


def _linear(x: torch.Tensor, packed: tuple[torch.Tensor, torch.Tensor], activation: str = "none") -> torch.Tensor:
    """oneDNN's linear on packed weights; ``gelu`` applied inside it (the exact erf form, as BERT's ``gelu``)."""
    return torch.ops.mkldnn._linear_pointwise(x, packed[0], packed[1], activation, [], "none")


class FusedBertForward:
    """``(ids, mask) -> hidden states`` (embedding output, then each layer's) of a (possibly cut) BERT model."""

    def __init__(self, view: Any):
        config = view.config
        self.embeddings = view.embeddings
        self.heads = int(config.num_attention_heads)
        self.hidden = int(config.hidden_size)
        self.layers = []
        for layer in view.encoder.layer:
            if layer not in _PACKED:
                _PACKED[layer] = pack_layer(layer)
            self.layers.append(_PACKED[layer])

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        rows, length = ids.shape
        hidden, heads = self.hidden, self.heads
        x = self.embeddings(input_ids=ids)
        states = [x]
        keep = mask[:, None, None, :]  # [rows, 1, 1, length]: which keys each query may attend to
        h = x.reshape(rows * length, hidden)
        for layer in self.layers:
            qkv = _linear(h, layer.qkv).view(rows, length, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
            context = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=keep)
            context = context.transpose(1, 2).reshape(rows * length, hidden)
            a = F.layer_norm(_linear(context, layer.attention_out) + h, (hidden,), *layer.attention_norm)
            inner = _linear(a, layer.intermediate, "gelu")
            h = F.layer_norm(_linear(inner, layer.output) + a, (hidden,), *layer.output_norm)
            states.append(h.view(rows, length, hidden))
        return tuple(states)


def checked(view: Any, reference: Any, vocab_size: int) -> Any:
    """The fused pass of ``view`` if it builds and matches ``reference`` (transformers' forward) on a small
    input, else ``reference``."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, max(2, vocab_size), (3, 11), generator=generator)
    mask = torch.arange(11)[None, :] < torch.tensor([11, 7, 2])[:, None]
    try:
        fused = FusedBertForward(view)  # packing the weights may itself fail on an unusual build
        with torch.inference_mode():
            got, want = fused(ids, mask), reference(ids, mask)
        worst = max(float((g - w)[mask].abs().max()) for g, w in zip(got, want, strict=True))
    except Exception as exc:  # an op missing from this torch build, a module shaped otherwise
        warnings.warn(f"the fused BERT pass failed its check ({type(exc).__name__}: {exc}); using transformers' "
                      "forward", RuntimeWarning, stacklevel=2)
        return reference
    if not worst <= SELF_CHECK_TOLERANCE:
        warnings.warn(f"the fused BERT pass differs from transformers' by {worst:.1e} on a check input; using "
                      "transformers' forward", RuntimeWarning, stacklevel=2)
        return reference
    return fused
