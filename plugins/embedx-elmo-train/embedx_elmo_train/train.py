"""Train the ELMo-architecture biLM of :mod:`.elmo_model` on a streamed corpus, resumably.

A training folder holds:

- ``settings.json``: the model sizes, the training settings and the corpus sources (a second run
  with the same settings resumes; other settings are refused unless ``overwrite``);
- ``vocab.txt`` (one word per line, id = line number), ``heldout.txt`` (the held-out sequences,
  tokens separated by spaces), ``corpus.json`` (what the counting pass found);
- ``checkpoints/``: TensorFlow checkpoints of the model, the optimizer and the step, plus
  ``state.json`` naming the checkpoint it belongs to (epoch, batches done, tokens seen, loss curve);
- ``report.json``: perplexity before and after, cost, parameter counts.

Checkpoints are written every ``checkpoint_seconds``, at the end, and when the run is interrupted
(Ctrl-C or SIGTERM): a resumed run restores the newest one, regenerates the epoch's batch order from the
seed and skips the batches already trained, so an interrupted run ends where an uninterrupted one
would, up to the random draws of dropout and the sampler.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from embedx.plugin_api import EmbedxError, OptionError
from embedx_elmo_train.model import SPECIALS, BiLM, BiLMConfig
from embedx_elmo_train.sequences import Batch, Vocabulary, batches, make_batch, summarize
from embedx_tfhub.corpus import Corpus

FORMAT = "embedx-elmo-bilm"
#: Settings a resumed run may change: how long to train and how often to checkpoint.
EXTENSIBLE = ("epochs", "max_train_tokens", "checkpoint_seconds")
OWN_FILES = ("settings.json", "vocab.txt", "heldout.txt", "corpus.json", "report.json", "checkpoints")


class ElmoTrainingError(EmbedxError):
    """A training folder that cannot be used as asked."""


@dataclass(frozen=True)
class TrainSettings:
    """How to read the corpus and how long to train."""

    sequence_tokens: int = 30  # tokens per training sequence (longer documents are cut)
    batch_size: int = 64
    epochs: int = 1
    max_train_tokens: int = 1_200_000  # stop after this many training tokens (0: no limit)
    learning_rate: float = 5e-4  # Adam; at 2e-3 word_emb grows 5x in 20 steps and saturates the LSTM gates
    clip_norm: float = 5.0
    heldout: int = 1000  # held-out sequences for perplexity
    min_count: int = 3
    max_vocab: int = 20_000
    seed: int = 0
    checkpoint_seconds: float = 120.0

    def __post_init__(self) -> None:
        positive = ("sequence_tokens", "batch_size", "epochs", "min_count")
        bad = [n for n in positive if getattr(self, n) < 1]
        if bad or self.learning_rate <= 0 or self.clip_norm <= 0 or self.heldout < 1 or self.max_train_tokens < 0 \
                or self.max_vocab < 0:
            raise OptionError(f"training settings: {', '.join(bad) or 'learning_rate, clip_norm, heldout'} "
                              "out of range "
                              "(counts at least 1, learning rate and clip norm positive, max_train_tokens >= 0)")


@dataclass
class TrainResult:
    out: Path
    report: dict[str, Any]


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ElmoTrainingError(f"{path} cannot be read ({exc}); pass --overwrite to start afresh") from None


def load_trained(out: str | os.PathLike[str]) -> tuple[BiLM, Vocabulary, dict[str, Any]]:
    """The model of a training folder with its newest checkpoint restored, its vocabulary and settings."""
    from embedx_tfhub._tf import tensorflow

    tf = tensorflow()
    folder = Path(out)
    if not (folder / "settings.json").is_file():
        raise ElmoTrainingError(f"{folder} is not an `embedx elmo train` folder (no settings.json)")
    settings = _read_json(folder / "settings.json")
    if settings.get("format") != FORMAT:
        raise ElmoTrainingError(f"{folder}/settings.json is not an embedx biLM training record")
    vocab = Vocabulary((folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1])
    model = BiLM(BiLMConfig.from_json(settings["model"]))
    latest = tf.train.latest_checkpoint(str(folder / "checkpoints"))
    if latest is None:
        raise ElmoTrainingError(f"{folder} has no checkpoint yet: train first")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return model, vocab, settings


class _Trainer:
    def __init__(self, model: BiLM, settings: TrainSettings):
        from embedx_tfhub._tf import keras, tensorflow

        tf = self.tf = tensorflow()
        self.model = model
        self.optimizer = keras().optimizers.Adam(settings.learning_rate)
        self.step = tf.Variable(0, dtype=tf.int64, name="step")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=self.optimizer, step=self.step)
        variables = model.trainable_variables
        clip = settings.clip_norm
        specs = [tf.TensorSpec([None, None], tf.string), tf.TensorSpec([None], tf.int32),
                 tf.TensorSpec([None, None], tf.int32)]

        @tf.function(input_signature=specs)
        def train_step(tokens, lengths, targets):
            with tf.GradientTape() as tape:
                loss, _ = model.loss(tokens, lengths, targets, training=True)
            grads = tape.gradient(loss, variables)
            grads, _ = tf.clip_by_global_norm(grads, clip)
            self.optimizer.apply_gradients(zip(grads, variables, strict=True))
            self.step.assign_add(1)
            return loss

        @tf.function(input_signature=specs)
        def nll(tokens, lengths, targets):
            return model.nll_sums(tokens, lengths, targets)

        @tf.function(input_signature=specs[:2])
        def spread(tokens, lengths):
            out = model.features(tokens, lengths)
            mask = tf.sequence_mask(lengths, tf.shape(tokens)[1])
            return {name: tf.reduce_mean(tf.math.reduce_std(tf.boolean_mask(value, mask), axis=0))
                    for name, value in out.items()}

        self.train_step, self.nll, self._spread = train_step, nll, spread

    def run(self, batch: Batch) -> float:
        tf = self.tf
        return float(self.train_step(tf.constant(batch.tokens.astype(str)), tf.constant(batch.lengths),
                                     tf.constant(batch.targets)))

    def perplexity(self, heldout: list[list[str]], vocab: Vocabulary, batch_size: int = 64) -> dict[str, float]:
        return perplexity(self.nll, heldout, vocab, batch_size)

    def spread(self, heldout: list[list[str]], vocab: Vocabulary, rows: int = 256) -> dict[str, float]:
        """Per layer, the standard deviation of each feature over held-out tokens, averaged over features.

        A layer whose spread falls far below its value at initialisation has collapsed (saturated
        LSTM gates give every token the same vector): perplexity alone does not show it.
        """
        b = make_batch(sorted(heldout, key=len)[-rows:], vocab)
        out = self._spread(self.tf.constant(b.tokens.astype(str)), self.tf.constant(b.lengths))
        return {name: float(value) for name, value in out.items()}


def perplexity(nll: Callable, heldout: list[list[str]], vocab: Vocabulary, batch_size: int = 64) -> dict[str, float]:
    """Full-softmax perplexity of both directions on ``heldout`` (every token and ``</S>`` / ``<S>`` predicted)."""
    from embedx_tfhub._tf import tensorflow

    tf = tensorflow()
    ordered = sorted(heldout, key=len)
    forward = backward = 0.0
    count = 0
    for start in range(0, len(ordered), batch_size):
        b = make_batch(ordered[start:start + batch_size], vocab)
        f, bw, n = nll(tf.constant(b.tokens.astype(str)), tf.constant(b.lengths), tf.constant(b.targets))
        forward, backward, count = forward + float(f), backward + float(bw), count + int(n)
    if not count:
        raise ElmoTrainingError("no held-out text to measure perplexity on")
    pf, pb = math.exp(forward / count), math.exp(backward / count)
    return {"forward": pf, "backward": pb, "mean": (pf + pb) / 2, "predictions": count}


def train_bilm(corpus: Corpus, out: str | os.PathLike[str], model_sizes: dict[str, Any] | None = None,
               settings: TrainSettings | None = None, overwrite: bool = False,
               log: Callable[[str], None] = lambda text: None, progress: bool = False) -> TrainResult:
    """Count, hold out, train and measure; resume when ``out`` holds an unfinished run with the same settings."""
    from embedx_tfhub._tf import tensorflow

    tf = tensorflow()
    settings = settings or TrainSettings()
    sizes = dict(model_sizes or {})
    folder = Path(out)
    record, comparable = _settings_record(corpus, sizes, settings)
    resuming = _prepare_folder(folder, comparable, settings, overwrite)
    tf.random.set_seed(settings.seed)
    started = time.perf_counter()
    prepared = _resume_corpus(folder) if resuming else _count_corpus(corpus, folder, record, sizes, settings, log)
    run = _Run(corpus, folder, prepared, settings, log)
    run.restore(resuming)
    run.measure_before()
    run.train(progress)
    report = run.finish(started)
    return TrainResult(folder, report)


def _comparable(record: dict[str, Any], seed: int) -> dict[str, Any]:
    """What must match for a run to resume another: corpus, model sizes, settings other than :data:`EXTENSIBLE`."""
    comparable = json.loads(json.dumps({k: record.get(k) for k in ("corpus", "training", "model_sizes")}))
    try:  # sizes given explicitly or left at their defaults are the same model
        comparable["model_sizes"] = _resolved_sizes(comparable["model_sizes"] or {}, seed)
    except (TypeError, ValueError):
        pass
    if comparable.get("training"):
        comparable["training"] = {k: v for k, v in comparable["training"].items() if k not in EXTENSIBLE}
    return comparable


def _settings_record(corpus: Corpus, sizes: dict[str, Any], settings: TrainSettings) -> tuple[dict, dict]:
    """``settings.json``'s content (less the model) and the part of it a resumed run must match."""
    record = {"format": FORMAT, "corpus": {"sources": list(corpus.sources), "texts": len(corpus.texts),
                                           "encoding_errors": corpus.encoding_errors},
              "training": asdict(settings), "model_sizes": _resolved_sizes(sizes, settings.seed)}
    return record, _comparable(record, settings.seed)


