"""Small TF Hub modules with the published interfaces, built locally (no download) for tests and benchmarks.

- :func:`build_elmo_module`: ``google/elmo/3``'s ``default`` and ``tokens`` signatures and outputs;
- :func:`build_text_module`: a gnews-swivel / nnlm-style text embedding (string batch in, ``[batch, dim]`` out);
- :func:`build_bert_module`: a tiny random BERT with the TF Hub BERT encoder interface;
- :func:`build_test_modules`: all three into one folder (``embedx tfhub build-test-modules DIR``);
- :mod:`.tf1_module`: TF1-style (graph mode, v1 variables, loops and saver) text-embedding and ELMo graphs;
- :mod:`.reference_modules`: every kind of module the plugin builds or exports, which the trust check's
  allow-list (:mod:`embedx_tfhub.allowed_ops`) is derived from.

Importing this package is cheap; each builder imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path


def build_elmo_module(out_dir, seed: int = 0) -> str:
    from embedx_tfhub.testing.elmo_module import build_elmo_module as build

    return build(out_dir, seed)


def build_text_module(out_dir, **kwargs) -> str:
    from embedx_tfhub.testing.text_module import build_text_module as build

    return build(out_dir, **kwargs)


def build_bert_module(out_dir, **kwargs) -> str:
    from embedx_tfhub.testing.bert_module import build_bert_module as build

    return build(out_dir, **kwargs)


def build_test_modules(out_dir: str | Path) -> dict[str, str]:
    """Build the three test modules under ``out_dir`` (``elmo``, ``text``, ``bert``); return their folders."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {"elmo": build_elmo_module(out / "elmo"), "text": build_text_module(out / "text"),
            "bert": build_bert_module(out / "bert")}
