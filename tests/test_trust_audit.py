"""The trust policy, proved by audit: hostile files given to every command, each run under strace.

Each case builds what a hostile sender could ship (links, FIFOs, forged records, control
characters, code disguised as data), aims it at a "victim" folder that stands for the user's other
files, and runs the real ``embedx`` commands on it in a child process traced with ``strace -f``.
Whatever the command decides (refuse, or handle), the audit asserts that:

- no path in the victim folder was opened, created, renamed, unlinked or truncated;
- every path touched inside the sandbox lies in the allowed set: the file and its own side paths
  (``FILE.h5*``, ``.FILE.h5.*``, ``FILE.h5.segments/``), the output the user named, the input the
  user gave, and embedx's cache; nothing outside the sandbox was written but /dev/null and the like;
- no process was started but embedx's own interpreter (its time-limited file check);
- the command ended in one line (``error: ...``), not a traceback, and printed no control character;
- the victim folder is byte-for-byte as it was.

What it cannot see: calls through memory mappings made before the trace, and reads of metadata
(``stat``); those change nothing. The fuzz test draws random combinations for a bounded time.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import h5py
import pytest

import embedx
from embedx.plugin_api.audit import SECRET, STRACE, Sandbox

if STRACE is None and os.environ.get("EMBEDX_REQUIRE_STRACE") == "1":
    raise RuntimeError("strace is required for the trust audit (EMBEDX_REQUIRE_STRACE=1): apt-get install strace")
pytestmark = pytest.mark.skipif(STRACE is None, reason="strace is not installed (make test installs it on Debian)")

FUZZ_SECONDS = float(os.environ.get("EMBEDX_FUZZ_SECONDS", "45"))


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path)


def _store_commands(box: Sandbox) -> list[list[str]]:
    store = str(box.store)
    return [["info", store], ["check", store], ["compact", store],
            ["extract", str(box.input), "-e", "hashing-ngrams", "-O", "dim=8", "-o", store, "--no-progress"],
            ["export", store, "-e", "hashing-ngrams", "--input", "t", "-o", str(box.work / "out.npy")]]


def _audit_all(box: Sandbox) -> None:
    allowed = box.allowed(stores=[box.store], outputs=[box.work / "out.npy"], reads=[box.input])
    for args in _store_commands(box):
        box.run(args, allowed)


# -- side paths beside the feature file ----------------------------------------------------------

def test_a_clean_store_passes_the_audit(box):
    """The baseline: a normal file, every command succeeds inside the allowed set."""
    box.build_store()
    allowed = box.allowed(stores=[box.store], outputs=[box.work / "out.npy"], reads=[box.input])
    for args in _store_commands(box):
        audit = box.run(args, allowed)
        assert audit.returncode == 0, audit.stderr
    assert (box.work / "out.npy").exists()


def test_lock_linked_to_another_file(box):
    box.build_store()
    os.symlink(box.victim / "secret.txt", str(box.store) + ".lock")
    _audit_all(box)


def test_segment_folder_linked_to_the_users_folder(box):
    box.build_store()
    segments = Path(str(box.store) + ".segments")
    for file in segments.iterdir():
        os.replace(file, box.victim / file.name)
    segments.rmdir()
    os.symlink(box.victim, segments)
    _audit_all(box)


def test_segment_folder_linked_to_another_stores_segments(box):
    other = box.build_store(box.victim / "theirs.h5")
    box.build_store()
    segments = Path(str(box.store) + ".segments")
    for file in segments.iterdir():
        file.unlink()
    segments.rmdir()
    os.symlink(Path(str(other) + ".segments"), segments)
    _audit_all(box)


def test_quarantine_linked_to_another_folder(box):
    box.build_store()
    segments = Path(str(box.store) + ".segments")
    orphan = _own_name(segments, random.Random(1))  # named as the store names its segments: recovery looks at it
    (box.victim / orphan).write_bytes(b"\x89HDF\r\n\x1a\n" + SECRET)  # what a move would overwrite
    (segments / orphan).write_bytes(b"not hdf5 at all")
    os.symlink(box.victim, str(box.store) + ".quarantine")
    _audit_all(box)


def test_segment_file_linked_outside(box):
    box.build_store()
    segments = Path(str(box.store) + ".segments")
    first = sorted(segments.glob("*.h5"))[0]
    first.unlink()
    os.symlink(box.victim / "model.h5", first)
    _audit_all(box)


def test_retired_list_naming_paths_outside(box):
    box.build_store()
    segments = Path(str(box.store) + ".segments")
    (segments / "retired.json").write_text(json.dumps(
        {"..": 0, "../../victim/notes.h5": 0, str(box.victim / "model.h5"): 0, "../features.h5": 0}))
    _audit_all(box)


def test_planted_temporaries(box):
    box.build_store()
    segments = Path(str(box.store) + ".segments")
    os.symlink(box.victim / "secret.txt", segments / ".seg.tmp-1")
    os.symlink(box.victim, box.work / ".features.h5.tmp-1-abcd")
    _audit_all(box)


def test_fifo_as_the_feature_file(box):
    os.mkfifo(box.store)
    allowed = box.allowed(stores=[box.store], outputs=[box.work / "out.npy"], reads=[box.input])
    for args in _store_commands(box):
        audit = box.run(args, allowed, timeout=60)
        assert audit.returncode == (1 if args[0] == "check" else 2)  # check lists it as a problem
        assert "FIFO" in audit.stdout + audit.stderr or "not a regular file" in audit.stdout + audit.stderr


def test_control_characters_and_markup_in_the_file(box):
    box.build_store()
    with h5py.File(box.store, "r+") as f:  # the index's own attributes, as a sender could set them
        for group in f["sets"].values():
            group.attrs["embedder"] = "glove\x1b]52;c;cm0gLXJmIH4=\x07\x1b]8;;http://evil/\x1b\\[bold red]x[/]"
            group.attrs["updated"] = "\x9b2J\u202etxt.exe"
    box.run(["info", str(box.store)], box.allowed(stores=[box.store]))
    box.run(["check", str(box.store)], box.allowed(stores=[box.store]))


# -- fuzzing: random links, names and sizes ------------------------------------------------------

_SIDE_PATHS = ("lock", "segments", "quarantine", "retired", "segment", "orphan", "temporary")
_KINDS = ("link-file", "link-dir", "dangling", "fifo", "dir", "empty", "garbage", "hardlink")


def _own_name(segments: Path, rng: random.Random) -> str:
    """A segment-file name the store could have written (``set@NAME@LO-HI@ID.h5``), not yet used."""
    names = sorted(p.name for p in segments.glob("set@*.h5")) if segments.is_dir() else []
    set_name = names[0].split("@")[1] if names else "hashing-ngrams--0123456789ab"
    lo = rng.randrange(10**6)
    return f"set@{set_name}@{lo:08d}-{lo + rng.randrange(1, 99):08d}@{rng.randrange(16**8):08x}.h5"


def _plant(box: Sandbox, where: str, kind: str, rng: random.Random) -> None:
    segments = Path(str(box.store) + ".segments")
    files = sorted(segments.glob("*.h5")) if segments.is_dir() and not segments.is_symlink() else []
    path = {"lock": Path(str(box.store) + ".lock"), "segments": segments,
            "quarantine": Path(str(box.store) + ".quarantine"), "retired": segments / "retired.json",
            "segment": files[rng.randrange(len(files))] if files else segments / "x.h5",
            "orphan": segments / _own_name(segments, rng),
            "temporary": segments / f".s.h5.tmp-{rng.randrange(99)}"}[where]
    if path.is_dir() and not path.is_symlink():  # the sender's folder goes where a link may point to it
        os.replace(path, box.victim / f"moved-{rng.randrange(10**9)}-{path.name}")
    elif path.exists() or path.is_symlink():
        path.unlink()
    target_file = box.victim / rng.choice(["secret.txt", "model.h5", "notes.h5"])
    if kind == "link-file":
        os.symlink(target_file, path)
    elif kind == "link-dir":
        os.symlink(box.victim, path)
    elif kind == "dangling":
        os.symlink(box.victim / "nothing-here", path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(rng.randbytes(rng.choice([1, 8, 100, 5000])))
    elif kind == "hardlink":
        os.link(target_file, path)


def test_fuzzed_side_paths(tmp_path):
    """Random plantings for a bounded time (EMBEDX_FUZZ_SECONDS, 45 by default); every run audited."""
    rng = random.Random(int(os.environ.get("EMBEDX_FUZZ_SEED", "0")))
    deadline, runs = time.monotonic() + FUZZ_SECONDS, 0
    while time.monotonic() < deadline or runs < 3:
        box = Sandbox(tmp_path / f"case-{runs}")
        box.build_store()
        plantings = [(rng.choice(_SIDE_PATHS), rng.choice(_KINDS)) for _ in range(rng.randint(1, 3))]
        for where, kind in plantings:
            try:
                _plant(box, where, kind, rng)
            except (NotADirectoryError, FileNotFoundError, FileExistsError):
                pass  # an earlier planting replaced the folder this one would go in: that case is planted already
        args = rng.choice(_store_commands(box))
        allowed = box.allowed(stores=[box.store], outputs=[box.work / "out.npy"], reads=[box.input])
        try:
            box.run(args, allowed, timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"planted {plantings}: {exc}") from None
        runs += 1


# -- a saved head: it names files, options and a feature cache, and may only name them ------------

class _Payload:
    """What a hostile pickle does when loaded: write a file (here into the victim folder)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _trained_head(box: Sandbox) -> Path:
    texts = [f"{word} offer now {i}" for i, word in enumerate(["win", "free", "cash", "prize"] * 6)]
    texts += [f"see you at {i} tomorrow" for i in range(24)]
    labels = ["spam"] * 24 + ["ham"] * 24
    embedx.extract(texts, "hashing-ngrams", box.store, name="t", options={"dim": 64}, columns={"label": labels})
    head = box.work / "head"
    from embedx.heads.training import SplitSpec, train

    train("logreg", box.store, "hashing-ngrams", "label", split=SplitSpec(seed=0), save=head)
    return head


