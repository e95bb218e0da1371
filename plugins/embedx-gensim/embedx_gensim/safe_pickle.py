"""Load gensim's native ``.kv`` KeyedVectors files without running arbitrary code.

A ``.kv`` file is a pickle (plus ``.npy`` side files for large arrays), and unpickling an
untrusted pickle can run anything. This unpickler resolves only the gensim KeyedVectors
classes, numpy's array reconstruction and a few harmless builtins; any other global stops
the load *before* it is called. After unpickling it runs the same post-load steps as
``gensim.utils.SaveLoad.load`` (``_load_specials``: side arrays read with ``np.load``, which
refuses pickled object arrays), after checking that those steps will not unpickle anything.
"""

from __future__ import annotations

import importlib
import pickle
import re
from typing import Any

from embedx.plugin_api import open_maybe_compressed

# (module, name) as written in the pickle -> (module, name) to import. Old numpy spelled its
# internals numpy.core; numpy 2 keeps them in numpy._core (the old path only warns).
_ALLOWED: dict[tuple[str, str], tuple[str, str]] = {
    ("gensim.models.keyedvectors", "KeyedVectors"): ("gensim.models.keyedvectors", "KeyedVectors"),
    ("gensim.models.keyedvectors", "EuclideanKeyedVectors"): ("gensim.models.keyedvectors", "KeyedVectors"),
    ("gensim.models.keyedvectors", "Word2VecKeyedVectors"): ("gensim.models.keyedvectors", "KeyedVectors"),
    ("gensim.models.keyedvectors", "Vocab"): ("gensim.models.keyedvectors", "CompatVocab"),
    ("gensim.models.keyedvectors", "CompatVocab"): ("gensim.models.keyedvectors", "CompatVocab"),
    ("gensim.models.fasttext", "FastTextKeyedVectors"): ("gensim.models.fasttext", "FastTextKeyedVectors"),
    ("gensim.models.keyedvectors", "FastTextKeyedVectors"): ("gensim.models.fasttext", "FastTextKeyedVectors"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("builtins", "set"): ("builtins", "set"),
    ("builtins", "frozenset"): ("builtins", "frozenset"),
    ("builtins", "bytearray"): ("builtins", "bytearray"),
    ("builtins", "complex"): ("builtins", "complex"),
    ("__builtin__", "set"): ("builtins", "set"),
    ("__builtin__", "frozenset"): ("builtins", "frozenset"),
    ("collections", "OrderedDict"): ("collections", "OrderedDict"),
    ("_codecs", "encode"): ("_codecs", "encode"),  # how protocol-2 pickles spell bytes
}
_ATTRIBUTE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UnsafePickleError(pickle.UnpicklingError):
    """The file needs something the restricted unpickler will not load."""


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` whose ``find_class`` knows only the allow-list above."""

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED.get((module, name))
        if target is None:
            raise UnsafePickleError(f"it references {module}.{name}, which is not part of a KeyedVectors file")
        return getattr(importlib.import_module(target[0]), target[1])


def _check_specials(obj: Any, where: str, keyed_vectors: type) -> None:
    """Refuse bookkeeping that would make gensim's ``_load_specials`` unpickle or leave the directory."""
    state = getattr(obj, "__dict__", {})
    for key in ("__numpys", "__ignoreds", "__recursive_saveloads", "__scipys"):
        names = state.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) and _ATTRIBUTE.match(n) for n in names):
            raise UnsafePickleError(f"{where}: its {key} entry is not a list of attribute names")
    if state.get("__scipys"):
        raise UnsafePickleError(f"{where}: it stores scipy sparse attributes ({', '.join(state['__scipys'])}), "
                                "which gensim reads back with pickle")
    for name in state.get("__recursive_saveloads", []):
        child = state.get(name)
        if not isinstance(child, keyed_vectors):
            raise UnsafePickleError(f"{where}: attribute {name!r} is set aside for recursive loading "
                                    f"but is a {type(child).__name__}")
        _check_specials(child, f"{where}.{name}", keyed_vectors)


def load_keyed_vectors(path: str):
    """Load a ``.kv`` file saved by ``KeyedVectors.save`` through the restricted unpickler."""
    from gensim.models.keyedvectors import KeyedVectors
    from gensim.utils import SaveLoad

    with open_maybe_compressed(path) as handle:
        obj = RestrictedUnpickler(handle, encoding="latin1").load()  # latin1: as gensim, for Python 2 pickles
    if not isinstance(obj, KeyedVectors):
        raise UnsafePickleError(f"it holds a {type(obj).__name__}, not gensim KeyedVectors")
    _check_specials(obj, "the KeyedVectors object", KeyedVectors)
    compress, subname = SaveLoad._adapt_by_suffix(path)
    obj._load_specials(path, None, compress, subname)  # what SaveLoad.load does after unpickling
    obj.add_lifecycle_event("loaded", fname=path, log_level=False)
    return obj
