"""Optional parts of embedx and the framework each one needs, declared as pip extras.

The core (extract, the store, info, export to .npy/.csv, the hashing embedder) needs only
numpy, h5py, pluggy, typer and rich. Heads, readers for other libraries, Parquet export and
the comparison report need more; each imports its framework through :func:`require`, so a
missing one is a one-line error with the install command, never an ``ImportError`` traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from embedx.contract.errors import EmbedxError

#: extra name -> (what it enables, the distributions it installs); mirrors pyproject.toml.
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "heads": ("linear and tree heads (embedx train, predict)", ("scikit-learn",)),
    "torch": ("dense and layer-mix heads, the torch reader", ("torch",)),
    "tf": ("the tf.data reader", ("tensorflow",)),
    "bench": ("embedx bench compare and its plots", ("scikit-learn", "matplotlib")),
    "parquet": ("export to .parquet", ("pyarrow",)),
    "ray": ("--engine ray (extraction on a pool of Ray actors)", ("ray[data]",)),
}
_DISTRIBUTION = {"sklearn": "scikit-learn", "matplotlib": "matplotlib", "torch": "torch", "tensorflow": "tensorflow",
                 "pyarrow": "pyarrow", "ray": "Ray Data"}


class MissingExtra(EmbedxError):
    """A feature was asked for whose framework is not installed."""


def require(module: str, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` or fail with one line saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if getattr(exc, "name", None) not in (None, top, module) and not str(getattr(exc, "name", "")).startswith(top):
            raise  # the framework is there but broken inside: show that, not an install hint
        what = feature or EXTRAS.get(extra, (extra, ()))[0]
        raise MissingExtra(f"{what} needs {_DISTRIBUTION.get(top, top)}, which is not installed: "
                           f"pip install 'embedx[{extra}]'") from None