def _prepare_folder(folder: Path, comparable: dict[str, Any], settings: TrainSettings, overwrite: bool) -> bool:
    """Check ``folder`` can hold this run (clearing an earlier one with ``overwrite``); ``True`` to resume."""
    resuming = False
    if folder.exists() and (folder / "settings.json").exists() and not overwrite:
        if _comparable(_read_json(folder / "settings.json"), settings.seed) != comparable:
            raise ElmoTrainingError(f"{folder} holds a run with other settings or corpus; pass --overwrite "
                                    "to replace it "
                                    "or choose another --out")
        resuming = True
    elif folder.exists() and folder.is_file():
        raise ElmoTrainingError(f"--out {folder} is a file")
    elif folder.exists() and any(folder.iterdir()):
        foreign = [p.name for p in folder.iterdir() if p.name not in OWN_FILES and p.name != "module"]
        if foreign:
            raise ElmoTrainingError(f"{folder} holds other files ({', '.join(sorted(foreign)[:3])}); choose an empty "
                                    "or new folder")
        if not overwrite and (folder / "checkpoints").exists():
            raise ElmoTrainingError(f"{folder} holds checkpoints without settings.json; pass --overwrite")
    if overwrite:
        for name in OWN_FILES:
            target = folder / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    return resuming


@dataclass
class _Prepared:
    """The counting pass's results: corpus summary, vocabulary, held-out sequences, model configuration."""

    summary: dict[str, Any]
    words: list[str]
    heldout: list[list[str]]
    config: BiLMConfig


