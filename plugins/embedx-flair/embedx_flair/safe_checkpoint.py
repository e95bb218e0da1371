"""Load a flair character-LM ``.pt`` file without letting it run code.

flair itself loads these with ``torch.load(weights_only=False)``: a full pickle, so a hostile
file runs whatever it likes. Here the file must be a torch zip checkpoint and nothing else:
the zip magic at byte 0 (no data before it, so no polyglot whose leading pickle torch would
read instead), the zip's end record at the last byte (nothing appended), exactly one
``data.pkl``. It is then read by torch's own ``weights_only=True`` unpickler with
``flair.data.Dictionary`` as the one extra allowed class, and the model is built from that
plain state as flair's ``LanguageModel.load_language_model`` would.

torch's restricted unpickler predates pickle protocol 4, which ``LanguageModel.save`` writes,
so the pickle is first rewritten to protocol 2 opcode by opcode (frames dropped, short
strings widened, ``STACK_GLOBAL`` turned into ``GLOBAL``, bytes spelled as ``_codecs.encode``,
as protocol 2 does). The rewrite only changes encodings: which objects may be built is
decided by torch's allow-list. torch's legacy (pre-zip) format is refused unless the user
passes ``trust_pickle=true``.

Sizes the file declares are checked against what it stores before anything is allocated:

- every zip member may inflate to at most :data:`MAX_ZIP_EXPANSION` times its compressed size,
  and all members together to at most that many times the archive's size on disk (plus
  :data:`SIZE_SLACK`, so tiny members of zeros pass); torch itself checks that each tensor
  storage the pickle declares is exactly the size of its zip record;
- the model's hyper-parameters (``hidden_size``, ``embedding_size``, ``nlayers``, ``nout``, the
  dictionary) give the shape of every weight the model needs (:func:`expected_shapes`); the
  float32 parameters they add up to may take at most :data:`MAX_PARAMETER_EXPANSION` times the
  bytes of the tensor storages the file holds, then every needed weight must be present with
  exactly that shape, and no other weight may be there (a saved decoder is allowed and dropped).
  Only then is the ``LanguageModel`` built, and its weights are loaded strictly.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import struct
import zipfile
from typing import Any

from embedx.plugin_api import EmbedderUnavailable

ZIP_MAGIC = b"PK\x03\x04"
#: How many times its compressed size a zip member, and all members together the archive's size on
#: disk, may inflate to. torch writes members uncompressed (1x); float weights deflate by ~1.1x.
MAX_ZIP_EXPANSION = 10
#: Bytes any member (and the archive) may inflate to beyond the ratio: small all-zero tensors deflate
#: far better than 10x, and a megabyte never hurts.
SIZE_SLACK = 1 << 20
#: How many times the bytes of the weight storages in the file the model's float32 parameters may
#: take: 1 when every weight is stored as float32, 2 for float16 weights; a stride-0 tensor or
#: hyper-parameters larger than the weights (``hidden_size=8000`` in a 2 KB file) go past it.
MAX_PARAMETER_EXPANSION = 2
#: Gates per recurrent layer type (flair's ``rnn_layers``): rows of weight_ih/weight_hh per hidden unit.
_GATES = {"lstm": 4, "gru": 3}
_END_RECORD = b"PK\x05\x06"
_TRUST = "if you trust this file, pass --option trust_pickle=true (a .pt file is a Python pickle and can run code)"


class UnsafeCheckpoint(Exception):
    """The file is not a plain torch zip checkpoint of a flair language model."""


class OversizedCheckpoint(UnsafeCheckpoint):
    """The file declares more data than it stores (a zip bomb): refused whatever the trust setting."""


def load_language_model(path: str, has_decoder: bool = False, trusted: bool = False) -> Any:
    """A flair ``LanguageModel`` from ``path``, read without executing anything in the file
    (without its decoder unless asked: embeddings never use it, as in ``FlairEmbeddings``).

    ``trusted``: the user vouched for the file (``trust_pickle=true``), so torch unpickles it as
    flair would, legacy format included; its weights are still checked as below.
    """
    if trusted:
        return _build(_load_trusted(path), path, has_decoder)
    try:
        state = load_state(path)
    except OversizedCheckpoint as exc:
        raise EmbedderUnavailable(f"refusing to load {path}: {exc}") from None
    except UnsafeCheckpoint as exc:
        raise EmbedderUnavailable(f"refusing to load {path}: {exc}; {_TRUST}") from None
    return _build(state, path, has_decoder)


def load_state(path: str) -> dict[str, Any]:
    """The saved dict of a flair LM file, through torch's ``weights_only`` unpickler."""
    import torch
    from flair.data import Dictionary

    with open(path, "rb") as handle:
        blob = handle.read()
    if not blob.startswith(ZIP_MAGIC):
        if _is_legacy_torch(blob):
            raise UnsafeCheckpoint("it is in torch's legacy (pre-1.6) format, which is only readable as a full pickle")
        raise UnsafeCheckpoint(f"it does not start with the zip magic {ZIP_MAGIC!r}, so it is not a torch checkpoint")
    _check_zip_bounds(blob)
    _check_zip_sizes(blob)
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
        names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1:
            raise UnsafeCheckpoint(f"it is a zip file with {len(names)} data.pkl entries, not a torch checkpoint")
        rewritten = _rezip(archive, names[0], to_protocol_2(archive.read(names[0])))
    except (zipfile.BadZipFile, ValueError, EOFError, KeyError) as exc:
        raise UnsafeCheckpoint(f"its zip structure is damaged ({exc})") from None
    try:
        with torch.serialization.safe_globals([Dictionary]):
            state = torch.load(io.BytesIO(rewritten), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, TypeError, AttributeError, KeyError, EOFError) as exc:
        raise UnsafeCheckpoint(_reason(exc)) from None
    if not isinstance(state, dict):
        raise UnsafeCheckpoint(f"it holds a {type(state).__name__}, not a flair language model")
    return state


