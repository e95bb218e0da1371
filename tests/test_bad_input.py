"""Every kind of bad input gets a clear error naming what is at fault, and loses nothing."""

from __future__ import annotations

import json

import pytest

import embedx
from embedx.contract.errors import EmbedderOutputError, InputError
from embedx.inputs import InputSpec, read_records
from embedx.pipeline.extraction import ExtractSettings, extract_file
from fakes import WordStats


def write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


def test_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path / "in.txt", b"fine\nalso fine\nbad \xff\xfe here\n")
    with pytest.raises(InputError, match=r"in.txt, line 3: invalid UTF-8 at byte 4"):
        read_records(InputSpec(path))
    records, _ = read_records(InputSpec(path, encoding_errors="replace"))
    assert records[2].text == "bad \ufffd\ufffd here"
    records, _ = read_records(InputSpec(path, encoding_errors="ignore"))
    assert records[2].text == "bad  here"


def test_nul_bytes_are_refused_unless_replaced(tmp_path):
    path = write(tmp_path / "in.txt", b"ok\nnul\x00inside\n")
    with pytest.raises(InputError, match="line 2: NUL byte"):
        read_records(InputSpec(path))
    assert read_records(InputSpec(path, encoding_errors="replace"))[0][1].text == "nul\ufffdinside"


def test_crlf_and_bom_are_not_part_of_the_text(tmp_path):
    path = write(tmp_path / "in.txt", b"\xef\xbb\xbfone\r\ntwo\r\n")
    assert [r.text for r in read_records(InputSpec(path))[0]] == ["one", "two"]


def test_empty_lines_are_kept_flagged_skipped_or_refused(registry, tmp_path, store_path):
    path = write(tmp_path / "in.txt", b"a b\n\n   \nc\n")
    report = extract_file(InputSpec(path), ExtractSettings("word-stats", store_path))
    assert (report.rows, report.empty) == (4, 2)
    with embedx.open_store(store_path) as store:
        assert store.input("in").empty.tolist() == [False, True, True, False]
        assert store.feature_set("word-stats").vectors(input="in")[1].tolist() == [0, 0, 0, 1]
    skipped = extract_file(InputSpec(path), ExtractSettings("word-stats", store_path, empty="skip"), name="s")
    assert (skipped.rows, skipped.skipped_empty) == (2, 2)
    with pytest.raises(InputError, match="in.txt, line 2: empty or whitespace-only"):
        extract_file(InputSpec(path), ExtractSettings("word-stats", store_path, empty="error"))


def test_a_huge_line_is_embedded_with_its_truncation_counted(registry, tmp_path, store_path):
    huge = ("word " * 1_000_000).encode()
    path = write(tmp_path / "in.txt", b"short\n" + huge + b"\n")
    report = extract_file(InputSpec(path), ExtractSettings("word-stats", store_path, max_length=512))
    assert report.truncated_input == 1
    with embedx.open_store(store_path) as store:
        assert store.feature_set("word-stats").truncated(input="in").tolist() == [0, 1_000_000 - 512]
        assert store.input("in").texts[1] == huge.decode()


def test_missing_csv_column_lists_the_columns(tmp_path):
    path = write(tmp_path / "in.csv", b"id,body\n1,hello\n")
    with pytest.raises(InputError, match=r"in.csv: no column 'text' \(columns: id, body\)"):
        read_records(InputSpec(path))
    records, columns = read_records(InputSpec(path, text_field="body"))
    assert records[0].text == "hello" and records[0].columns == {"id": "1"} and columns == ["id"]


def test_csv_rows_with_the_wrong_field_count_name_the_line(tmp_path):
    path = write(tmp_path / "in.csv", b'text,label\n"multi\nline",1\nbroken\n')
    with pytest.raises(InputError, match="in.csv, line 4: 1 fields, but the header has 2"):
        read_records(InputSpec(path))


def test_tsv_keeps_multiline_quoted_text_and_other_columns(tmp_path):
    path = write(tmp_path / "in.tsv", b'id\ttext\tlabel\n7\t"two\nlines"\tpos\n8\tplain\tneg\n')
    records, columns = read_records(InputSpec(path))
    assert [r.text for r in records] == ["two\nlines", "plain"]
    assert [r.line for r in records] == [2, 4] and columns == ["id", "label"]


