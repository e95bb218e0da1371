"""`embedx bench throughput`: how fast any registered embedder runs, against the machine's limit and a peer.

One measuring code path for every family (GloVe, hashing, transformers, Flair, TF Hub, third-party
plugins): the embedder alone (``embed_batch``), the whole ``embedx.extract`` path, the same path
with a no-op model (the pipeline ceiling), fresh-process start-up, the hardware peak (GEMM) and,
where a family or plugin supplies one, a peer (``SentenceTransformer.encode``, a plain numpy loop,
``hub.KerasLayer``), measured alternately in one run.

Modules, one concept each:

- :mod:`.settings`  what to measure (defaults for CPU and CUDA)
- :mod:`.texts`     the texts: unique, and sized for the length sweep
- :mod:`.hardware`  GEMM peak, machine facts, peak RSS / GPU memory / SM utilisation probes
- :mod:`.families`  what an embedder family declares: token counts, FLOPs per token, its peer
- :mod:`.peers`     the peers themselves
- :mod:`.proxies`   the loaded embedder and a no-op model as registry entries, for the extract path
- :mod:`.measure`   one timed measurement of each kind
- :mod:`.cold`      fresh-process start-up: time to first vector, end to end
- :mod:`.profile`   where a torch model's time goes (matrix products, other operators, outside)
- :mod:`.session`   the whole run: plan, alternate, collect
- :mod:`.summary`   figures derived from the measurements of one run (medians, spread, ratios)
- :mod:`.schema`    every field of ``throughput.json``, documented
- :mod:`.report`    Markdown report, plots, one terminal line per embedder

Nothing here imports torch, TensorFlow or matplotlib at import time.
"""

from __future__ import annotations
