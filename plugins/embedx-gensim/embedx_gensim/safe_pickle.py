"""Load gensim's native ``.kv`` KeyedVectors files without running arbitrary code.

A ``.kv`` file is a pickle (plus ``.npy`` side files for large arrays), and unpickling an
untrusted pickle can run anything. This unpickler resolves only the gensim KeyedVectors
classes, numpy's array reconstruction and a few harmless builtins; any other global stops
the load *before* it is called. After unpickling it runs the same post-load steps as
``gensim.utils.SaveLoad.load`` (``_load_specials``: side arrays read with ``np.load``, which
refuses pickled object arrays), after checking that those steps will not unpickle anything.

Nothing in the file may make it allocate more than it stores (issue 22): the pickle is read
through :class:`_Bounded`, which refuses a declared length (bytes, strings, frames) longer than
what is left of the file (of a ``.gz``/``.bz2`` file: :data:`MAX_INFLATION` times its size on
disk), so a declared length is never filled; ``bytearray`` is built only from data and numpy's
``_reconstruct`` only with an empty
shape (numpy's own pickles do both; the data comes with ``__setstate__``, which checks its
length); and every side ``.npy`` (in a ``.npz`` for compressed files) must hold the bytes its
header's shape declares, before ``np.load`` allocates that shape.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
import zipfile
from typing import Any

from embedx.plugin_api import open_maybe_compressed, split_suffix

#: How many times its size on disk a compressed ``.kv`` (its pickle, or a ``.npz`` member) may inflate to.
MAX_INFLATION = 100
SIZE_SLACK = 1 << 20

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


def _bytearray(*args: Any) -> bytearray:
    """``bytearray`` as pickles call it (from bytes, or a string and its encoding), never ``bytearray(n)``."""
    if not args or not isinstance(args[0], (bytes, str)) or len(args) > 2:
        raise UnsafePickleError("it calls bytearray with something other than data (bytearray(n) allocates n bytes)")
    return bytearray(*args)


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
    """numpy's ``_reconstruct`` with the empty shape numpy pickles use; the data comes with ``__setstate__``."""
    from numpy._core.multiarray import _reconstruct as numpy_reconstruct

    if not (isinstance(shape, tuple) and len(shape) == 1 and shape[0] == 0) and shape != 0:
        raise UnsafePickleError(f"it reconstructs a numpy array of shape {shape!r} without its data")
    return numpy_reconstruct(subtype, shape, dtype)


