"""What a comparison runs: datasets x embedders x heads, fine-tuning baselines, seeds, sizes.

The default takes tens of minutes on a 2-core machine (the committed report gives its wall time);
``--full`` is the seeds' setting (1,000 samples per class, every dataset, more seeds).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

AUTO = "auto"  # every registered embedder / fine-tuner that can run here with its defaults


@dataclass
class BenchConfig:
    datasets: list[str] = field(default_factory=lambda: ["sms-spam", "tweets"])
    embedders: list[str] = field(default_factory=lambda: [AUTO])
    heads: list[str] = field(default_factory=lambda: ["logreg", "linear-svm", "random-forest", "gradient-boosting",
                                                      "dense"])
    finetuners: list[str] = field(default_factory=lambda: [AUTO])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    finetune_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    samples_per_class: int | None = 500
    finetune_samples_per_class: int | None = 300
    max_tokens: int | None = 100
    max_token_length: int | None = None
    #: embedders for the layers x pooling table (BERT paper Table 7): ids, or "auto" for every embedder
    #: that declares layer options (``Embedder.layer_options``) and runs here with its defaults; None skips it.
    #: Each is swept over the poolings below that it declares (``Embedder.pooling_choices``).
    layer_sweep: str | None = "minilm-l6"
    layer_sweep_poolings: list[str] = field(default_factory=lambda: ["cls", "mean", "max"])
    #: embedders too slow for the default, left out of AUTO unless --full
    slow_embedders: list[str] = field(default_factory=lambda: [])
    #: how heads choose their settings: "cv" (5-fold on train+validation, refit) or "validation"
    selection: str = "cv"
    folds: int = 5
    #: columns of a labelled file given in ``datasets`` (.csv, .tsv, .jsonl); with ``split_column`` its
    #: own train / validation / test parts are kept (validation carved from train when it has none)
    text_column: str = "text"
    label_column: str = "label"
    split_column: str | None = None
    encoding_errors: str = "strict"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_config() -> BenchConfig:
    return BenchConfig()


def quick_config() -> BenchConfig:
    """A few minutes: one dataset, two heads, small fine-tuning subsample; what `make demo` runs."""
    return BenchConfig(datasets=["sms-spam"], heads=["logreg", "dense"], samples_per_class=300,
                       finetune_samples_per_class=150, finetune_seeds=[0], layer_sweep=None)


def full_config() -> BenchConfig:
    return BenchConfig(datasets=["mr", "tweets", "sms-spam", "email-spam", "trec"], seeds=[0, 1, 2, 3, 4],
                       finetune_seeds=[0, 1, 2], samples_per_class=1000, finetune_samples_per_class=1000,
                       max_tokens=200, layer_sweep=AUTO)
