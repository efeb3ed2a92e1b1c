"""The experiments behind docs/results.md, run from the repository root as ``python -m benchmarks.NAME``
(docs/benchmarks.md lists every script, what it measures, its cost and the results section it feeds)."""
