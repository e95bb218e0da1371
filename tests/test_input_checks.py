"""Input checks at read time (issue 10, failures 4 and 9) and the streaming reader API."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embedx.cli import app
from embedx.contract.errors import InputError
from embedx.inputs import InputSpec, is_blank, iter_records, read_records, typed_column


def write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


def test_a_lone_surrogate_in_jsonl_names_the_line_or_is_replaced_or_dropped(tmp_path):
    path = write(tmp_path / "in.jsonl", b'{"text": "fine"}\n{"text": "bad \\ud800 here"}\n')
    with pytest.raises(InputError, match=r"in.jsonl, line 2, field 'text': a lone surrogate U\+D800"):
        read_records(InputSpec(path))
    assert read_records(InputSpec(path, encoding_errors="replace"))[0][1].text == "bad \ufffd here"
    assert read_records(InputSpec(path, encoding_errors="ignore"))[0][1].text == "bad  here"
    pair = write(tmp_path / "pair.jsonl", b'{"text": "\\ud83d\\ude00"}\n')  # a valid pair is one character
    assert read_records(InputSpec(pair))[0][0].text == "\U0001f600"


def test_surrogates_and_nul_in_other_fields_and_field_names_are_caught_too(tmp_path):
    path = write(tmp_path / "in.jsonl", b'{"text": "a", "note": "x\\udfff"}\n')
    with pytest.raises(InputError, match=r"line 1, field 'note': a lone surrogate"):
        read_records(InputSpec(path))
    path = write(tmp_path / "nul.jsonl", b'{"text": "a", "note": "x\\u0000y"}\n')
    with pytest.raises(InputError, match=r"line 1, field 'note': a NUL character"):
        read_records(InputSpec(path))
    path = write(tmp_path / "name.jsonl", b'{"text": "a", "\\ud800": 1}\n')
    with pytest.raises(InputError, match=r"line 1, the name of field"):
        read_records(InputSpec(path))
    records, columns = read_records(InputSpec(path, encoding_errors="replace"))
    assert columns == ["\ufffd"] and records[0].columns == {"\ufffd": 1}


@pytest.mark.parametrize("header, match", [
    (b"text,a b,a_b\n", r"column 'a_b' and 'a b' are both stored as 'a_b'"),
    (b"text,x,x\n", r"column 'x' appears twice"),
    (b"text,,\n", r"are both stored as 'unnamed'|appears twice"),
])
def test_columns_that_collide_once_stored_are_refused_naming_both(tmp_path, header, match):
    path = write(tmp_path / "in.csv", header + b"hello,1,2\n")
    with pytest.raises(InputError, match=match):
        read_records(InputSpec(path))


def test_jsonl_fields_that_collide_are_refused(tmp_path):
    path = write(tmp_path / "in.jsonl", b'{"text": "a", "a b": 1}\n{"text": "b", "a_b": 2}\n')
    with pytest.raises(InputError, match="both stored as 'a_b'"):
        read_records(InputSpec(path))


@pytest.mark.parametrize("text", ["\u200b", "\ufeff", "\u2060", " \u200e\u200f ", "\u00a0\u3000", "\u2028", ""])
def test_zero_width_and_format_characters_only_count_as_empty(text):
    assert is_blank(text)


@pytest.mark.parametrize("text", ["a\u200b", "\u0301", "\u00ad x"])
def test_text_with_something_visible_is_not_empty(text):
    assert not is_blank(text)


def test_a_line_of_only_u200b_is_flagged_empty(tmp_path):
    path = write(tmp_path / "in.txt", "one\n\u200b\n\ufeff\u2060\n".encode())
    assert [r.empty for r in read_records(InputSpec(path))[0]] == [False, True, True]


@pytest.mark.parametrize("values, expected", [
    (["007", "8"], None), (["7", "8"], [7, 8]), ([1, 2], [1, 2]), (["-0"], None), (["+7"], None),
    ([" 7"], None), (["1.5", "0.25"], [1.5, 0.25]), (["1", "0.5"], None), (["1e5"], None), (["nan"], None),
    ([True, False], None), (["9223372036854775808"], None), ([1, 0.5], None), ([0.5, 1.5], [0.5, 1.5]),
    ([None, "1"], None), (["\u0663"], None),
])
def test_columns_are_typed_only_when_every_value_round_trips(values, expected):
    typed = typed_column(values)
    if expected is None:
        assert typed is None
    else:
        assert typed.tolist() == expected and typed.dtype in (np.int64, np.float64)
        for given, stored in zip(values, typed.tolist(), strict=True):  # reads back as written
            assert repr(stored) == given if isinstance(given, str) else stored == given


def test_iter_records_knows_the_columns_first_and_reads_lazily(tmp_path):
    path = write(tmp_path / "in.csv", b"text,label\nok,1\nfine,2\nbroken\n")
    with iter_records(InputSpec(path)) as stream:
        assert stream.columns == ["label"]
        first = next(stream)
        assert (first.text, first.line, first.columns) == ("ok", 2, {"label": "1"})
        assert next(stream).text == "fine"
        with pytest.raises(InputError, match="line 4: 1 fields"):
            next(stream)


def test_iter_records_on_jsonl_lists_every_field_before_the_first_record(tmp_path):
    lines = [{"text": "a", "x": 1}, {"text": "b", "y": [1]}, {"text": "c", "x": 2, "z": None}]
    path = write(tmp_path / "in.jsonl", "".join(json.dumps(o) + "\n" for o in lines).encode())
    with iter_records(InputSpec(path)) as stream:
        assert stream.columns == ["x", "y", "z"]
        assert [r.columns for r in stream] == [{"x": 1}, {"y": "[1]"}, {"x": 2, "z": None}]


class _Pipe(io.RawIOBase):
    """A stdin that cannot seek, like a real pipe."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def test_jsonl_from_a_pipe_is_spooled_so_columns_are_known(monkeypatch):
    data = b'{"text": "a", "k": "v"}\n{"text": "b", "m": 3}\n'
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BufferedReader(_Pipe(data))))
    records, columns = read_records(InputSpec("-", format="jsonl"))
    assert columns == ["k", "m"] and [r.text for r in records] == ["a", "b"]


