"""Scoring: how architectures are measured with trained weights, and how rankings are judged."""
from .bn import grouped_batch_stats, recalibrate, running_stats_mode
from ..spaces.nb201 import exact_representative   # NB201's exact-dedup key (NB201Space.function_key), kept here
from .dedup import DEDUP_MODES, Deduper, count_functions, space_of
from .evaluate import evaluate_arch
from .probe import PROBES
from .run import LoadedRun, load_run
from .scorer import BN_MODES, PRECISIONS, ScoreCache, ScoreProtocol, Scorer
from .shard import dist_env, shard

__all__ = ["BN_MODES", "DEDUP_MODES", "PROBES", "Deduper", "LoadedRun", "PRECISIONS", "ScoreCache", "ScoreProtocol", "Scorer",
           "count_functions", "dist_env", "evaluate_arch", "exact_representative", "grouped_batch_stats",
           "load_run", "recalibrate", "running_stats_mode", "shard", "space_of"]
