"""Where embedders run: in this process ("local", the default) or in a pool of Ray actors ("ray").

The engine only computes. Whatever engine ran a batch, the driver process validates it with the
same checker and writes it through the same store path, so the result does not depend on the
engine. Ray is optional and imported only when ``engine="ray"`` is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from embedx.contract.errors import OptionError

ENGINES = ("local", "ray")


def check_engine(engine: str, workers: int | None = None, gpus_per_worker: float = 0.0,
                 address: str | None = None) -> None:
    """Refuse an unknown engine or options that only make sense with Ray, before any input is read."""
    if engine not in ENGINES:
        raise OptionError(f"--engine {engine!r}: choose {' or '.join(ENGINES)}")
    if engine == "local":
        given = [name for name, value in (("--workers", workers), ("--ray-address", address),
                                          ("--gpus-per-worker", gpus_per_worker or None)) if value is not None]
        if given:
            raise OptionError(f"{', '.join(given)} only apply to --engine ray")
        return
    if workers is not None and workers < 1:
        raise OptionError(f"--workers {workers}: need at least 1")
    if gpus_per_worker < 0:
        raise OptionError(f"--gpus-per-worker {gpus_per_worker}: cannot be negative")


def import_ray() -> Any:
    """``ray`` with Ray Data, or a one-line error with the install command (``pip install 'embedx[ray]'``)."""
    from embedx.extras import require

    require("ray.data", "ray")
    return importlib.import_module("ray")
