"""Fuzzing within a fixed budget (issue 10): seeded, so a failure replays with its seed and case.

* Feature files: byte flips, truncations, zeroed and spliced blocks, attribute and structure
  edits of a valid file, through ``info``, ``export`` and ``extract`` (in a child process, so a
  libhdf5 crash or hang is caught and named, not fatal to the suite).
* Input readers: random bytes and random Unicode (lone surrogates, NUL, bidi controls,
  zero-width and format characters, odd line breaks) through the txt, csv, tsv and jsonl
  readers under every ``--encoding-errors`` mode, and a sample of them through ``extract``.

Budgets (seconds) are set by ``EMBEDX_FUZZ_SECONDS`` (default 35 for files, a third of it for
inputs); the number of cases run is printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedx.cli import app
from embedx.contract.errors import InputError
from embedx.inputs import InputSpec, read_records
from embedx.store.layout import safe_name

HERE = Path(__file__).parent
SEED = int(os.environ.get("EMBEDX_FUZZ_SEED", "20261201"))
FILE_SECONDS = float(os.environ.get("EMBEDX_FUZZ_SECONDS", "35"))
INPUT_SECONDS = FILE_SECONDS / 3

ODD = ["\ud800", "\udfff", "\x00", "\u202e", "\u2066", "\u2069", "\u200e", "\u200f", "\u200b", "\u200c", "\u200d",
       "\u2060", "\ufeff", "\u0301", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\r", "\t", "\"", ",", "\\", "\ufffd",
       "\U0001f600", "\u00e9", "e\u0301", " ", "\u00a0", "\u3000", "a", "b", "\n"]


def test_mutated_feature_files_end_in_correct_data_or_a_clear_error(tmp_path):
    # A file that makes libhdf5 loop is refused after EMBEDX_VERIFY_TIMEOUT s; 2 s keeps such cases cheap here.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
               EMBEDX_VERIFY_TIMEOUT="2")
    started = time.monotonic()
    try:
        child = subprocess.run([sys.executable, str(HERE / "fuzz_cases.py"), str(tmp_path), str(SEED),
                                str(FILE_SECONDS), "2000"], env=env, capture_output=True, text=True,
                               timeout=FILE_SECONDS + 60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"fuzzing hung at {(tmp_path / 'progress').read_text()}")
    where = (tmp_path / "progress").read_text() if (tmp_path / "progress").exists() else "setup"
    assert child.returncode == 0, f"the fuzz process died (rc {child.returncode}) at {where}: {child.stderr[-2000:]}"
    summary = json.loads((tmp_path / "summary.json").read_text())
    print(f"\nfeature-file fuzzing: {json.dumps({k: v for k, v in summary.items() if k != 'failures'})} "
          f"in {time.monotonic() - started:.1f} s")
    assert not summary["failures"], "\n".join(summary["failures"][:10])
    assert summary["cases"] >= 10 and summary["refused"] > 0 and summary["accepted"] > 0


def _random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ODD) if rng.random() < 0.5 else chr(rng.randrange(0x20, 0x3000)) for _ in range(n))


def _json_escape_soup(rng: random.Random) -> str:
    """JSON text whose strings hold escapes json.dumps would never write (lone surrogates, NUL)."""
    def string() -> str:
        parts = [rng.choice(["\\ud800", "\\udc00", "\\u0000", "\\u202e", "\\u200b", "\\ufeff", "a", "\\\"", "\\n"])
                 for _ in range(rng.randint(0, 4))]
        return '"' + "".join(parts) + json.dumps(_random_text(rng, 3))[1:-1] + '"'
    fields = {"text": string()} if rng.random() < 0.9 else {}
    for _ in range(rng.randint(0, 3)):
        fields[string()] = rng.choice([string(), "1", "007", "[1, 2]", "null", "1.5", "true"])
    return "{" + ", ".join(f"{k if k.startswith(chr(34)) else json.dumps(k)}: {v}" for k, v in fields.items()) + "}"


def _fuzzed_input(rng: random.Random, fmt: str) -> bytes:
    kind = rng.random()
    if kind < 0.25:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    lines = []
    for _ in range(rng.randint(0, 6)):
        if fmt == "jsonl":
            lines.append(_json_escape_soup(rng) if rng.random() < 0.7 else json.dumps({"text": _random_text(rng, 6)}))
        elif fmt in ("csv", "tsv"):
            sep = "," if fmt == "csv" else "\t"
            lines.append(sep.join(_random_text(rng, rng.randint(0, 4)) for _ in range(3)))
        else:
            lines.append(_random_text(rng, rng.randint(0, 12)))
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        header = sep.join(["text", rng.choice(["a b", "a_b", "label", "", "x"]), rng.choice(["a_b", "n", "", "x"])])
        lines.insert(0, header)
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if rng.random() < 0.3:  # raw invalid UTF-8: a CESU-encoded surrogate, a lone continuation byte, NUL
        at = rng.randint(0, len(data))
        data = data[:at] + rng.choice([b"\xed\xa0\x80", b"\x80", b"\x00", b"\xff", b"\xc3"]) + data[at:]
    return data


def _storable(records, columns) -> None:
    """What the read accepted must be writable: UTF-8 without NUL, distinct stored column names."""
    assert len({safe_name(c) for c in columns}) == len(columns)
    for record in records:
        record.text.encode("utf-8")
        assert "\x00" not in record.text
        for name, value in record.columns.items():
            name.encode("utf-8")
            if isinstance(value, str):
                value.encode("utf-8")
                assert "\x00" not in value


def test_random_bytes_and_unicode_through_every_reader(tmp_path, registry):
    rng = random.Random(SEED)
    runner = CliRunner()
    counts = {"cases": 0, "read": 0, "refused": 0, "extracted": 0, "extract_refused": 0}
    started = time.monotonic()
    while time.monotonic() - started < INPUT_SECONDS and counts["cases"] < 5000:
        case = counts["cases"]
        fmt = ("txt", "csv", "tsv", "jsonl")[case % 4]
        path = tmp_path / f"in{case}.{fmt}"
        path.write_bytes(_fuzzed_input(rng, fmt))
        for errors in ("strict", "replace", "ignore"):
            try:
                records, columns = read_records(InputSpec(str(path), encoding_errors=errors))
            except InputError as exc:
                assert str(path) in str(exc)  # the error names the file (and line)
                counts["refused"] += 1
                continue
            counts["read"] += 1
            _storable(records, columns)
        if case % 10 == 0:  # end to end: the commit must never be what fails
            out = tmp_path / f"f{case}.h5"
            result = runner.invoke(app, ["extract", str(path), "-e", "hashing-ngrams", "-O", "dim=8", "-o", str(out),
                                         "--no-progress", "--encoding-errors", rng.choice(["strict", "replace"])])
            assert result.exception is None or isinstance(result.exception, SystemExit), (case, result.output)
            assert result.exit_code in (0, 2) and "Traceback" not in result.output, (case, result.output)
            counts["extracted" if result.exit_code == 0 else "extract_refused"] += 1
        counts["cases"] += 1
    print(f"\ninput fuzzing: {counts} in {time.monotonic() - started:.1f} s")
    assert counts["cases"] >= 40 and counts["read"] > 0 and counts["refused"] > 0 and counts["extracted"] > 0
