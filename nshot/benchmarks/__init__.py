"""Ground-truth benchmark tables (no torch import): ``get("nb201")``, ``get("macro")``, subsets, the NATS-Bench exporter.

See docs/benchmarks.md.
"""
from .base import (Benchmark, BenchmarkError, BenchmarkNotConfigured, BenchmarkNotFound, TableBenchmark, available,
                   default_for_space, get, metric_for, register)
from .macro import MacroBenchmark
from .nb201 import NB201Benchmark

__all__ = ["Benchmark", "BenchmarkError", "BenchmarkNotConfigured", "BenchmarkNotFound", "MacroBenchmark",
           "NB201Benchmark", "TableBenchmark", "available", "default_for_space", "get", "metric_for", "register"]