def _resume_corpus(folder: Path) -> _Prepared:
    """The counting pass of an earlier run, read back from its folder."""
    summary = _read_json(folder / "corpus.json")
    words = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    heldout = [line.split(" ") for line in (folder / "heldout.txt").read_text(encoding="utf-8").split("\n")[:-1]]
    config = BiLMConfig.from_json(_read_json(folder / "settings.json")["model"])
    return _Prepared(summary, words, heldout, config)


def _count_corpus(corpus: Corpus, folder: Path, record: dict[str, Any], sizes: dict[str, Any],
                  settings: TrainSettings, log: Callable[[str], None]) -> _Prepared:
    """The counting pass (vocabulary, held-out sequences), written to the folder with the settings."""
    started = time.perf_counter()
    log(f"counting {', '.join(corpus.sources) or 'texts'} ...")
    counted = summarize(corpus, settings.sequence_tokens, settings.heldout, settings.min_count,
                        settings.max_vocab or None)
    if counted.tokens == 0 or len(counted.words) <= 3:
        raise ElmoTrainingError("the corpus has no training words (after holding out text and applying min_count)")
    words, heldout = counted.words, counted.heldout
    summary = counted.as_dict() | {"counting_s": time.perf_counter() - started}
    config = BiLMConfig(vocab_size=len(words), seed=settings.seed, **sizes)
    (folder / "vocab.txt").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    (folder / "heldout.txt").write_text("".join(" ".join(s) + "\n" for s in heldout), encoding="utf-8")
    _write_json(folder / "corpus.json", summary | {"sequences_per_source": counted.counts_per_source})
    _write_json(folder / "settings.json", record | {"model": config.to_json()})
    log(f"corpus: {summary['tokens']:,} training tokens, vocabulary {len(words):,} "
        f"({summary['unk_rate']:.1%} of tokens outside it), {summary['heldout_tokens']:,} held-out tokens")
    return _Prepared(summary, words, heldout, config)


