"""Convert a Hugging Face BERT checkpoint folder into a TF Hub-format BERT encoder (TF2 SavedModel).

    embedx tfhub convert-bert HF_FOLDER OUT_DIR          # or convert_bert(HF_FOLDER, OUT_DIR)

Reads ``config.json`` (a ``bert`` model: absolute positions, ``gelu``), the weights from
``model.safetensors`` (numpy, no torch needed) or ``pytorch_model.bin`` (through torch), the
WordPiece vocabulary ``vocab.txt`` and ``do_lower_case`` from ``tokenizer_config.json``
(default: true). Hugging Face ``Linear`` weights are ``[out, in]`` and are transposed to
``[in, out]`` kernels; a checkpoint saved from ``BertForXxx`` (keys prefixed ``bert.``) works too.
The checkpoint's pooler (``pooler.dense``) becomes ``pooled_output``; a checkpoint without one
gets an identity-kernel, zero-bias pooler (``pooled_output`` = tanh of the [CLS] vector), and
:func:`convert_bert` says so in its result. The saved module is described in
:mod:`embedx_tfhub.bert_model`; a ``conversion.json`` next to it records the source files'
SHA-256 and the mapping used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from embedx.plugin_api import file_digest
from embedx_tfhub.folders import replace_folder, staging_folder

HF_TO_HUB = {
    "embeddings.word_embeddings.weight": "word_embeddings/embeddings",
    "embeddings.position_embeddings.weight": "position_embedding/embeddings",
    "embeddings.token_type_embeddings.weight": "type_embeddings/embeddings",
    "embeddings.LayerNorm.weight": "embeddings/layer_norm/gamma",
    "embeddings.LayerNorm.bias": "embeddings/layer_norm/beta",
    "pooler.dense.weight": "pooler_transform/kernel",
    "pooler.dense.bias": "pooler_transform/bias",
}
HF_LAYER_TO_HUB = {
    "attention.self.query": "self_attention/query",
    "attention.self.key": "self_attention/key",
    "attention.self.value": "self_attention/value",
    "attention.output.dense": "self_attention/attention_output",
    "attention.output.LayerNorm": "self_attention_layer_norm",
    "intermediate.dense": "intermediate",
    "output.dense": "output",
    "output.LayerNorm": "output_layer_norm",
}


def hub_name(hf_name: str) -> str | None:
    """The encoder weight name for a Hugging Face ``BertModel`` state-dict key (``None``: not used)."""
    if hf_name.startswith("bert."):
        hf_name = hf_name[len("bert."):]
    if hf_name in HF_TO_HUB:
        return HF_TO_HUB[hf_name]
    if not hf_name.startswith("encoder.layer."):
        return None
    index, _, rest = hf_name[len("encoder.layer."):].partition(".")
    module, _, kind = rest.rpartition(".")
    if module not in HF_LAYER_TO_HUB:
        return None
    suffix = {"weight": "kernel", "bias": "bias"}[kind]
    if module.endswith("LayerNorm"):
        suffix = {"weight": "gamma", "bias": "beta"}[kind]
    return f"transformer/layer_{index}/{HF_LAYER_TO_HUB[module]}/{suffix}"


def hf_weights(folder: Path) -> tuple[dict[str, np.ndarray], Path]:
    """The checkpoint's state dict as numpy arrays, and the file it came from."""
    safetensors_file = folder / "model.safetensors"
    if safetensors_file.is_file():
        from safetensors.numpy import load_file

        return load_file(str(safetensors_file)), safetensors_file
    bin_file = folder / "pytorch_model.bin"
    if bin_file.is_file():
        import torch

        state = torch.load(str(bin_file), map_location="cpu", weights_only=True)
        return {k: v.detach().cpu().numpy() for k, v in state.items()}, bin_file
    raise FileNotFoundError(f"{folder} has neither model.safetensors nor pytorch_model.bin")


def map_weights(state: dict[str, np.ndarray], num_layers: int, hidden: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """Rename and transpose a Hugging Face state dict; returns the weights and notes on what was filled in."""
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        name = hub_name(key)
        if name is None:
            continue
        value = np.asarray(value, dtype=np.float32)
        if name.endswith("/kernel"):
            value = value.T  # torch Linear: [out, in]
        out[name] = np.ascontiguousarray(value)
    notes = []
    if "pooler_transform/kernel" not in out:
        out["pooler_transform/kernel"] = np.eye(hidden, dtype=np.float32)
        out["pooler_transform/bias"] = np.zeros(hidden, dtype=np.float32)
        notes.append("checkpoint has no pooler: pooled_output is tanh of the [CLS] vector (identity pooler)")
    layers = {int(n.split("/")[1][len("layer_"):]) for n in out if n.startswith("transformer/")}
    if layers != set(range(num_layers)):
        raise ValueError(f"checkpoint has encoder layers {sorted(layers)}, config says {num_layers}")
    return out, notes


def convert_bert(hf_folder: str | Path, out_dir: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Write a TF Hub-format BERT encoder for the checkpoint in ``hf_folder`` to ``out_dir``; return a summary."""
    from embedx_tfhub.bert_model import BertConfig, save_encoder

    folder, out = Path(hf_folder).expanduser(), Path(out_dir).expanduser()
    config_file, vocab = folder / "config.json", folder / "vocab.txt"
    for needed in (config_file, vocab):
        if not needed.is_file():
            raise FileNotFoundError(f"{folder} has no {needed.name}: expected a Hugging Face BERT folder")
    config_dict = json.loads(config_file.read_text(encoding="utf-8"))
    if config_dict.get("model_type", "bert") != "bert":
        raise ValueError(f"{folder} holds a {config_dict.get('model_type')!r} model; only 'bert' converts")
    config = BertConfig.from_dict(config_dict)
    do_lower_case = True
    tok_config = folder / "tokenizer_config.json"
    if tok_config.is_file():
        do_lower_case = bool(json.loads(tok_config.read_text(encoding="utf-8")).get("do_lower_case", True))
    state, weights_file = hf_weights(folder)
    weights, notes = map_weights(state, config.num_hidden_layers, config.hidden_size)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite=True / --overwrite)")
    summary = {
        "source": str(folder),
        "weights_file": weights_file.name,
        "weights_sha256": file_digest(str(weights_file)),
        "vocab_sha256": file_digest(str(vocab)),
        "config": config.__dict__,
        "do_lower_case": do_lower_case,
        "notes": notes,
        "interface": "TF Hub BERT encoder: inputs input_word_ids/input_mask/input_type_ids; outputs "
                     "pooled_output, sequence_output, encoder_outputs, default; vocab_file, do_lower_case",
    }
    with staging_folder(out) as staging:  # written beside OUT_DIR, then swapped in: never half a module there
        saved = staging / "module"
        save_encoder(config, weights, str(vocab), do_lower_case, str(saved))
        (saved / "conversion.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        replace_folder(saved, out)
    return summary
