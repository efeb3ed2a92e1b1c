"""DARTS, SNAS, GM + DARTS and GM + SNAS against RSPS and GM-NAS (RSPS) on NAS-Bench-201 / CIFAR-10, at one
CPU budget, several seeds: the NB201 test accuracy (``cifar10/test``, 200-epoch truth) of each method's cell.

Equal budget: every method trains a C x N NB201 supernet for ``--epochs`` epochs (batch ``--batch-size``) on the
first ``--train-images`` of NB201's `train` half; the first ``--valid-images`` of the `valid` half are the
held-out data (the architecture step of DARTS/SNAS, the score of RSPS's random search). Each method derives
its cell the way its paper does:

* ``darts`` / ``snas`` (configs/nb201/darts.yaml, snas.yaml; first order): the argmax of the alphas' softmax
  per edge after the last epoch (NB201's DARTS baselines, ``none`` included); the per-epoch record of the
  derived cell and its truth is kept (``metrics.jsonl``);
* ``gm_darts`` / ``gm_snas``: the same recipes with ``fewshot.method: gm``: one gradient-matching split at
  epoch ``--split-epoch`` (``--gm-batches`` batches; alphas fixed until then, children restarted), successive
  halving between the two sub-supernets, argmax of the survivor;
* ``rsps`` (configs/nb201/spos.yaml: uniform single-path supernet) and ``gm_rsps`` (configs/nb201/gmnas.yaml,
  the same single split): then random search of ``--search-archs`` cells, each scored by the supernet's
  accuracy on the held-out images (batch-statistics BN), the best one kept (Li & Talwalkar's RSPS).

GM variants train two sub-supernets after the split, so they spend more compute at the same epochs; the table
reports each run's wall time. Every (method, seed) runs in its own directory ``OUT/<method>-s<seed>``,
resumably (a killed run continues from its last checkpoint; a finished one, ``bench.json``, is skipped, if
its settings match); ``OUT/summary.json`` collects the results.

    python -m benchmarks.differentiable_nb201 --out /tmp/dnb201 --epochs 4 --train-images 2000 \\
        --valid-images 2000 --seeds 0 1 2 --threads 1
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
METHODS = ("darts", "snas", "gm_darts", "gm_snas", "rsps", "gm_rsps")
RECIPE = {"darts": "darts", "snas": "snas", "gm_darts": "darts", "gm_snas": "snas", "rsps": "spos",
          "gm_rsps": "gmnas"}
SETTINGS = ("epochs", "C", "N", "batch_size", "train_images", "valid_images", "split_epoch", "gm_batches",
            "search_archs")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder of the run directories (outside git)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train-images", type=int, default=2000, help="first N images of NB201's train half")
    ap.add_argument("--valid-images", type=int, default=2000, help="first N images of NB201's valid half")
    ap.add_argument("--split-epoch", type=int, default=2, help="GM variants: the epoch of the one split")
    ap.add_argument("--gm-batches", type=int, default=10, help="GM variants: batches per gradient-matching estimate")
    ap.add_argument("--search-archs", type=int, default=100, help="RSPS variants: random cells scored")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-root", default="/tmp/nshot-cifar", help="converted CIFAR-10 (made once if absent)")
    ap.add_argument("--summary", action="store_true", help="only print the table of what has finished")
    return ap


def shared_data() -> Path:
    from benchmarks.common import shared_data as find
    return find()


def overrides(method: str, seed: int, args: argparse.Namespace) -> list[str]:
    """Config overrides of one (method, seed) run on top of its recipe."""
    nb = shared_data() / "nb201"
    out = [f"data.root={args.data_root}", f"data.split_file={nb / 'cifar10_valid_split.json'}", "data.name=cifar10",
           "data.split=nb201", f"data.train_subset={args.train_images}", f"data.eval_subset={args.valid_images}",
           f"model.C={args.C}", f"model.N={args.N}", f"train.epochs={args.epochs}",
           f"train.batch_size={args.batch_size}", f"seed={seed}", f"threads={args.threads}", "run.progress=none"]
    if method.startswith("gm_"):
        out += ["fewshot.method=gm", f"fewshot.split_epochs=[{args.split_epoch}]",
                f"fewshot.gm_batches={args.gm_batches}"]
    if method in ("darts", "snas", "gm_darts", "gm_snas"):
        out.append(f"arch.table={nb / 'nb201_200ep.csv'}")
    return out


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in SETTINGS}


def run_one(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train (or continue) and derive one (method, seed); returns and writes ``bench.json``."""
    from nshot.config import load_config
    run = Path(args.out) / f"{method}-s{seed}"
    done = run / "bench.json"
    if done.is_file():
        result = json.loads(done.read_text())
        if result["settings"] != _settings(args):
            sys.exit(f"{run} was made with other settings ({result['settings']}): remove it or choose another --out")
        return result
    config = REPO / "configs" / "nb201" / f"{RECIPE[method]}.yaml"
    ov = overrides(method, seed, args)
    started = load_config(config, ov)
    timer = Path(args.out) / f"{method}-s{seed}.seconds.json"   # wall seconds of every invocation (resumes add up)
    spent = json.loads(timer.read_text())["seconds"] if timer.is_file() else 0.0
    t0 = time.time()
    try:
        if method in ("rsps", "gm_rsps"):
            result = _single_path(run, config, ov, args)
        else:
            result = _differentiable(run, started, method)
    finally:
        timer.write_text(json.dumps({"seconds": spent + time.time() - t0}))
    result.update({"method": method, "seed": seed, "recipe": str(config.relative_to(REPO)), "overrides": ov,
                   "settings": _settings(args), "wall_seconds": spent + time.time() - t0})
    done.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _differentiable(run: Path, cfg, method: str) -> dict[str, Any]:
    from nshot.train.differentiable import DifferentiableSearch
    from nshot.train.gm_search import GMSearch
    if method.startswith("gm_"):
        gm = GMSearch.resume(run) if (run / "gm.json").is_file() else GMSearch.create(cfg, run)
        out = gm.fit()
        if out is None:
            sys.exit(f"{run}: paused; run the benchmark again to continue")
        state = json.loads((run / "gm.json").read_text())
        return {"arch": out["arch"], "truth": out["truth"]["value"], "split": state["splits"],
                "halving": state["halving"]}
    search = DifferentiableSearch.resume(run) if (run / "config.yaml").is_file() else DifferentiableSearch.create(cfg, run)
    search.fit()
    if not search.done:
        sys.exit(f"{run}: paused at step {search.step}; run the benchmark again to continue")
    out = json.loads((run / "result.json").read_text())
    epochs = [{"epoch": r["epoch"], "arch": r["arch"], "truth": r["truth"], "valid_acc": r["valid_acc"]}
              for r in search.metrics.read()]
    return {"arch": out["arch"], "truth": out["truth"]["value"], "per_epoch": epochs}