def _load_trusted(path: str) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)  # trust_pickle=true: flair's own call
    except Exception as exc:  # noqa: BLE001 - any failure of a full unpickle is this file's fault
        raise EmbedderUnavailable(f"could not load {path} as a flair language model: {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(state, dict):
        raise EmbedderUnavailable(f"{path} holds a {type(state).__name__}, not a flair language model")
    return state


def _reason(exc: Exception) -> str:
    """The useful part of torch's long weights_only error: the global it refused, or its reason."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it references {found.group(1)}"
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file an issue")
    parts = [p.strip() for p in text.split("\n\n") if p.strip() and not p.strip().startswith(boilerplate)]
    return f"it holds something a flair language model does not ({(parts or [type(exc).__name__])[0][:200]})"


def _is_legacy_torch(blob: bytes) -> bool:
    """torch's old format starts with a pickled magic number (protocol 2: PROTO 2, LONG1 ...)."""
    return blob[:2] == b"\x80\x02"


def _check_zip_bounds(blob: bytes) -> None:
    """The zip must end exactly with its end-of-central-directory record (plus its comment)."""
    end = blob.rfind(_END_RECORD, max(0, len(blob) - 22 - 65535))
    if end < 0 or end + 22 > len(blob):
        raise UnsafeCheckpoint("it has no zip end record")
    comment = struct.unpack("<H", blob[end + 20:end + 22])[0]
    if end + 22 + comment != len(blob):
        raise UnsafeCheckpoint(f"{len(blob) - end - 22 - comment} bytes follow the zip archive")
    archive = zipfile.ZipFile(io.BytesIO(blob))
    offsets = sorted(info.header_offset for info in archive.infolist())
    if not offsets or offsets[0] != 0:
        raise UnsafeCheckpoint("data precedes the first zip entry")


def _check_zip_sizes(blob: bytes) -> None:
    """Every member's declared size is bounded by what the archive stores, before any is inflated.

    zipfile never inflates a member past its declared ``file_size`` (it stops there and fails the
    CRC check), so bounding the declared sizes bounds the memory the members take.
    """
    try:
        members = zipfile.ZipFile(io.BytesIO(blob)).infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise UnsafeCheckpoint(f"its zip structure is damaged ({exc})") from None
    for info in members:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UnsafeCheckpoint(f"its zip member {info.filename} uses compression method {info.compress_type}; "
                                   "torch checkpoints are stored or deflated")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise OversizedCheckpoint(f"its stored zip member {info.filename} declares {info.file_size:,} bytes "
                                      f"but holds {info.compress_size:,}")
        if info.file_size > MAX_ZIP_EXPANSION * info.compress_size + SIZE_SLACK:
            raise OversizedCheckpoint(
                f"its zip member {info.filename} would inflate from {info.compress_size:,} to {info.file_size:,} "
                f"bytes, more than {MAX_ZIP_EXPANSION}x (a zip bomb)")
    total = sum(info.file_size for info in members)
    if total > MAX_ZIP_EXPANSION * len(blob) + SIZE_SLACK:
        raise OversizedCheckpoint(f"its zip members would inflate to {total:,} bytes, more than "
                                  f"{MAX_ZIP_EXPANSION}x the file's {len(blob):,} bytes (a zip bomb)")


def _rezip(archive: zipfile.ZipFile, pickle_name: str, pickle_bytes: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for info in archive.infolist():
            data = pickle_bytes if info.filename == pickle_name else archive.read(info)
            target.writestr(info.filename, data)
    return out.getvalue()


_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
_BYTES = {"SHORT_BINBYTES", "BINBYTES", "BINBYTES8"}
_PUTS = {"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}
# Opcodes torch's weights_only unpickler reads as they are.
_KEEP = {"MARK", "STOP", "BINPERSID", "REDUCE", "BUILD", "NEWOBJ", "APPEND", "APPENDS", "SETITEM", "SETITEMS",
         "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE", "EMPTY_LIST",
         "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT", "LONG1"}


def to_protocol_2(data: bytes) -> bytes:  # noqa: C901 - one opcode table, read top to bottom like the spec
    """Re-encode a protocol-4 pickle with only the opcodes torch's restricted unpickler reads.

    Strings are never memoized in the output (a reference to a memoized string becomes the
    string again), so the two pushes a ``STACK_GLOBAL`` consumes can simply be left out.
    Anything else unusual is refused rather than translated.
    """
    ops = list(pickletools.genops(data))
    strings: dict[int, str] = {}  # memo index -> string value, from the input
    memo: set[int] = set()
    values: list[Any] = []  # per op: the string it pushes, or None
    memo_of: list[int | None] = [None] * len(ops)
    for i, (op, arg, _) in enumerate(ops):
        value = None
        if op.name in _STRINGS:
            value = arg
        elif op.name in _GETS and arg in strings:
            value = strings[arg]
        if op.name in _PUTS:
            index = len(memo) if op.name == "MEMOIZE" else arg  # what pickle's own unpickler does
            memo.add(index)
            memo_of[i] = index
            previous = _previous_push(ops, i)
            if previous is not None and values[previous] is not None:
                strings[index] = values[previous]
        values.append(value)
    dropped: set[int] = set()
    globals_at: dict[int, tuple[str, str]] = {}
    for i, (op, _, _) in enumerate(ops):
        if op.name == "STACK_GLOBAL":
            name_at = _previous_push(ops, i)
            module_at = _previous_push(ops, name_at) if name_at is not None else None
            if module_at is None or values[name_at] is None or values[module_at] is None:
                raise UnsafeCheckpoint("its pickle builds a global from something other than two strings")
            dropped |= {module_at, name_at}
            globals_at[i] = (values[module_at], values[name_at])
    out = io.BytesIO()
    for i, (op, arg, _) in enumerate(ops):
        name = op.name
        if i in dropped or name == "FRAME":
            continue
        if name == "PROTO":
            out.write(b"\x80\x02")
        elif name == "STACK_GLOBAL" or name == "GLOBAL":
            module, attr = globals_at[i] if name == "STACK_GLOBAL" else arg.split(" ", 1)
            if "\n" in module + attr:
                raise UnsafeCheckpoint("its pickle names a global with a line break in it")
            out.write(b"c" + module.encode("utf-8") + b"\n" + attr.encode("utf-8") + b"\n")
        elif values[i] is not None:  # a string, or a reference to a memoized one
            encoded = values[i].encode("utf-8", "surrogatepass")
            out.write(b"X" + struct.pack("<I", len(encoded)) + encoded)
        elif name in _BYTES:
            text = arg.decode("latin-1").encode("utf-8")
            out.write(b"c_codecs\nencode\n" + b"X" + struct.pack("<I", len(text)) + text
                      + b"X\x06\x00\x00\x00latin1" + b"\x86R")
        elif name in _PUTS:
            previous = _previous_push(ops, i)
            if previous is None or values[previous] is None:  # strings are never memoized
                out.write(b"r" + struct.pack("<I", memo_of[i]))
        elif name in _GETS:
            out.write(b"j" + struct.pack("<I", arg))
        elif name in _KEEP:
            out.write(data[ops[i][2]:ops[i + 1][2]] if i + 1 < len(ops) else b".")
        else:
            raise UnsafeCheckpoint(f"its pickle uses the {name} opcode, which a flair language model file does not")
    return out.getvalue()


def _previous_push(ops: list, i: int) -> int | None:
    """The op before ``i`` that pushed a value (skipping memo writes and frames)."""
    j = i - 1
    while j >= 0 and ops[j][0].name in _PUTS | {"FRAME"}:
        j -= 1
    return j if j >= 0 else None


def expected_shapes(vocabulary: int, embedding_size: int, hidden_size: int, nlayers: int, nout: int | None,
                    recurrent_type: str, has_decoder: bool) -> dict[str, tuple[int, ...]]:
    """The name and shape of every weight of flair's ``LanguageModel`` with these hyper-parameters, in
    its ``state_dict`` order (computed, not built: nothing is allocated)."""
    rows = _GATES[recurrent_type.lower()] * hidden_size
    shapes: dict[str, tuple[int, ...]] = {"encoder.weight": (vocabulary, embedding_size)}
    for layer in range(nlayers):
        shapes[f"rnn.weight_ih_l{layer}"] = (rows, embedding_size if layer == 0 else hidden_size)
        shapes[f"rnn.weight_hh_l{layer}"] = (rows, hidden_size)
        shapes[f"rnn.bias_ih_l{layer}"] = (rows,)
        shapes[f"rnn.bias_hh_l{layer}"] = (rows,)
    out = hidden_size
    if nout is not None:
        shapes["proj.weight"], shapes["proj.bias"], out = (nout, hidden_size), (nout,), nout
    if has_decoder:
        shapes["decoder.weight"], shapes["decoder.bias"] = (vocabulary, out), (vocabulary,)
    return shapes


def _size(shape: tuple[int, ...]) -> int:
    count = 1
    for n in shape:
        count *= n
    return count


def _check_hyperparameters(state: dict[str, Any], path: str) -> None:
    """The hyper-parameters flair's constructor reads, with the types and ranges it needs."""
    from flair.data import Dictionary

    checks = {"dictionary": Dictionary, "is_forward_lm": bool, "hidden_size": int, "nlayers": int,
              "embedding_size": int, "nout": (int, type(None)), "dropout": (int, float), "state_dict": dict}
    for key, kind in checks.items():
        if not isinstance(state.get(key), kind):
            raise EmbedderUnavailable(f"{path} is not a flair language model file: {key!r} is missing or "
                                      f"a {type(state.get(key)).__name__}")
    for key in ("hidden_size", "nlayers", "embedding_size", "nout"):
        value = state[key]
        if value is not None and (isinstance(value, bool) or value < 1):
            raise EmbedderUnavailable(f"{path} is not a usable flair language model file: {key}={value!r}")
    if not isinstance(getattr(state["dictionary"], "idx2item", None), list):
        raise EmbedderUnavailable(f"{path} is not a flair language model file: its dictionary has no item list")
    recurrent = state.get("recurrent_type", "lstm")
    if not isinstance(recurrent, str) or recurrent.lower() not in _GATES:
        raise EmbedderUnavailable(f"{path} is not a flair language model file: recurrent_type={recurrent!r} "
                                  f"(flair knows {', '.join(_GATES)})")


def _check_weights(state: dict[str, Any], path: str, has_decoder: bool) -> dict[str, Any]:
    """The state dict the model will load, after checking it holds exactly the weights the declared
    hyper-parameters need, and that they are no larger than what the file stores."""
    import torch

    weights = state["state_dict"]
    saved_decoder = bool(state.get("has_decoder", True))
    shapes = expected_shapes(len(state["dictionary"].idx2item), state["embedding_size"], state["hidden_size"],
                             state["nlayers"], state["nout"], state.get("recurrent_type", "lstm"), has_decoder)
    for name, value in weights.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise EmbedderUnavailable(f"refusing to load {path}: its state_dict entry {name!r} is not a float tensor")
    storages = {}
    for value in weights.values():
        storage = value.untyped_storage()
        storages[storage.data_ptr(), storage.nbytes()] = storage.nbytes()
    stored = sum(storages.values())
    needed = 4 * sum(_size(shape) for shape in shapes.values())
    if needed > MAX_PARAMETER_EXPANSION * stored:
        declared = ", ".join(f"{key}={state[key]}" for key in ("hidden_size", "embedding_size", "nlayers", "nout"))
        raise EmbedderUnavailable(
            f"refusing to load {path}: its hyper-parameters ({declared}, {len(state['dictionary'].idx2item)} "
            f"characters) make a model of {needed:,} bytes, but the file stores only {stored:,} bytes of weights "
            f"(at most {MAX_PARAMETER_EXPANSION}x is allowed)")
    for name, shape in shapes.items():
        if name not in weights:
            raise EmbedderUnavailable(f"refusing to load {path}: its state_dict lacks the weight {name} "
                                      f"{list(shape)} that the model needs")
        if tuple(weights[name].shape) != shape:
            raise EmbedderUnavailable(f"refusing to load {path}: its weight {name} has shape "
                                      f"{list(weights[name].shape)}, the model needs {list(shape)}")
    droppable = {"decoder.weight", "decoder.bias"} if saved_decoder and not has_decoder else set()
    for name in weights:
        if name not in shapes and name not in droppable:
            raise EmbedderUnavailable(f"refusing to load {path}: its state_dict holds the weight {name}, "
                                      "which this flair language model does not have")
    return {name: weights[name] for name in shapes}


def _build(state: dict[str, Any], path: str, has_decoder: bool) -> Any:
    """``LanguageModel.load_language_model`` on an already-loaded, plain state, after checking that the
    state holds every weight its hyper-parameters need and nothing larger than the file stores."""
    import flair
    from flair.models import LanguageModel

    _check_hyperparameters(state, path)
    has_decoder = bool(state.get("has_decoder", True)) and has_decoder
    weights = _check_weights(state, path, has_decoder)
    try:
        model = LanguageModel(dictionary=state["dictionary"], is_forward_lm=state["is_forward_lm"],
                              hidden_size=state["hidden_size"], nlayers=state["nlayers"],
                              embedding_size=state["embedding_size"], nout=state["nout"],
                              document_delimiter=str(state.get("document_delimiter", "\n")),
                              dropout=state["dropout"], recurrent_type=str(state.get("recurrent_type", "lstm")),
                              has_decoder=has_decoder)
        model.load_state_dict(weights, strict=True)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise EmbedderUnavailable(f"{path} is not a readable flair language model file: {exc}") from None
    model.eval()
    model.to(flair.device)  # flair's LanguageModel.to returns nothing
    return model
