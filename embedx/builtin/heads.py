"""The built-in heads, registered through the same hook a third-party head plugin uses."""

from __future__ import annotations

from embedx.contract.hookspecs import hookimpl
from embedx.heads.dense import DenseHead
from embedx.heads.layer_mix import LayerMixHead
from embedx.heads.linear import LinearSVMHead, LogisticRegressionHead
from embedx.heads.token_head import WordLogisticHead
from embedx.heads.trees import GradientBoostingHead, RandomForestHead


@hookimpl
def register_heads(register):
    for head in (LogisticRegressionHead, LinearSVMHead, RandomForestHead, GradientBoostingHead, DenseHead,
                 LayerMixHead, WordLogisticHead):
        register(head)