class _Run:
    """One training run's steps: restore, measure, train (with checkpoints), measure again and report."""

    def __init__(self, corpus: Corpus, folder: Path, prepared: _Prepared, settings: TrainSettings,
                 log: Callable[[str], None]):
        self.corpus, self.folder, self.settings, self.log = corpus, folder, settings, log
        self.summary, self.heldout, self.config = prepared.summary, prepared.heldout, prepared.config
        self.vocab = Vocabulary(prepared.words)
        self.heldout_keys = _heldout_keys(prepared.heldout)
        self.model = BiLM(prepared.config)
        self.trainer = _Trainer(self.model, settings)
        self.ckpt_dir = folder / "checkpoints"
        self.manager = self.trainer.tf.train.CheckpointManager(self.trainer.checkpoint, str(self.ckpt_dir),
                                                               max_to_keep=2)
        self.state: dict[str, Any] = {"epoch": 0, "batches_done": 0, "tokens_seen": 0, "train_seconds": 0.0,
                                      "curve": []}

    def step(self) -> int:
        return int(self.trainer.step.numpy())

    def restore(self, resuming: bool) -> None:
        """Continue from the newest checkpoint when it is the one ``state.json`` describes."""
        latest = self.manager.latest_checkpoint
        if resuming and latest and (self.ckpt_dir / "state.json").is_file():
            saved = _read_json(self.ckpt_dir / "state.json")
            if saved.get("checkpoint") == Path(latest).name:
                self.trainer.checkpoint.restore(latest)
                self.state = saved
                self.log(f"resuming from step {self.step()}: epoch {saved['epoch'] + 1}, "
                         f"{saved['tokens_seen']:,} tokens trained")

    def measure_before(self) -> None:
        state = self.state
        if "perplexity_before" in state:
            return
        t0 = time.perf_counter()
        state["perplexity_before"] = before = self.trainer.perplexity(self.heldout, self.vocab)
        state["spread_before"] = self.trainer.spread(self.heldout, self.vocab)
        state["eval_seconds_before"] = time.perf_counter() - t0
        self.log(f"held-out perplexity before training: {before['mean']:.1f} "
                 f"(forward {before['forward']:.1f}, backward {before['backward']:.1f})")

    def save(self) -> None:
        path = self.manager.save(checkpoint_number=self.step())
        _write_json(self.ckpt_dir / "state.json", self.state | {"checkpoint": Path(path).name})

    def train(self, progress: bool) -> None:
        """Epochs until ``epochs`` or ``max_train_tokens``; Ctrl-C and SIGTERM save a checkpoint first."""
        from embedx.plugin_api import progress_bar

        settings, state = self.settings, self.state
        budget = settings.max_train_tokens or None
        total_tokens = self.summary["tokens"] * settings.epochs
        target = min(budget, total_tokens) if budget else total_tokens
        self.window = _Window()
        self.last_save = time.perf_counter()
        previous = _stop_on_sigterm()
        try:
            with progress_bar("biLM tokens", target, progress) as advance:
                advance(min(state["tokens_seen"], target))
                while state["epoch"] < settings.epochs and not (budget and state["tokens_seen"] >= budget):
                    if self.epoch(advance, budget):
                        state["epoch"] += 1
                        state["batches_done"] = 0
        except KeyboardInterrupt:
            self.save()
            self.log(f"interrupted: checkpoint at step {self.step()} saved; run the same command to resume")
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def epoch(self, advance: Callable[[int], None], budget: int | None) -> bool:
        """Train the rest of the current epoch; ``True`` when it ran to its end (not stopped by the budget)."""
        settings, state = self.settings, self.state
        stream = batches(self.corpus, self.heldout_keys, self.summary["sequences_per_source"], self.vocab,
                         settings.sequence_tokens, settings.batch_size, settings.seed, state["epoch"])
        for index, batch in enumerate(stream):
            if index < state["batches_done"]:
                continue
            self.train_batch(index, batch)
            advance(batch.n_tokens)
            if budget and state["tokens_seen"] >= budget:
                return False
        return True

    def train_batch(self, index: int, batch: Batch) -> None:
        """One step, then the loss curve, the log line and the checkpoint when they are due."""
        state = self.state
        t0 = time.perf_counter()
        loss = self.trainer.run(batch)
        if not math.isfinite(loss):
            raise ElmoTrainingError(f"the training loss became {loss} at step {self.step()}; "
                                    "lower --learning-rate or --clip-norm")
        state["train_seconds"] += time.perf_counter() - t0
        state["batches_done"] = index + 1
        state["tokens_seen"] += batch.n_tokens
        now = time.perf_counter()
        point = self.window.add(loss, batch.n_tokens, now)
        if point is not None:
            point = {"step": self.step(), "tokens": state["tokens_seen"], **point}
            state["curve"].append(point)
            self.log(f"step {point['step']:,}: {point['tokens']:,} tokens, sampled loss "
                     f"{point['loss']:.3f}, {point['tokens_per_s']:,.0f} tokens/s")
        if now - self.last_save >= self.settings.checkpoint_seconds:
            self.save()
            self.last_save = now

    def finish(self, started: float) -> dict[str, Any]:
        """Measure after training, warn about collapsed layers, save, write and return ``report.json``."""
        state, log = self.state, self.log
        t0 = time.perf_counter()
        after = self.trainer.perplexity(self.heldout, self.vocab)
        eval_after = time.perf_counter() - t0
        state["perplexity_after"] = after
        spread_after = self.trainer.spread(self.heldout, self.vocab)
        spread_before = state.get("spread_before") or {}
        collapsed = [name for name, value in spread_after.items()
                     if spread_before.get(name) and value < 0.05 * spread_before[name]]
        if collapsed:
            log(f"warning: {', '.join(collapsed)} barely vary over held-out tokens any more (spread "
                + ", ".join(f"{spread_before[n]:.3g} -> {spread_after[n]:.3g}" for n in collapsed)
                + "): the layer has collapsed; lower --learning-rate")
        self.save()
        seconds = state["train_seconds"]
        report = {"corpus": self.summary, "model": self.config.to_json(), "parameters": self.model.parameter_counts(),
                  "training": asdict(self.settings), "steps": self.step(), "tokens_trained": state["tokens_seen"],
                  "epochs_completed": state["epoch"], "train_seconds": seconds,
                  "tokens_per_second": state["tokens_seen"] / seconds if seconds else None,
                  "eval_seconds": {"before": state.get("eval_seconds_before"), "after": eval_after},
                  "this_run_wall_seconds": time.perf_counter() - started,
                  "perplexity_before": state["perplexity_before"], "perplexity_after": after,
                  "spread_before": state.get("spread_before"), "spread_after": spread_after,
                  "collapsed_layers": collapsed, "curve": state["curve"]}
        _write_json(self.folder / "report.json", report)
        log(f"held-out perplexity after training: {after['mean']:.1f} (forward {after['forward']:.1f}, "
            f"backward {after['backward']:.1f}); {state['tokens_seen']:,} tokens in {seconds:.0f} s")
        return report


