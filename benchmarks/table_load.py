"""Cold load of the NB201 table (``NB201Benchmark.from_csv``) in a fresh interpreter: wall time, resident memory
added and the Python allocation peak, against the targets of issue 2 (under 1 s and under 100 MiB).

The test suite checks the rows and the memory (``tests/test_benchmarks.py``); the time target is a benchmark
figure, measured here, because a wall clock in a test fails on a loaded machine.

    python -m benchmarks.table_load [--table PATH/nb201_200ep.csv] [--repeats 3] [--out load.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

from benchmarks.common import REPO, command_line, shared_data

TARGET_SECONDS, TARGET_RSS_MIB = 1.0, 100.0

_CHILD = """
    import json, time, tracemalloc
    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")
    from nshot.benchmarks import NB201Benchmark
    before = rss_mb()
    t = time.perf_counter()
    b = NB201Benchmark.from_csv({table!r})
    seconds = time.perf_counter() - t
    after = rss_mb()
    tracemalloc.start()
    NB201Benchmark.from_csv({table!r})
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(json.dumps(dict(rows=len(b), seconds=seconds, rss_before_mb=before, rss_after_mb=after,
                          alloc_peak_mb=peak)))
"""


def measure(table: Path) -> dict:
    """One cold load of ``table`` in a fresh interpreter (run in the repository root): ``rows``, ``seconds``,
    ``rss_before_mb``, ``rss_after_mb`` and ``alloc_peak_mb`` (the tracemalloc peak of a second load)."""
    code = textwrap.dedent(_CHILD.format(table=str(table)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", default=str(shared_data() / "nb201" / "nb201_200ep.csv"))
    ap.add_argument("--repeats", type=int, default=3, help="fresh interpreters (default 3); medians reported")
    ap.add_argument("--out", help="write the JSON here")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    runs = [measure(Path(args.table)) for _ in range(args.repeats)]
    seconds = statistics.median(r["seconds"] for r in runs)
    rss = statistics.median(r["rss_after_mb"] - r["rss_before_mb"] for r in runs)
    print(f"NB201 table ({runs[0]['rows']} rows), median of {args.repeats} cold loads: {seconds:.3f} s "
          f"(target < {TARGET_SECONDS:g} s: {'met' if seconds < TARGET_SECONDS else 'NOT met'}), RSS +{rss:.1f} MiB "
          f"(target < {TARGET_RSS_MIB:g}: {'met' if rss < TARGET_RSS_MIB else 'NOT met'}), Python allocation peak "
          f"{statistics.median(r['alloc_peak_mb'] for r in runs):.1f} MiB")
    result = {"command": command_line("table_load", argv), "seconds_median": seconds, "rss_added_mib_median": rss,
              "runs": runs}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
