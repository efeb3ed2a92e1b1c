"""Scoring: how architectures are measured with trained weights, and how rankings are judged."""
from .bn import recalibrate, running_stats_mode
from .evaluate import evaluate_arch
from .run import LoadedRun, load_run
from .scorer import BN_MODES, ScoreCache, ScoreProtocol, Scorer

__all__ = ["BN_MODES", "LoadedRun", "ScoreCache", "ScoreProtocol", "Scorer", "evaluate_arch", "load_run",
           "recalibrate", "running_stats_mode"]
