"""Check a flair language-model ``.pt`` file before torch unpickles it.

flair loads character LMs with ``torch.load(weights_only=False)``: a pickle, and unpickling an
untrusted pickle can run any code. torch's own ``weights_only`` loader cannot read these files
(it rejects the protocol-4 frames flair writes), so this walks the pickle with an unpickler that
knows only what ``LanguageModel.save`` writes (tensors and their storages, ``OrderedDict``,
``flair.data.Dictionary``, plain builtins) and resolves each to an inert stand-in: nothing in
the file is ever called. Any other reference stops the load before flair sees the file.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from typing import Any

from embedx.errors import EmbedderUnavailable

_ALLOWED = {
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"), ("torch", "device"), ("flair.data", "Dictionary"),
    ("builtins", "int"), ("builtins", "float"), ("builtins", "str"), ("builtins", "bytes"), ("builtins", "set"),
    ("__builtin__", "set"), ("_codecs", "encode"),
}


class UnsafeCheckpoint(pickle.UnpicklingError):
    """The file references something a flair language model does not contain."""


class _Inert:
    """Stands in for every allowed class or function: accepts any construction and state, does nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


class _InspectingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module in ("torch", "torch.storage") and name.endswith("Storage")):
            return type(name, (_Inert,), {})
        raise UnsafeCheckpoint(f"it references {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        return _Inert()


def check_checkpoint(path: str) -> None:
    """Raise ``EmbedderUnavailable`` unless ``path`` holds only what a flair language model file holds."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                if len(names) != 1:
                    raise UnsafeCheckpoint("it is a zip file but not a torch checkpoint")
                _InspectingUnpickler(io.BytesIO(archive.read(names[0]))).load()
        else:  # torch's legacy format: magic number, protocol, system info, then the object
            with open(path, "rb") as handle:
                for _ in range(4):
                    _InspectingUnpickler(handle).load()
    except UnsafeCheckpoint as exc:
        raise EmbedderUnavailable(
            f"refusing to load {path}: {exc}, which a flair language model does not contain. A .pt file is a "
            "Python pickle and loading it can run code; if you trust this file, pass --option trust_pickle=true"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise EmbedderUnavailable(f"{path} is not a readable flair language model file: "
                                  f"{type(exc).__name__}: {exc}") from None
