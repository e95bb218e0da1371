"""What one throughput run measures, with the defaults for a CPU and for a CUDA device."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from embedx.contract.errors import OptionError

DTYPES = ("float32", "float16", "bfloat16")
SWEEPS = ("batch", "length", "layers", "pooling")
#: Layer settings of the layers sweep (shared vocabulary): the last layer, and the first block only.
LAYER_POINTS = ("-1", "1")


@dataclass
class Settings:
    """Everything a run needs besides the registry.

    ``embedders`` are specs (``id`` or ``id:key=value:...``); ``options`` apply to every one of them.
    ``None`` in a size field means the device's default (:func:`with_defaults`).
    """

    embedders: list[str]
    options: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    dtypes: list[str] | None = None
    batch_sizes: list[int] | None = None  # the batch sweep; each embedder's own default is added
    lengths: list[int] | None = None  # words per text in the length sweep
    texts: str = "mr"  # a file (one text per line, or .jsonl/.csv with a text field) or a dataset name
    max_texts: int | None = None  # texts of the defaults measurements
    end_to_end_texts: int | None = None  # texts of the fresh-process end-to-end runs
    seconds: float | None = None  # about how long one sweep point runs
    repeats: int = 3
    peer: str = "auto"  # or "none"
    sweeps: list[str] = field(default_factory=lambda: list(SWEEPS))
    cold: bool = True  # fresh-process start-up and end-to-end runs
    profile: bool = True  # where a torch model's time goes, one profiled call
    gemm_size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


@dataclass
class Resolved:
    """A checked :class:`Settings` with every size filled in: what the measuring code reads, so no field is
    ``None`` there."""

    embedders: list[str]
    options: dict[str, str]
    device: str
    dtypes: list[str]
    batch_sizes: list[int]
    lengths: list[int]
    texts: str
    max_texts: int
    end_to_end_texts: int
    seconds: float
    repeats: int
    peer: str
    sweeps: list[str]
    cold: bool
    profile: bool
    gemm_size: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


CPU_DEFAULTS = {"dtypes": ["float32"], "batch_sizes": [8, 32, 128], "lengths": [8, 32, 128], "max_texts": 2000,
                "seconds": 2.0, "gemm_size": 2048}
CUDA_DEFAULTS = {"dtypes": list(DTYPES), "batch_sizes": [64, 256, 1024], "lengths": [16, 64, 256],
                 "max_texts": 20000, "seconds": 4.0, "gemm_size": 8192}


def with_defaults(settings: Settings) -> Resolved:
    """Fill the unset sizes from the device's defaults and check every value."""
    if not (settings.device == "cpu" or settings.device == "cuda" or
            (settings.device.startswith("cuda:") and settings.device[5:].isdigit())):
        raise OptionError(f"--device {settings.device!r}: choose cpu, cuda or cuda:N")
    filled = asdict(settings)
    defaults = CUDA_DEFAULTS if settings.cuda else CPU_DEFAULTS
    for name, value in defaults.items():
        if filled[name] is None:
            filled[name] = list(value) if isinstance(value, list) else value
    if filled["end_to_end_texts"] is None:
        filled["end_to_end_texts"] = filled["max_texts"]
    filled["sweeps"] = [s for s in filled["sweeps"] if s != "none"]
    resolved = Resolved(**filled)
    _check(resolved)
    return resolved


def _check(settings: Resolved) -> None:
    bad = [d for d in settings.dtypes if d not in DTYPES]
    if bad or not settings.dtypes:
        raise OptionError(f"--dtype {','.join(bad) or '(none)'}: choose from {', '.join(DTYPES)}")
    for name, values in (("batch-sizes", settings.batch_sizes), ("lengths", settings.lengths)):
        if any(v < 1 for v in values):
            raise OptionError(f"--{name}: every value must be at least 1")
    unknown = [s for s in settings.sweeps if s not in SWEEPS]
    if unknown:
        raise OptionError(f"--sweep {unknown[0]!r}: choose from {', '.join(SWEEPS)}")
    if settings.peer not in ("auto", "none"):
        raise OptionError(f"--peer {settings.peer!r}: choose auto or none")
    if settings.repeats < 1 or settings.max_texts < 1 or settings.end_to_end_texts < 1:
        raise OptionError("--repeats, --max-texts and --end-to-end-texts must be at least 1")
    if not settings.embedders:
        raise OptionError("name at least one embedder with -e")


def int_list(text: str | None, flag: str) -> list[int] | None:
    """``"8,32,128"`` as integers (``None`` stays ``None``: the device's default)."""
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise OptionError(f"{flag} {text!r}: expected comma-separated whole numbers") from None


def names(text: str | None) -> list[str] | None:
    return None if text is None else [v.strip() for v in text.split(",") if v.strip()]