def test_a_bad_row_is_refused_before_staging_so_the_file_is_never_stuck(tmp_path):
    """The issue's stuck states: a lone surrogate or colliding columns failed at commit, forever."""
    out = tmp_path / "f.h5"
    bad = write(tmp_path / "bad.jsonl", b'{"text": "ok"}\n{"text": "\\ud800"}\n')
    collide = write(tmp_path / "collide.csv", b"text,a b,a_b\nhi,1,2\n")
    good = write(tmp_path / "good.txt", b"a fine text\n")
    runner = CliRunner()
    for path, match in ((bad, "line 2"), (collide, "both stored as 'a_b'")):
        result = runner.invoke(app, ["extract", path, "-e", "hashing-ngrams", "-o", str(out), "--no-progress"])
        assert result.exit_code == 2 and match in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["extract", good, "-e", "hashing-ngrams", "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    replaced = runner.invoke(app, ["extract", bad, "-e", "hashing-ngrams", "-o", str(out), "--no-progress",
                                   "--encoding-errors", "replace"])
    assert replaced.exit_code == 0, replaced.output


def test_end_to_end_u200b_is_flagged_empty_and_007_stays_text(tmp_path):
    """Issue 10, failure 9: through `embedx extract` into the file, as a user would see it."""
    import embedx

    source = write(tmp_path / "in.csv", "text,code,n\nhello,007,1\n\u200b,8,2\n".encode())
    out = tmp_path / "f.h5"
    result = CliRunner().invoke(app, ["extract", source, "-e", "hashing-ngrams", "-O", "dim=8", "-o", str(out),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    with embedx.open_store(out) as store:
        table = store.input("in")
        assert table.empty.tolist() == [False, True]
        assert table.column("code").tolist() == ["007", "8"]
        assert table.column("n").tolist() == [1, 2]
