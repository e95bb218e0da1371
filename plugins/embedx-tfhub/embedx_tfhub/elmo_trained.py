"""``elmo-trained`` and ``keras-elmo-trained``: the biLM that ``embedx elmo train`` wrote.

As an embedder and a fine-tuner.

They are the ``elmo`` embedder and the Keras ELMo-mix fine-tuner with one difference: the
``handle`` defaults to where the documented benchmark step puts the module,
``$EMBEDX_ELMO_MODULE`` or else ``runs/elmo/module`` under the current folder. So
``embedx bench compare`` (run from the repository root) includes ELMo once that module exists
and, until then, lists both as not run with the reason and the command that trains it.
"""

from __future__ import annotations

import os
from pathlib import Path

from embedx.plugin_api import EmbedderUnavailable
from embedx_tfhub import handles
from embedx_tfhub.elmo import Elmo, Signature
from embedx_tfhub.finetune import KerasHubFineTuner

MODULE_ENV = "EMBEDX_ELMO_MODULE"
DEFAULT_MODULE = "runs/elmo/module"
HOW = "train it with `python benchmarks/elmo_train.py` (or `embedx elmo train CORPUS... --out runs/elmo`)"


def default_module() -> str:
    """Where the trained module is looked for: ``$EMBEDX_ELMO_MODULE``, else ``runs/elmo/module``."""
    return os.environ.get(MODULE_ENV) or DEFAULT_MODULE


def missing_reason(handle: str) -> str | None:
    """Why ``handle`` is not a usable module folder, or ``None``."""
    if handles.is_url(handle) or handles.is_module_dir(Path(handle).expanduser()):
        return None
    return f"no trained ELMo module at {handle}: {HOW}, or set {MODULE_ENV}"


class TrainedElmo(Elmo):
    """The ``elmo`` embedder on the locally trained biLM module."""

    id = "elmo-trained"
    description = "ELMo biLM trained here by `embedx elmo train` (module at $EMBEDX_ELMO_MODULE or runs/elmo/module)"

    def __init__(self, model: str = "", signature: Signature = "default", max_length: int | None = None,
                 trust_module: bool = False):
        super().__init__(model or default_module(), signature, max_length, trust_module)

    def _init_handle(self, handle: str, trust_module: bool = False) -> None:
        if missing_reason(handle) is None:
            super()._init_handle(handle, trust_module)
        else:  # stays listable and says why it cannot run (Elmo's own check would raise here)
            self.handle, self.module, self.trust_module = handle, None, trust_module

    def unavailable_reason(self) -> str | None:
        return missing_reason(self.handle) or super().unavailable_reason()

    def load(self) -> None:
        reason = missing_reason(self.handle)
        if reason:
            raise EmbedderUnavailable(reason)
        super().load()


class TrainedElmoFineTuner(KerasHubFineTuner):
    """ELMo with its 4 mixing scalars trainable and a dense head, on the locally trained module."""

    id = "keras-elmo-trained"
    description = "ELMo trained here, frozen, with trainable scalar mix + Dense head (module at runs/elmo/module)"

    @classmethod
    def model_paths(cls, options):
        return {**options, "handle": options.get("handle") or default_module()}

    def __init__(self, handle: str = "", hidden: int = 256, epochs: int = 20, patience: int = 2, lr: float = 1e-3,
                 batch_size: int = 32):
        handle = handle or default_module()
        reason = missing_reason(handle)
        if reason:
            raise EmbedderUnavailable(reason)
        super().__init__(handle, kind="elmo", hidden=hidden, epochs=epochs, patience=patience, lr=lr,
                         batch_size=batch_size)
