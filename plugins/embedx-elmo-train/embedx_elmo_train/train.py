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
            raise OptionError(f"training settings: {', '.join(bad) or 'learning_rate, clip_norm, heldout'} out of range "
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
    record = {"format": FORMAT, "corpus": {"sources": list(corpus.sources), "texts": len(corpus.texts),
                                           "encoding_errors": corpus.encoding_errors},
              "training": asdict(settings), "model_sizes": _resolved_sizes(sizes, settings.seed)}
    comparable = json.loads(json.dumps({k: record[k] for k in ("corpus", "training", "model_sizes")}))
    comparable["training"] = {k: v for k, v in comparable["training"].items() if k not in EXTENSIBLE}
    resuming = False
    if folder.exists() and (folder / "settings.json").exists() and not overwrite:
        earlier = _read_json(folder / "settings.json")
        earlier_cmp = {k: earlier.get(k) for k in ("corpus", "training", "model_sizes")}
        try:  # sizes given explicitly or left at their defaults are the same model
            earlier_cmp["model_sizes"] = _resolved_sizes(earlier_cmp["model_sizes"] or {}, settings.seed)
        except (TypeError, ValueError):
            pass
        if earlier_cmp.get("training"):
            earlier_cmp["training"] = {k: v for k, v in earlier_cmp["training"].items() if k not in EXTENSIBLE}
        if earlier_cmp != comparable:
            raise ElmoTrainingError(f"{folder} holds a run with other settings or corpus; pass --overwrite to replace it "
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
    tf.random.set_seed(settings.seed)
    started = time.perf_counter()

    if resuming:
        summary = _read_json(folder / "corpus.json")
        words = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
        heldout = [line.split(" ") for line in (folder / "heldout.txt").read_text(encoding="utf-8").split("\n")[:-1]]
        config = BiLMConfig.from_json(_read_json(folder / "settings.json")["model"])
    else:
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

    vocab = Vocabulary(words)
    model = BiLM(config)
    trainer = _Trainer(model, settings)
    ckpt_dir = folder / "checkpoints"
    manager = tf.train.CheckpointManager(trainer.checkpoint, str(ckpt_dir), max_to_keep=2)
    state: dict[str, Any] = {"epoch": 0, "batches_done": 0, "tokens_seen": 0, "train_seconds": 0.0, "curve": []}
    if resuming and manager.latest_checkpoint and (ckpt_dir / "state.json").is_file():
        saved = _read_json(ckpt_dir / "state.json")
        if saved.get("checkpoint") == Path(manager.latest_checkpoint).name:
            trainer.checkpoint.restore(manager.latest_checkpoint)
            state = saved
            log(f"resuming from step {int(trainer.step.numpy())}: epoch {state['epoch'] + 1}, "
                f"{state['tokens_seen']:,} tokens trained")
    if "perplexity_before" not in state:
        t0 = time.perf_counter()
        state["perplexity_before"] = trainer.perplexity(heldout, vocab)
        state["spread_before"] = trainer.spread(heldout, vocab)
        state["eval_seconds_before"] = time.perf_counter() - t0
        log(f"held-out perplexity before training: {state['perplexity_before']['mean']:.1f} "
            f"(forward {state['perplexity_before']['forward']:.1f}, backward {state['perplexity_before']['backward']:.1f})")

    def save() -> None:
        path = manager.save(checkpoint_number=int(trainer.step.numpy()))
        _write_json(ckpt_dir / "state.json", state | {"checkpoint": Path(path).name})

    budget = settings.max_train_tokens or None
    total_tokens = summary["tokens"] * settings.epochs
    target = min(budget, total_tokens) if budget else total_tokens
    last_save = last_log = time.perf_counter()
    window_loss, window_n, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
    from embedx.plugin_api import progress_bar

    heldout_keys = _heldout_keys(heldout)

    previous = _stop_on_sigterm()
    try:
        with progress_bar("biLM tokens", target, progress) as advance:
            advance(min(state["tokens_seen"], target))
            while state["epoch"] < settings.epochs and not (budget and state["tokens_seen"] >= budget):
                stream = batches(corpus, heldout_keys,
                                 summary["sequences_per_source"], vocab, settings.sequence_tokens,
                                 settings.batch_size, settings.seed, state["epoch"])
                for index, batch in enumerate(stream):
                    if index < state["batches_done"]:
                        continue
                    t0 = time.perf_counter()
                    loss = trainer.run(batch)
                    if not math.isfinite(loss):
                        raise ElmoTrainingError(f"the training loss became {loss} at step {int(trainer.step.numpy())}; "
                                                "lower --learning-rate or --clip-norm")
                    state["train_seconds"] += time.perf_counter() - t0
                    state["batches_done"] = index + 1
                    state["tokens_seen"] += batch.n_tokens
                    advance(batch.n_tokens)
                    window_loss, window_n, window_tokens = window_loss + loss, window_n + 1, window_tokens + batch.n_tokens
                    now = time.perf_counter()
                    if now - last_log >= 30 or window_n >= 200:
                        rate = window_tokens / max(now - window_start, 1e-9)
                        state["curve"].append({"step": int(trainer.step.numpy()), "tokens": state["tokens_seen"],
                                               "loss": window_loss / window_n, "tokens_per_s": rate})
                        log(f"step {int(trainer.step.numpy()):,}: {state['tokens_seen']:,} tokens, sampled loss "
                            f"{window_loss / window_n:.3f}, {rate:,.0f} tokens/s")
                        window_loss, window_n, window_tokens, window_start, last_log = 0.0, 0, 0, now, now
                    if now - last_save >= settings.checkpoint_seconds:
                        save()
                        last_save = now
                    if budget and state["tokens_seen"] >= budget:
                        break
                else:
                    state["epoch"] += 1
                    state["batches_done"] = 0
    except KeyboardInterrupt:
        save()
        log(f"interrupted: checkpoint at step {int(trainer.step.numpy())} saved; run the same command to resume")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    t0 = time.perf_counter()
    after = trainer.perplexity(heldout, vocab)
    eval_after = time.perf_counter() - t0
    state["perplexity_after"] = after
    spread_after = trainer.spread(heldout, vocab)
    spread_before = state.get("spread_before") or {}
    collapsed = [name for name, value in spread_after.items()
                 if spread_before.get(name) and value < 0.05 * spread_before[name]]
    if collapsed:
        log(f"warning: {', '.join(collapsed)} barely vary over held-out tokens any more (spread "
            + ", ".join(f"{spread_before[n]:.3g} -> {spread_after[n]:.3g}" for n in collapsed)
            + "): the layer has collapsed; lower --learning-rate")
    save()
    report = {"corpus": summary, "model": config.to_json(), "parameters": model.parameter_counts(),
              "training": asdict(settings), "steps": int(trainer.step.numpy()), "tokens_trained": state["tokens_seen"],
              "epochs_completed": state["epoch"], "train_seconds": state["train_seconds"],
              "tokens_per_second": state["tokens_seen"] / state["train_seconds"] if state["train_seconds"] else None,
              "eval_seconds": {"before": state.get("eval_seconds_before"), "after": eval_after},
              "this_run_wall_seconds": time.perf_counter() - started,
              "perplexity_before": state["perplexity_before"], "perplexity_after": after,
              "spread_before": state.get("spread_before"), "spread_after": spread_after, "collapsed_layers": collapsed,
              "curve": state["curve"]}
    _write_json(folder / "report.json", report)
    log(f"held-out perplexity after training: {after['mean']:.1f} (forward {after['forward']:.1f}, "
        f"backward {after['backward']:.1f}); {state['tokens_seen']:,} tokens in {state['train_seconds']:.0f} s")
    return TrainResult(folder, report)


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


