"""A benchmark's supernet run directory, resumable, and the summaries of multi-seed comparisons.

:func:`train_supernet` trains (or continues) the supernet of one benchmark run directory, refusing a directory
that holds another run; the multi-seed benchmarks (``dynamic_cifar10``, ``fewshot_cifar10``,
``pinas_cifar10``, ``macro_cifar10``) summarise tau per variant with :func:`summarize` and merge invocations
with :func:`write_summary`. The jobs themselves (one ``rank_cifar10`` run per variant and seed) are run by
``benchmarks.jobs``.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence, Union

BENCH_ARGS = "bench_args.json"   # the recipe and overrides a benchmark run directory was started with


def train_supernet(config: Union[str, Path, None], overrides: Sequence[str], out: Path) -> tuple[Any, float]:
    """Train the supernet of ``config`` + ``overrides`` in the run directory ``out``, or continue it there.

    A directory left by an interrupted call with the same recipe and overrides (recorded in
    ``OUT/bench_args.json``) resumes from its last checkpoint; a directory holding anything else is refused.
    Returns the final epoch's metrics (per leaf, keyed by node id, for a few-shot run) and the training compute
    seconds summed over every call. Exits with a message if training was stopped (Ctrl-C) before its end.
    """
    from nshot.config import load_config
    from nshot.train import Trainer
    from nshot.train.checkpoint import atomic_write_bytes
    from nshot.train.fewshot import FewShotRun
    from nshot.train.metrics import MetricsLog
    args = {"config": str(Path(config).resolve()) if config is not None else None, "overrides": list(overrides)}
    cfg = load_config(config, list(overrides))
    if out.exists() and any(out.iterdir()):
        _check_same_run(out, args, cfg)
    resume = (out / "config.yaml").exists()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / BENCH_ARGS, (json.dumps(args, indent=1) + "\n").encode())
    kind = FewShotRun if cfg.fewshot.method != "none" else Trainer
    run = kind.resume(out) if resume else kind.create(cfg, out)
    run.fit()
    if not run.done:
        sys.exit(f"{out}: training stopped before its end; run the benchmark again to continue")
    if isinstance(run, FewShotRun):
        final = {str(n.id): MetricsLog(run.node_dir(n.id) / "metrics.jsonl").read()[-1] for n in run.tree.leaves()}
        return final, run.train_seconds()
    records = run.metrics.read()
    return records[-1], sum(r["seconds"] for r in records)


def _check_same_run(out: Path, args: dict, cfg) -> None:
    """Exit with a message unless ``out`` holds (the start of) the run of ``args``: its record matches, or it
    was killed before anything but the record was written, or (a run from before records were kept) its
    config.yaml equals ``cfg`` up to threads, progress display and a randomly resolved MS edge."""
    from nshot.config import load_config, to_dict
    try:
        recorded = json.loads((out / BENCH_ARGS).read_text())
    except (OSError, ValueError):     # missing, or torn by a kill while it was written
        recorded = None
    if recorded == args:
        return
    if recorded is not None:
        changed = sorted(set(recorded["overrides"]) ^ set(args["overrides"]))
        if recorded["config"] != args["config"]:
            changed.insert(0, f"config {recorded['config']} vs {args['config']}")
        sys.exit(f"{out} holds a run started with other arguments ({', '.join(changed)}): remove it or choose "
                 "another --out")
    config_yaml = out / "config.yaml"
    if not config_yaml.exists() and all(p.name == BENCH_ARGS for p in out.iterdir()):
        return

    def comparable(c) -> dict:
        d = to_dict(c)
        d.pop("threads")
        d["run"] = {}
        if cfg.ms.edge == "random":
            d["ms"].pop("edge")
        return d
    if config_yaml.exists() and comparable(load_config(config_yaml)) == comparable(cfg):
        return
    sys.exit(f"{out} holds another run ({BENCH_ARGS} missing, config.yaml different or missing): remove it or "
             "choose another --out")


RUN_OPTIONS = ("seeds", "recipes", "jobs", "threads", "data_root", "out")   # which runs, and how: not what


def shared_settings(args: Any, also_exclude: Sequence[str] = ()) -> dict:
    """The command-line settings a benchmark's variants share: its argparse namespace less ``RUN_OPTIONS`` and
    ``also_exclude``; what must match before two invocations' summaries may be merged."""
    skip = set(RUN_OPTIONS) | set(also_exclude)
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip}


def write_summary(path: Path, summary: dict, per_variant: Sequence[str]) -> dict:
    """Write ``summary`` as JSON to ``path`` (atomically), merged into the summary already there when both
    have the same ``protocol`` entry (the settings the variants share, e.g. :func:`shared_settings`): the
    entries named in ``per_variant`` (dicts keyed by variant or run, e.g. ``results``) keep the keys of
    earlier invocations that this one did not produce, so running the variants of a comparison one command
    at a time into the same folder loses none of them; every other entry is this invocation's; ``commands``
    lists the distinct invocations in order of first appearance. Another ``protocol``, or an unreadable old
    file (a warning), replaces the old summary instead (its numbers were measured another way). Returns the
    written summary."""
    from nshot.train.checkpoint import atomic_write_bytes
    try:
        old = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as e:
        print(f"warning: {path} is unreadable ({e}); writing a new summary", file=sys.stderr)
        old = {}
    if old.get("protocol") != summary.get("protocol"):
        old = {}
    merged = dict(summary)
    for key in per_variant:
        merged[key] = {**old.get(key, {}), **summary.get(key, {})}
    commands = old.get("commands", [old["command"]] if "command" in old else [])
    new = summary.get("command")
    merged["commands"] = commands + ([new] if new is not None and new not in commands else [])
    atomic_write_bytes(path, json.dumps(merged, indent=1).encode())
    return merged


def summarize(results: dict[tuple[str, int], dict], names: Sequence[str], seeds: Sequence[int],
              tau_label: str = "tau (327)", top1_label: str = "top-1 (NB201 test)") -> dict:
    """Print a markdown table of tau (mean ± std over seeds), rho and top-1 per variant; return it as a dict."""
    summary = {}
    print(f"| variant | {tau_label} mean ± std | per seed | rho mean | {top1_label} mean | train min/run |")
    print("|---|---|---|---|---|---|")
    for name in names:
        runs = [results[(name, s)] for s in seeds]
        taus = [r["kendall_tau"] for r in runs]
        rhos = [r.get("spearman_rho") for r in runs]
        tops = [r["top1"]["truth"] for r in runs]
        mins = statistics.mean(r["train_seconds"] for r in runs) / 60
        sd = statistics.stdev(taus) if len(taus) > 1 else 0.0
        rho = statistics.mean(rhos) if None not in rhos else float("nan")
        summary[name] = {"seeds": list(seeds), "taus": taus, "tau_mean": statistics.mean(taus), "tau_std": sd, "rhos": rhos, "top1": tops,
                         "train_minutes_mean": mins}
        print(f"| {name} | {statistics.mean(taus):.3f} ± {sd:.3f} | {', '.join(f'{t:.3f}' for t in taus)} | "
              f"{rho:.3f} | {statistics.mean(tops):.2f} | {mins:.1f} |")
    return summary
