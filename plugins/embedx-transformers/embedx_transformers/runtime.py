"""torch and transformers: the model and tokenizer, loaded once per process, and the forward pass.

Only this module and ``pooling`` import torch/transformers, and only ``TransformerEncoder.load``
imports them, so registering the plugin stays instant. Several embedders (or several
``extract`` calls) on the same folder, dtype and device share one model in memory.

When the deepest requested hidden state is below the top, the forward pass runs a view of the
model whose layer list stops there: hidden state ``k`` of the first ``k`` layers is hidden state
``k`` of the full model (the layers run in sequence), at a fraction of the cost.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedx.plugin_api import EmbedderUnavailable, OptionError
from embedx_transformers.batching import Pass

#: Architectures whose encoder is a plain loop over ``<parent>.layer`` (safe to cut short).
TRUNCATABLE = {"bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "deberta", "deberta-v2",
               "mpnet", "ernie"}
_LAYER_LISTS = (("encoder", "layer"), ("transformer", "layer"))
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: Models whose forward checks ``torch.all(mask == 1)`` on a 2-D mask (a device sync every pass) but
#: takes a 3-D ``[b, T, T]`` mask as is; on CUDA they get the 3-D form (same numbers, tested on CPU).
SQUARE_MASK = {"bert", "roberta", "xlm-roberta", "camembert"}
#: Attention kernels allowed on CUDA. cuDNN's attention builds an execution plan per new input shape
#: (costly for half precision with many shapes); flash / memory-efficient kernels do not. ``None``: torch's choice.
CUDA_ATTENTION: tuple[str, ...] | None = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")
_MODELS: dict[tuple[str, str, str], Any] = {}
_TOKENIZERS: dict[tuple[str, bool | None], Any] = {}


@dataclass
class Runtime:
    """A loaded tokenizer and model with the facts the encoder needs about them."""

    tokenizer: Any
    model: Any
    device: torch.device
    model_type: str
    num_layers: int
    hidden: int
    max_positions: int
    prefix: list[int]  # special tokens before the content ([CLS])
    suffix: list[int]  # and after it ([SEP])
    pad_id: int
    lowercases: bool  # what the tokenizer itself does
    _views: dict[int, Any] = field(default_factory=dict)

    def passes(self, forward: Any, sequences: list[list[int]], plan: list[Pass], indices: tuple[int, ...], how: str,
               per_layer: bool) -> Iterator[tuple[Pass, torch.Tensor, torch.Tensor]]:
        """Per planned pass: the pass, its combined float32 states ``[rows, length, ...]`` and real positions.

        On the device.

        Sequences are padded on the right to the pass's shape; rows beyond ``len(members)`` are
        filler (one real position each) that callers ignore. Nothing here waits for the device:
        inputs go up from pinned memory without blocking and the mask is built on the device, so
        while the accelerator runs one pass the CPU already assembles the next. Call under
        ``torch.inference_mode``.
        """
        for step in plan:
            ids = np.full((step.rows, step.length), self.pad_id, dtype=np.int64)
            lengths = np.ones(step.rows, dtype=np.int64)
            for r, g in enumerate(step.members.tolist()):
                seq = sequences[g]
                ids[r, :len(seq)] = seq
                lengths[r] = len(seq)
            lengths_on = self.upload(lengths)
            mask = torch.arange(step.length, device=self.device) < lengths_on[:, None]
            states = forward(self.upload(ids), mask)
            yield step, combine(states, indices, how, per_layer), mask

    def upload(self, array: np.ndarray) -> torch.Tensor:
        """A host array on the device: through pinned memory and without blocking on CUDA (torch's pinned
        allocator keeps the block alive until the copy is done), as is on the CPU."""
        tensor = torch.from_numpy(array)
        if self.device.type != "cuda":
            return tensor
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def torch_forward(self, depth: int, fused: bool = True) -> Any:
        """The forward call of the model cut after encoder layer ``depth``: the fused BERT pass on the CPU
        where it applies (``fused_bert``; checked against transformers' on a small input), else transformers'."""
        from embedx_transformers import fused_bert

        square = self.device.type == "cuda" and self.model_type in SQUARE_MASK
        reference = TorchForward(self.view(depth), square, self.device.type == "cuda")
        dtype = next(self.model.parameters()).dtype
        if not fused or not fused_bert.supports(self.view(depth), self.model_type, self.device, dtype):
            return reference
        return fused_bert.checked(self.view(depth), reference, int(self.model.config.vocab_size))

    def view(self, depth: int) -> Any:
        """The model cut after encoder layer ``depth`` (the full model when that is the top)."""
        if depth not in self._views:
            self._views[depth] = _cut(self.model, self.model_type, self.num_layers, depth)
        return self._views[depth]


class TorchForward:
    """``(ids, mask) -> hidden states`` of a (possibly cut) transformers model, without host syncs."""

    def __init__(self, view: Any, square_mask: bool, cuda: bool):
        self.view, self.square_mask, self.cuda = view, square_mask, cuda

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.square_mask:
            attention = mask[:, None, :].expand(-1, mask.shape[1], -1)
        else:
            attention = mask.long()
        with _attention_kernels(self.cuda):
            return self.view(input_ids=ids, attention_mask=attention, output_hidden_states=True,
                             return_dict=True).hidden_states


def _attention_kernels(cuda: bool) -> Any:
    if not cuda or CUDA_ATTENTION is None:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, name) for name in CUDA_ATTENTION])


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise OptionError(f"device={device!r}: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise EmbedderUnavailable(f"device={device}: CUDA is not available here; use device=auto or cpu")
    return resolved


def load_runtime(folder: Path, dtype: str, device: str, lowercase: bool | None) -> Runtime:
    """Tokenizer and model for ``folder``, from the process-wide cache when already loaded."""
    os.environ.setdefault("USE_TF", "0")  # transformers would otherwise import TensorFlow when installed
    from transformers import AutoConfig

    where = str(folder)
    try:
        config = AutoConfig.from_pretrained(where, local_files_only=True)
    except Exception as exc:
        raise EmbedderUnavailable(f"{folder} is not a model folder transformers can read: "
                                  f"{type(exc).__name__}: {exc}") from None
    model_type = getattr(config, "model_type", "?")
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "is_decoder", False):
        raise EmbedderUnavailable(f"{folder} holds a {model_type} model, which is not a BERT-family encoder "
                                  "(encoder-decoder and decoder models are not supported)")
    tokenizer = _tokenizer(folder, lowercase)
    prefix, suffix = _specials(tokenizer)
    if not prefix or not suffix:
        raise EmbedderUnavailable(f"{folder} holds a {model_type} model whose tokenizer adds no [CLS]/[SEP]-style "
                                  "special tokens around a text; it is not a BERT-family encoder")
    torch_device = resolve_device(device)
    key = (str(folder.resolve()), dtype, str(torch_device))
    if key not in _MODELS:
        from transformers import AutoModel

        try:
            model = AutoModel.from_pretrained(where, local_files_only=True, dtype=DTYPES[dtype])
        except Exception as exc:
            raise EmbedderUnavailable(f"could not load the {model_type} model in {folder}: "
                                      f"{type(exc).__name__}: {exc}") from None
        _MODELS[key] = model.to(torch_device).eval()
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 100_000 else None
    limit = limit or getattr(config, "max_position_embeddings", None) or 512
    normalizer = tokenizer.backend_tokenizer.normalizer
    return Runtime(tokenizer=tokenizer, model=_MODELS[key], device=torch_device, model_type=model_type,
                   num_layers=int(config.num_hidden_layers), hidden=int(config.hidden_size),
                   max_positions=int(limit), prefix=prefix, suffix=suffix,
                   pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
                   lowercases=normalizer is not None and normalizer.normalize_str("AB") == "ab")


def _tokenizer(folder: Path, lowercase: bool | None) -> Any:
    key = (str(folder.resolve()), lowercase)
    if key not in _TOKENIZERS:
        from transformers import AutoTokenizer

        extra = {} if lowercase is None else {"do_lower_case": lowercase}
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), use_fast=True, local_files_only=True, **extra)
        except Exception as exc:
            raise EmbedderUnavailable(f"could not load the tokenizer in {folder}: "
                                      f"{type(exc).__name__}: {exc}") from None
        if not tokenizer.is_fast:
            raise EmbedderUnavailable(f"{folder}: a fast (Rust) tokenizer is needed for word alignment, "
                                      f"but {type(tokenizer).__name__} has none")
        _TOKENIZERS[key] = tokenizer
    return _TOKENIZERS[key]


def _specials(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single text, read from its own post-processor."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i:i + len(bare)] == bare:
            return full[:i], full[i + len(bare):]
    return [], []


def _cut(model: Any, model_type: str, num_layers: int, depth: int) -> Any:
    """A shallow copy of ``model`` sharing its weights, whose layer list stops after ``depth`` layers."""
    if depth >= num_layers or model_type not in TRUNCATABLE:
        return model
    for parent_name, list_name in _LAYER_LISTS:
        parent = getattr(model, parent_name, None)
        layers = getattr(parent, list_name, None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) == num_layers:
            short_parent = copy.copy(parent)
            short_parent._modules = dict(parent._modules)
            short_parent._modules[list_name] = torch.nn.ModuleList(list(layers)[:depth])
            view = copy.copy(model)
            view._modules = dict(model._modules)
            view._modules[parent_name] = short_parent
            return view
    return model


def combine(states: tuple[torch.Tensor, ...], indices: tuple[int, ...], how: str, per_layer: bool) -> torch.Tensor:
    """The chosen hidden states as float32 ``[B, T, D]``: one layer, concatenated, averaged, or stacked per layer."""
    chosen = [states[i] for i in indices]
    if per_layer:
        out = torch.stack(chosen, dim=2)
    elif len(chosen) == 1:
        out = chosen[0]
    elif how == "mean":
        out = torch.stack(chosen, dim=0).float().mean(0)
    else:
        out = torch.cat(chosen, dim=-1)
    return out.float()
