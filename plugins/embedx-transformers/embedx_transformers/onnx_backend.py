"""The ``backend=onnx`` forward pass: the (cut) model exported once to ONNX and run by ONNX Runtime on the CPU.

The export holds only the hidden states the embedder reads, for the layers that run. It is
cached in the user's embedx cache folder under a name derived from the model's identity
(content hashes of its files), the states exported and the torch / transformers / onnxruntime
versions, so a second process skips the export. ONNX Runtime fuses attention, layer norms and
GELU at session start (all graph optimisations on). Its fp32 numbers equal torch's within 1e-5
(tested), so ``backend=onnx`` shares torch's cache; ``onnx-int8`` quantises the weight matrices
to int8 (dynamic, per output channel), which changes the numbers, and enters the cache key.

A cached file is only ever read by ONNX Runtime, which runs no Python; a damaged one is
exported again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedx.plugin_api import EmbedderUnavailable

OPSET = 17


def onnx_cache_dir() -> Path:
    from embedx.plugin_api import cache_root

    return cache_root() / "onnx"


def export_key(identity: dict[str, Any], depth: int, indices: tuple[int, ...], quantized: bool) -> str:
    versions = {d: importlib.metadata.version(d) for d in ("torch", "transformers", "onnxruntime")}
    text = json.dumps({"model": identity, "depth": depth, "indices": list(indices), "opset": OPSET,
                       "int8": quantized, "versions": versions}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class _States(torch.nn.Module):
    """The hidden states ``indices`` of ``view`` as separate outputs (what the ONNX graph returns)."""

    def __init__(self, view: Any, indices: tuple[int, ...]):
        super().__init__()
        self.view, self.indices = view, indices

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        states = self.view(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                           return_dict=True).hidden_states
        return tuple(states[i] for i in self.indices)


def export(view: Any, indices: tuple[int, ...], target: Path, quantized: bool) -> None:
    """Write the ONNX graph of ``view``'s states ``indices`` to ``target`` (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    names = [f"state_{i}" for i in indices]
    axes = {"input_ids": {0: "rows", 1: "length"}, "attention_mask": {0: "rows", 1: "length"}}
    axes.update({n: {0: "rows", 1: "length"} for n in names})
    example = torch.tensor([[101, 2023, 102], [101, 102, 0]])
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        plain = Path(tmp) / "model.onnx"
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
            # eval() first: the exporter restores the wrapper's mode on every submodule afterwards, and a fresh
            # module is in training mode, which would switch the shared model's dropout on
            torch.onnx.export(_States(view, indices).eval(), (example, (example > 0).long()), str(plain),
                              dynamo=False, input_names=["input_ids", "attention_mask"], output_names=names,
                              dynamic_axes=axes, opset_version=OPSET)
        final = plain
        if quantized:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            final = Path(tmp) / "model-int8.onnx"
            # per-channel weight scales: per tensor, MiniLM's mean vectors drop to cosine 0.91-0.96 of fp32;
            # per channel 0.98-0.99 (measured on 256 MR texts). Activation x activation products stay fp32.
            root = logging.getLogger()
            level, root.level = root.level, logging.ERROR  # its advice to pre-process is for static quantisation
            try:
                quantize_dynamic(str(plain), str(final), weight_type=QuantType.QInt8, per_channel=True,
                                 extra_options={"MatMulConstBOnly": True})
            finally:
                root.setLevel(level)
        os.replace(final, target)


class OnnxForward:
    """``(ids, mask) -> {state index: [rows, length, hidden] tensor}`` through an ONNX Runtime session."""

    def __init__(self, path: Path, indices: tuple[int, ...], threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # no busy-waiting between ops: on a shared machine spinning threads only steal the neighbours' cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.indices = indices

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[int, torch.Tensor]:
        feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy().astype(np.int64)}
        outputs = self.session.run(None, feed)
        return {i: torch.from_numpy(out) for i, out in zip(self.indices, outputs, strict=True)}


def onnx_forward(view: Any, identity: dict[str, Any], depth: int, indices: tuple[int, ...], quantized: bool,
                 threads: int) -> OnnxForward:
    """The cached export for this model and these states (exported now when missing or unreadable)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise EmbedderUnavailable("backend=onnx needs onnxruntime: pip install 'embedx-transformers[onnx]'") from None
    path = onnx_cache_dir() / f"{export_key(identity, depth, indices, quantized)}.onnx"
    if path.is_file():
        try:
            return OnnxForward(path, indices, threads)
        except Exception:  # damaged or truncated by a crash elsewhere: export again
            path.unlink(missing_ok=True)
    try:
        export(view, indices, path, quantized)
    except Exception as exc:
        raise EmbedderUnavailable(f"could not export the model to ONNX for backend=onnx: {type(exc).__name__}: {exc}; "
                                  "use backend=torch") from None
    return OnnxForward(path, indices, threads)