def _single_path(run: Path, config: Path, ov: list[str], args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.suite import train_supernet
    from nshot.search.run_search import search_run
    train_supernet(config, ov, run)
    nb = shared_data() / "nb201"
    out = search_run(run, "random", budget=args.search_archs, top_k=1, eval_images=args.valid_images,
                     benchmark="nb201", table=str(nb / "nb201_200ep.csv"), progress="none", threads=args.threads)
    best = out["best"][0]
    return {"arch": best["arch"], "truth": best["truth"], "score": best["score"]}


def summarize(results: dict[str, list[dict]]) -> dict[str, Any]:
    """Print the markdown table (truth mean ± std per method, per seed, wall minutes); return it."""
    table = {}
    print("| method | NB201 test acc. mean ± std (%) | per seed | wall min/run |\n|---|---|---|---|")
    for method, runs in results.items():
        truths = [r["truth"] for r in runs]
        sd = statistics.stdev(truths) if len(truths) > 1 else 0.0
        mins = statistics.mean(r["wall_seconds"] for r in runs) / 60
        table[method] = {"seeds": [r["seed"] for r in runs], "truth": truths, "mean": statistics.mean(truths),
                         "std": sd, "archs": [r["arch"] for r in runs], "wall_minutes_mean": mins}
        print(f"| {method} | {statistics.mean(truths):.2f} ± {sd:.2f} | "
              f"{', '.join(f'{t:.2f}' for t in truths)} | {mins:.1f} |")
    return table


PARAMETER_FREE = ("none", "skip_connect", "avg_pool_3x3")


def parameter_free_edges(arch: str) -> int:
    """How many of an NB201 cell's 6 edges hold a parameter-free op (none, skip, avg pool)."""
    return sum(tok.split("~")[0] in PARAMETER_FREE for tok in arch.strip("|").replace("+", "").split("|") if tok)


def per_epoch(results: dict[str, list[dict]], out: Path) -> dict[str, dict[int, list]]:
    """Print, per method with a per-epoch record (DARTS, SNAS) and seed, the derived cell's NB201 truth and its
    number of parameter-free edges after each epoch, and the range of the final op weights (softmax of the
    alphas, uniform = 0.2); return them."""
    table: dict[str, dict[int, list]] = {}
    for method, runs in results.items():
        rows = {r["seed"]: r["per_epoch"] for r in runs if r.get("per_epoch")}
        if not rows:
            continue
        epochs = max(len(v) for v in rows.values())
        print(f"\n{method}: truth (%) / parameter-free edges of 6, after each epoch; final op weights min-max\n"
              f"| seed | {' | '.join(str(e + 1) for e in range(epochs))} | op weights |\n|---|{'---|' * (epochs + 1)}")
        for seed, recs in sorted(rows.items()):
            table.setdefault(method, {})[seed] = [(r["truth"], parameter_free_edges(r["arch"])) for r in recs]
            metrics = out / f"{method}-s{seed}" / "metrics.jsonl"
            last = json.loads(metrics.read_text().splitlines()[-1])["alphas"] if metrics.is_file() else None
            spread = f"{min(map(min, last)):.4f}-{max(map(max, last)):.4f}" if last else "n/a"
            print(f"| {seed} | " + " | ".join(f"{t:.2f} / {k}" for t, k in table[method][seed]) + f" | {spread} |")
    return table


def main(argv: Optional[list[str]] = None) -> dict:
    args = parser().parse_args(argv)
    out = Path(args.out)
    results: dict[str, list[dict]] = {}
    if args.summary:
        for m in args.methods:
            for s in args.seeds:
                f = out / f"{m}-s{s}" / "bench.json"
                if f.is_file():
                    r = json.loads(f.read_text())
                    if r["settings"] != _settings(args):
                        sys.exit(f"{f.parent} was made with other settings ({r['settings']})")
                    results.setdefault(m, []).append(r)
    else:
        from benchmarks.common import prepare_cifar
        prepare_cifar(Path(args.data_root))
        out.mkdir(parents=True, exist_ok=True)
        for s in args.seeds:                       # seeds outermost: every method of seed 0 finishes first
            for m in args.methods:
                results.setdefault(m, []).append(run_one(m, s, args))
    summary = {"command": "python -m benchmarks.differentiable_nb201 " + " ".join(argv if argv is not None else sys.argv[1:]),
               "settings": _settings(args), "results": summarize(results), "per_epoch": per_epoch(results, out)}
    if not args.summary:
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    main()