def test_a_head_that_grants_itself_trust_and_names_another_store(box):
    import pickle

    head = _trained_head(box)
    marker = box.victim / "pwned"
    (head / "payload.kv").write_bytes(pickle.dumps(_Payload(str(marker))))
    other = box.build_store(box.victim / "theirs.h5")
    meta = json.loads((head / "head.json").read_text())
    meta["features"] = str(other)
    meta["embedder_config"]["embedder"] = "word-vectors"
    meta["embedder_config"]["options"] = {"model": str(head / "payload.kv"), "trust_pickle": True}
    meta["embedder_config"].setdefault("unkeyed_options", {})["trust_pickle"] = True
    (head / "head.json").write_text(json.dumps(meta))
    box.plugins = "gensim"  # the plugin whose pickle option the head tries to switch on
    allowed = box.allowed(stores=[box.store], reads=[head])
    audit = box.run(["predict", str(head), "--features", str(box.store), "a free prize"], allowed)
    assert audit.returncode == 2 and "trust" in audit.stderr
    assert not marker.exists()


def test_a_head_with_a_bloated_state_file(box):
    import zipfile

    head = _trained_head(box)
    with zipfile.ZipFile(head / "state.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        header = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (400000000,), }"
        archive.writestr("coef.npy", header.ljust(127, b" ") + b"\n" + bytes(1 << 20))
    audit = box.run(["predict", str(head), "a free prize"], box.allowed(stores=[box.store], reads=[head]))
    assert audit.returncode == 2, audit.stderr
