"""Vector files that declare more than they hold (issue 22): refused with one line naming the file,
before gensim allocates what the header declares (a count-long list and a count x dim matrix)."""

from __future__ import annotations

import gzip
import re
import shutil
import struct

import pytest
from gensim.test.utils import datapath

from embedx.plugin_api import EmbedderUnavailable, InputError, check_vector_sizes

FT_BIN = datapath("lee_fasttext.bin")


@pytest.fixture
def never_allocated(monkeypatch):
    """Fails the test if gensim builds a KeyedVectors (its constructor allocates the declared matrix)."""
    from gensim.models.keyedvectors import KeyedVectors

    def refuse(self, vector_size, count=0, *args, **kwargs):
        raise AssertionError(f"gensim allocated {count} x {vector_size} vectors")

    monkeypatch.setattr(KeyedVectors, "__init__", refuse)


@pytest.mark.parametrize("name, content", [  # ids by name: gzip bytes hold a time, and every worker must agree
    ("huge.txt", b"1000000000 1000000\nthe 0.1 0.2\n"),
    ("huge.vec", b"1000000000 1000000\nthe 0.1 0.2\n"),
    ("huge.bin", b"1000000000 1000000\nthe " + bytes(8)),
    ("huge.txt.gz", gzip.compress(b"100000 3000\nthe 0.1 0.2\n", mtime=0)),
], ids=["txt", "vec", "bin", "txt.gz"])
def test_a_header_declaring_more_vectors_than_the_file_holds_is_refused(extract, tmp_path, never_allocated, name,
                                                                       content):
    path = tmp_path / name
    path.write_bytes(content)
    escaped = re.escape(name)
    with pytest.raises(EmbedderUnavailable, match=rf"^refusing to read .*{escaped}: its header "
                                                  r"declares [\d,]+ vectors of [\d,]+ dimensions, which take at "
                                                  r"least [\d,]+ bytes, but the file holds \d+$"):
        extract(["the"], model=str(path))


def test_glove_lines_times_the_first_lines_dimension_must_fit_the_file(extract, tmp_path, never_allocated):
    """GloVe has no header: gensim counts the lines and takes the dimension from the first one."""
    path = tmp_path / "glove.txt"
    path.write_bytes(b"the " + b"0 " * 50_000 + b"1\n" + b"a\n" * 200_000)  # 200,001 x 50,001 declared
    with pytest.raises(EmbedderUnavailable, match=r"glove\.txt: its first line has 50,001 values, so its 200,001 "
                                                  r"lines hold at least"):
        extract(["the"], model=str(path))


def test_a_compressed_file_that_inflates_past_the_ratio_is_refused_while_streaming(tmp_path):
    path = tmp_path / "bomb.txt.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"1 3\nthe ")
        for _ in range(150):
            handle.write(bytes(1 << 20))  # 150 MiB of zeros: about 150 KB on disk
    with pytest.raises(InputError, match=r"bomb\.txt\.gz: it inflates to more than [\d,]+ bytes, 100x its [\d,]+ "
                                         r"bytes on disk \(a decompression bomb\)"):
        check_vector_sizes(path, "word2vec-text")


def test_a_fasttext_bin_whose_matrix_is_not_stored_is_refused(extract, tmp_path):
    """Truncated inside its vocabulary (gensim would loop forever on EOF) or inside its matrix."""
    data = open(FT_BIN, "rb").read()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[:200])
    with pytest.raises(EmbedderUnavailable, match=r"cut\.bin: it ends inside its vocabulary"):
        extract(["the"], model=str(cut))
    short = tmp_path / "short.bin"
    short.write_bytes(data[:len(data) // 2])  # the input matrix (words + buckets) is most of the file
    with pytest.raises(EmbedderUnavailable, match=r"short\.bin: its vector matrix is declared [\d,]+ x [\d,]+ "
                                                  r"float32s, which take at least"):
        extract(["the"], model=str(short))
    # a bucket count the matrix does not have (old format: the 7th int32 after dim, ws)
    bucket = tmp_path / "bucket.bin"
    bucket.write_bytes(data[:32] + struct.pack("<i", 2_000_000_000) + data[36:])
    with pytest.raises(InputError, match=r"bucket\.bin: its vector matrix is declared .* but its header needs"):
        check_vector_sizes(bucket, "fasttext-bin")


@pytest.mark.parametrize("name, fmt", [("test_glove.txt", "glove"), ("euclidean_vectors.bin", "word2vec-bin"),
                                       ("lee_fasttext.vec", "word2vec-text"), ("lee_fasttext.bin", "fasttext-bin"),
                                       ("lee_fasttext_new.bin", "fasttext-bin"), ("toy-model.bin", "fasttext-bin")])
def test_real_vector_files_pass(tmp_path, name, fmt):
    check_vector_sizes(datapath(name), fmt)
    compressed = tmp_path / f"{name}.gz"
    with open(datapath(name), "rb") as source, gzip.open(compressed, "wb") as target:
        shutil.copyfileobj(source, target)
    check_vector_sizes(compressed, fmt)
