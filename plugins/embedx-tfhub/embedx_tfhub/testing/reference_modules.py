"""Every kind of module this plugin builds or exports, small: what the trust check's allow-list is derived from.

:func:`build_reference_modules` builds them into one folder: the three test modules
(:func:`embedx_tfhub.testing.build_test_modules`: ELMo, NNLM-style text, BERT), the Swivel exporter's module
with and without lowercasing (embedx-swivel), the ELMo exporter's module (embedx-elmo-train: an untrained
biLM, exported as :func:`embedx_elmo_train.export.export_elmo` does), a tiny Hugging Face BERT checkpoint converted by
:func:`embedx_tfhub.convert.convert_bert`, and the TF1-style text and ELMo graphs of
:mod:`embedx_tfhub.testing.tf1_module`. :func:`module_ops` lists the ops of a module's graph and functions.
The two trainer packages depend on this one, so their exporters are imported only here, when the
reference modules are built (their modules are what this runtime runs, so the allow-list covers them).

    python -m embedx_tfhub.testing.reference_modules     # each op, the modules using it, and the diff to the list
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

import numpy as np


def build_reference_modules(out_dir: str | Path, test_modules: dict[str, str] | None = None) -> dict[str, str]:
    """Build every reference module under ``out_dir`` (reusing ``test_modules`` if given); return their folders."""
    from embedx_swivel.export import export_module
    from embedx_tfhub.testing import build_test_modules
    from embedx_tfhub.testing.tf1_module import build_tf1_elmo_module, build_tf1_text_module

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    modules = dict(test_modules) if test_modules is not None else build_test_modules(out / "test")
    words = ["the", "cat", "sat", "on", "mat", "US", "good"]
    vectors = np.random.default_rng(0).normal(size=(len(words), 6)).astype(np.float32)
    export_module(words, vectors, out / "swivel", num_oov_buckets=3)
    export_module(words[:5], vectors[:5], out / "swivel-lowercase", num_oov_buckets=1, lowercase=True)
    modules["swivel"], modules["swivel-lowercase"] = str(out / "swivel"), str(out / "swivel-lowercase")
    modules["elmo-export"] = build_elmo_export(out / "elmo-export")
    modules["bert-converted"] = build_converted_bert(out / "bert-converted")
    modules["tf1-text"] = build_tf1_text_module(out / "tf1-text")
    modules["tf1-elmo"] = build_tf1_elmo_module(out / "tf1-elmo")
    return modules


def build_elmo_export(out_dir: str | Path) -> str:
    """The ELMo exporter's module around a small untrained biLM, saved as :func:`export_elmo` saves it."""
    from embedx_elmo_train.export import METADATA_ASSET, module_class
    from embedx_elmo_train.model import BiLM, BiLMConfig
    from embedx_tfhub._tf import tensorflow

    tf = tensorflow()
    config = BiLMConfig(vocab_size=8, max_chars=10, filters=((1, 8), (2, 8)), highway=1, cell_dim=16, n_samples=4)
    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp) / METADATA_ASSET
        meta.write_text(json.dumps({"format": "embedx-elmo-module"}), encoding="utf-8")
        module = module_class(tf)(BiLM(config), str(meta))
        tf.saved_model.save(module, str(out_dir), signatures={
            "default": module.default_signature.get_concrete_function(),
            "tokens": module.tokens_signature.get_concrete_function()})
    return str(out_dir)


def write_tiny_hf_bert(folder: str | Path, hidden: int = 16, layers: int = 2, heads: int = 2, seed: int = 0) -> str:
    """A random Hugging Face ``BertModel`` checkpoint folder (config, vocab, safetensors), for the converter."""
    from safetensors.numpy import save_file

    from embedx_tfhub.convert import HF_LAYER_TO_HUB, HF_TO_HUB

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase]
    config = {"model_type": "bert", "vocab_size": len(vocab), "hidden_size": hidden, "num_hidden_layers": layers,
              "num_attention_heads": heads, "intermediate_size": 2 * hidden, "max_position_embeddings": 32,
              "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}
    rows = {"embeddings.word_embeddings.weight": len(vocab), "embeddings.position_embeddings.weight": 32,
            "embeddings.token_type_embeddings.weight": 2}
    sizes = {"intermediate.dense": (2 * hidden, hidden), "output.dense": (hidden, 2 * hidden)}
    rng = np.random.default_rng(seed)
    state = {}
    for name in HF_TO_HUB:
        shape = (
            (rows[name], hidden) if name in rows else (hidden, hidden) if name.endswith("dense.weight") else (hidden,)
        )
        state[name] = rng.normal(0, 0.02, shape)
    for n in range(layers):
        for module in HF_LAYER_TO_HUB:
            out_in = sizes.get(module, (hidden, hidden))
            state[f"encoder.layer.{n}.{module}.weight"] = rng.normal(0, 0.02, (out_in[0],) if "LayerNorm" in module
                                                                     else out_in)
            state[f"encoder.layer.{n}.{module}.bias"] = np.zeros(out_in[0])
    save_file({k: np.asarray(v, np.float32) for k, v in state.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}), encoding="utf-8")
    return str(folder)


def build_converted_bert(out_dir: str | Path) -> str:
    """A tiny random Hugging Face BERT checkpoint converted by :func:`embedx_tfhub.convert.convert_bert`."""
    from embedx_tfhub.convert import convert_bert

    with tempfile.TemporaryDirectory() as tmp:
        convert_bert(write_tiny_hf_bert(Path(tmp) / "hf"), out_dir)
    return str(out_dir)


def module_ops(folder: str | Path) -> set[str]:
    """The ops of a SavedModel's graphs and library functions (calls of library functions left out)."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    model.ParseFromString((Path(folder) / "saved_model.pb").read_bytes())
    ops: set[str] = set()
    for meta_graph in model.meta_graphs:
        graph = meta_graph.graph_def
        functions = {f.signature.name for f in graph.library.function}
        for nodes in [graph.node, *(f.node_def for f in graph.library.function)]:
            ops |= {node.op for node in nodes} - functions
    return ops


def main() -> None:
    from embedx_tfhub.allowed_ops import ALLOWED_OPS, TWINS

    with tempfile.TemporaryDirectory() as tmp:
        used = {name: module_ops(folder) for name, folder in build_reference_modules(tmp).items()}
    every = set().union(*used.values())
    for op in sorted(every):
        print(f"{op:32} {', '.join(name for name, ops in used.items() if op in ops)}")
    print(f"\n{len(every)} ops used; allow-list: {len(ALLOWED_OPS)} ({len(TWINS)} twins)")
    print("used but not allowed:", sorted(every - ALLOWED_OPS) or "none")
    print("allowed but unused (twins aside):", sorted(ALLOWED_OPS - TWINS - every) or "none")


if __name__ == "__main__":
    main()
