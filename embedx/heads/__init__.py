"""Classifier heads trained on cached features: linear models, trees, small dense nets, a learned layer mix."""

from embedx.heads.base import FitReport, Head
from embedx.heads.data import HeadData, MemoryData

__all__ = ["FitReport", "Head", "HeadData", "MemoryData"]