def test_jsonl_errors_name_the_line(tmp_path):
    good = json.dumps({"text": "hi", "label": 1, "tags": ["a"]})
    path = write(tmp_path / "in.jsonl", (good + "\n\n" + json.dumps({"body": "x"}) + "\n").encode())
    with pytest.raises(InputError, match=r"in.jsonl, line 3: no field 'text' \(fields: body\)"):
        read_records(InputSpec(path))
    path = write(tmp_path / "bad.jsonl", b'{"text": "a"}\n{"text": oops}\n')
    with pytest.raises(InputError, match="bad.jsonl, line 2: invalid JSON"):
        read_records(InputSpec(path))
    path = write(tmp_path / "num.jsonl", b'{"text": 5}\n')
    with pytest.raises(InputError, match="line 1: field 'text' is int, expected a string"):
        read_records(InputSpec(path))


def test_jsonl_keeps_other_fields_as_columns(tmp_path):
    lines = [json.dumps({"text": "hi", "label": 1, "tags": ["a"]}), json.dumps({"text": "yo", "label": 0})]
    path = write(tmp_path / "in.jsonl", ("\n".join(lines) + "\n").encode())
    records, columns = read_records(InputSpec(path))
    assert columns == ["label", "tags"] and records[0].columns["tags"] == '["a"]'


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot tell the format"):
        read_records(InputSpec(write(tmp_path / "in.xyz", b"a\n")))
    with pytest.raises(InputError, match="no such input file"):
        read_records(InputSpec(str(tmp_path / "absent.txt")))


@pytest.mark.parametrize("bad, message", [
    ("nan", "output 'doc' contains NaN or infinity"),
    ("shape", "output 'doc' has dim 3, expected 4"),
    ("rows", r"output 'doc' has shape \[3, 4\], expected \[4, dim\]"),
    ("int", "output 'doc' has dtype int64; embedders must return floats"),
])
def test_a_bad_batch_stops_the_run_names_plugin_and_batch_and_keeps_earlier_batches(registry, store_path, bad, message):
    texts = [f"text number {i}" for i in range(8)] + ["POISON pill x"] + [f"t {i}" for i in range(3)]
    with pytest.raises(EmbedderOutputError, match=rf"'word-stats' \(plugin 'fakes'\), batch \d .*{message}") as info:
        embedx.extract(texts, "word-stats", store_path, options={"bad": bad}, batch_size=4)
    assert "nothing from this batch was saved" in str(info.value)
    assert "input lines" in str(info.value)
    with embedx.open_store(store_path) as store:
        stored = len(store.feature_set("word-stats"))
    poisoned_batch = next(i for i, b in enumerate(WordStats.calls) if any("POISON" in t for t in b))
    assert stored == 4 * poisoned_batch  # the batches before it, and nothing of it
    WordStats.calls.clear()
    report = embedx.extract([t for t in texts if "POISON" not in t], "word-stats", store_path,
                            options={"bad": bad}, batch_size=4)
    assert report.cached == stored and report.computed == len(texts) - 1 - stored


def test_an_embedder_that_raises_is_named_with_the_lines_of_the_batch(registry, store_path):
    with pytest.raises(EmbedderOutputError, match=r"'word-stats' \(plugin 'fakes'\) raised on batch 1 \(2 texts, input "
                                                  r"lines 1, 2 of <python>\): "
                                                  r"RuntimeError: cannot embed 'boom'"):
        embedx.extract(["fine", "boom here"], "word-stats", store_path, options={"fail_on": "boom"})
    assert not store_path.exists()  # the only batch failed: nothing to commit


def test_wrong_python_types_are_refused(registry, store_path):
    with pytest.raises(TypeError):
        embedx.extract("just one string", "word-stats", store_path)
    with pytest.raises(InputError, match="text 1 is int"):
        embedx.extract(["a", 3], "word-stats", store_path)
    with pytest.raises(InputError, match="column 'label' has 1 values for 2 texts"):
        embedx.extract(["a", "b"], "word-stats", store_path, columns={"label": [1]})
    assert not store_path.exists()