_WRAPPED = {("builtins", "bytearray"): _bytearray, ("numpy._core.multiarray", "_reconstruct"): _reconstruct}


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` whose ``find_class`` knows only the allow-list above."""

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED.get((module, name))
        if target is None:
            raise UnsafePickleError(f"it references {module}.{name}, which is not part of a KeyedVectors file")
        if target in _WRAPPED:
            return _WRAPPED[target]
        return getattr(importlib.import_module(target[0]), target[1])


class _Bounded:
    """A binary reader that refuses any read past ``limit`` bytes, before the unpickler allocates for it.

    The unpickler asks for a declared length (``BINUNICODE8``, a frame) before it holds it, and is
    refused here. For counted bytes (``BINBYTES8``) CPython's unpickler first reserves the length
    (address space only: nothing is written until data arrives), then asks, and is refused; a
    length past the machine's memory fails that reservation with ``MemoryError``, also a refusal.
    """

    def __init__(self, handle: Any, limit: int, what: str):
        self.handle, self.left, self.what = handle, limit, what

    def _take(self, n: int) -> None:
        if n > self.left:
            raise UnsafePickleError(f"it declares {n:,} more bytes where {self.what} holds only {self.left:,}")

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.left
        self._take(n)
        data = self.handle.read(n)
        self.left -= len(data)
        return data

    def readline(self, n: int = -1) -> bytes:
        limit = self.left if n is None or n < 0 else min(n, self.left)
        data = self.handle.readline(limit + 1)
        self._take(len(data))
        self.left -= len(data)
        return data


def _budget(path: str) -> tuple[int, str]:
    size = os.path.getsize(path)
    if split_suffix(path)[1]:
        return MAX_INFLATION * size + SIZE_SLACK, f"a compressed file of {size:,} bytes ({MAX_INFLATION}x)"
    return size, "the file"


def _check_npy_header(handle: Any, stored: int, where: str) -> None:
    """The shape an ``.npy`` header declares must fit in the ``stored`` bytes that follow its header."""
    import numpy as np
    from numpy.lib import format as npy

    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    try:
        version = npy.read_magic(handle)
        if version not in readers:
            raise ValueError(f"format version {version} (np.save writes 1.0 or 2.0)")
        shape, _fortran, dtype = readers[version](handle)  # what np.load reads before it allocates
    except (ValueError, OSError, EOFError) as exc:
        raise UnsafePickleError(f"{where} is not a readable .npy file ({exc})") from None
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = stored - handle.tell()
    if needed > held:
        raise UnsafePickleError(f"{where} declares a {shape} {dtype} array of {needed:,} bytes but holds {held:,}")


def _check_side_file(filename: str, compress: bool) -> None:
    """A side array file gensim's ``_load_specials`` will ``np.load``: its declared shape against its bytes."""
    where = f"its side file {os.path.basename(filename)}"
    if not os.path.isfile(filename):
        return  # np.load says so itself
    if not compress:
        with open(filename, "rb") as handle:
            _check_npy_header(handle, os.path.getsize(filename), where)
        return
    size = os.path.getsize(filename)
    try:
        archive = zipfile.ZipFile(filename)
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafePickleError(f"{where} is not a readable .npz file ({exc})") from None
    total = sum(info.file_size for info in members)
    if total > MAX_INFLATION * size + SIZE_SLACK or any(
            info.file_size > MAX_INFLATION * info.compress_size + SIZE_SLACK for info in members):
        raise UnsafePickleError(f"{where} would inflate from {size:,} to {total:,} bytes, more than "
                                f"{MAX_INFLATION}x (a zip bomb)")
    for info in members:
        if info.filename.endswith(".npy"):
            with archive.open(info) as member:
                _check_npy_header(member, info.file_size, f"{where} ({info.filename})")


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


def _check_side_files(obj: Any, fname: str, compress: bool, subname: Any) -> None:
    """Every array file ``_load_specials`` will load, as it names them (recursively)."""
    state = getattr(obj, "__dict__", {})
    for name in state.get("__recursive_saveloads", []):
        _check_side_files(state[name], f"{fname}.{name}", compress, subname)
    for name in state.get("__numpys", []):
        _check_side_file(subname(fname, name), compress)


def load_keyed_vectors(path: str):
    """Load a ``.kv`` file saved by ``KeyedVectors.save`` through the restricted unpickler."""
    from gensim.models.keyedvectors import KeyedVectors
    from gensim.utils import SaveLoad

    limit, what = _budget(path)
    with open_maybe_compressed(path) as handle:
        try:  # latin1: as gensim, for Python 2 pickles
            obj = RestrictedUnpickler(_Bounded(handle, limit, what), encoding="latin1").load()
        except MemoryError:  # a declared length CPython's unpickler reserves before it reads (then refused)
            raise UnsafePickleError(f"it declares an object larger than this machine's memory, where {what} "
                                    f"holds {limit:,} bytes") from None
    if not isinstance(obj, KeyedVectors):
        raise UnsafePickleError(f"it holds a {type(obj).__name__}, not gensim KeyedVectors")
    _check_specials(obj, "the KeyedVectors object", KeyedVectors)
    compress, subname = SaveLoad._adapt_by_suffix(path)
    _check_side_files(obj, path, compress, subname)
    obj._load_specials(path, None, compress, subname)  # what SaveLoad.load does after unpickling
    obj.add_lifecycle_event("loaded", fname=path, log_level=False)
    return obj
