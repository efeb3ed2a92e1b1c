"""Ground-truth benchmark tables (no torch import): ``get("nb201")``, subsets, the NATS-Bench exporter.

See docs/benchmarks.md.
"""
from .base import (Benchmark, BenchmarkError, BenchmarkNotFound, TableBenchmark, available, get,
                   register)
from .nb201 import NB201Benchmark

__all__ = ["Benchmark", "BenchmarkError", "BenchmarkNotFound", "NB201Benchmark", "TableBenchmark",
           "available", "get", "register"]
