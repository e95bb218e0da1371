"""The loaded embedder, and a no-op model of its shape, as registry entries for ``embedx.extract``.

``extract`` builds and loads its embedder from a registry id. To time the pipeline around a model
that is already loaded (so model loading is counted once, as time to first vector, and not in
every extract run), the run registers a proxy whose ``embed_batch`` is the loaded embedder's.
The pipeline ceiling registers a second proxy that returns zeros of the same outputs and shapes
at no cost: the same extract path (dedupe, cache lookup, validation, staging, HDF5 writing,
commit) with a model that takes no time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedx.contract.embedder import TOKEN, Embedder, Embeddings, Output, Ragged
from embedx.contract.hookspecs import hookimpl
from embedx.registry import Registry, build_registry

SUBJECT_ID = "throughput-subject"
NOOP_ID = "throughput-noop"


def extract_registry(embedder: Embedder) -> Registry:
    """A registry with :data:`SUBJECT_ID` (the loaded ``embedder``) and :data:`NOOP_ID` (its no-op twin)."""
    specs = tuple(Output(s.name, s.level, s.dim, s.per_layer, s.layers) for s in embedder.output_specs())
    requested = tuple(embedder.requested_outputs or type(embedder).default_outputs)
    base = {"outputs": specs, "default_outputs": requested, "batch_size": type(embedder).batch_size,
            "output_specs": lambda self: specs}

    def forward(self: Any, texts: list[str]) -> Any:
        return embedder.embed_batch(texts)

    subject = type("ThroughputSubject", (Embedder,), {**base, "id": SUBJECT_ID, "embed_batch": forward,
                                                       "description": "the embedder under measurement, loaded"})
    zeros: dict[tuple[int, ...], np.ndarray] = {}

    def nothing(self: Any, texts: list[str]) -> Embeddings:
        outputs: dict[str, Any] = {}
        for spec in specs:
            if spec.name not in requested:
                continue
            width: tuple[int, ...] = ((spec.layers or 1,) if spec.per_layer else ()) + (spec.dim or 1,)
            if spec.level == TOKEN:
                words = [t.split() for t in texts]
                outputs[spec.name] = Ragged([_zeros(zeros, (len(w),) + width) for w in words], words)
            else:
                outputs[spec.name] = _zeros(zeros, (len(texts),) + width)
        return Embeddings(outputs, [0] * len(texts))

    noop = type("ThroughputNoop", (Embedder,), {**base, "id": NOOP_ID, "embed_batch": nothing,
                                                 "description": "zeros of the subject's shapes (pipeline ceiling)"})

    class Plugin:
        @hookimpl
        def register_embedders(self, register: Any) -> None:
            register(subject)
            register(noop)

    return build_registry(extra_plugins=[("bench-throughput", Plugin())], entry_points=False)


def _zeros(cache: dict[tuple[int, ...], np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """One read-only zero array per shape: a model that costs nothing allocates nothing either."""
    if shape not in cache:
        array = np.zeros(shape, dtype=np.float32)
        array.flags.writeable = False
        cache[shape] = array
    return cache[shape]