class _Window:
    """The sampled loss and speed since the last loss-curve point (one every 30 s or 200 steps)."""

    def __init__(self) -> None:
        self.loss, self.n, self.tokens = 0.0, 0, 0
        self.start = self.last_log = time.perf_counter()

    def add(self, loss: float, tokens: int, now: float) -> dict[str, float] | None:
        self.loss, self.n, self.tokens = self.loss + loss, self.n + 1, self.tokens + tokens
        if now - self.last_log < 30 and self.n < 200:
            return None
        point = {"loss": self.loss / self.n, "tokens_per_s": self.tokens / max(now - self.start, 1e-9)}
        self.loss, self.n, self.tokens, self.start, self.last_log = 0.0, 0, 0, now, now
        return point


def _stop_on_sigterm() -> Any:
    """Treat SIGTERM like Ctrl-C while training (a checkpoint is saved); background jobs ignore SIGINT."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _resolved_sizes(sizes: dict[str, Any], seed: int) -> dict[str, Any]:
    """Every model size, given or default (the vocabulary size comes from the corpus)."""
    given = {k: v for k, v in sizes.items() if k not in ("vocab_size", "seed")}
    if "filters" in given:
        given["filters"] = tuple(tuple(int(x) for x in f) for f in given["filters"])
    resolved = BiLMConfig(vocab_size=len(SPECIALS) + 1, seed=seed, **given).to_json()
    resolved.pop("vocab_size")
    return json.loads(json.dumps(resolved))


def _heldout_keys(heldout: list[list[str]]) -> set[int]:
    from embedx_elmo_train.sequences import text_key

    return {text_key(s) for s in heldout}


