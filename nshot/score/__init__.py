"""Scoring: how architectures are measured with trained weights."""
from .evaluate import evaluate_arch

__all__ = ["evaluate_arch"]
