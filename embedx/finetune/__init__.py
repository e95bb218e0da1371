"""Fine-tuning baselines: a model trained end to end on the texts, to compare heads against."""

from embedx.finetune.base import FineTuner, FineTuneResult

__all__ = ["FineTuneResult", "FineTuner"]
