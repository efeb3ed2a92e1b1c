"""The ``nshot`` command."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

EPILOG_TRAIN = """examples:
  nshot train configs/nb201/spos.yaml data.root=./data train.epochs=10
  nshot train configs/nb201/spos.yaml --run-dir runs/spos-seed1 seed=1
  nshot train --resume runs/spos-seed1
  nshot train --resume runs/spos-seed1 optim.lr=0.0125     # e.g. after a non-finite loss

Overrides are dotted keys with YAML values (key.sub=value); see README.md for every key.
Ctrl-C (or SIGTERM) saves a checkpoint at the next step and exits; --resume continues exactly.
A resume may override only optim.lr, optim.lr_min, train.grad_clip, train.nonfinite,
train.checkpoint_every_steps, train.log_every_steps, run.progress, run.tensorboard, threads and
train.executor (run.tensorboard=true on a resume also writes the epochs already logged)."""


def _choices():
    """The registered search strategies and scoring probes, read without importing the plug-ins (no torch)."""
    from .registry import ChainChoices, RegistryChoices
    return (RegistryChoices("nshot.search", "STRATEGIES", package=True),
            ChainChoices(("classifier",), RegistryChoices("nshot.score", "PROBES", package=True), ("shared-linear",)))


STRATEGY_CHOICES, PROBE_CHOICES = _choices()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nshot", description="N-shot neural architecture search with weight-sharing supernets.")
    from . import __version__
    p.add_argument("--version", action="version", version=f"nshot {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a supernet from a YAML config (or resume a run)",
                       description="Train a supernet. Writes a run directory with the resolved config, "
                                   "metrics.jsonl and checkpoints.",
                       epilog=EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("config", nargs="?", help="YAML config file (omit with --resume)")
    t.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    t.add_argument("--run-dir", help="run directory (default: run.dir, else runs/<config name>-<time>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.add_argument("--max-steps", type=_positive_int, help="stop (with a checkpoint) after this many more steps")

    r = sub.add_parser("rank", help="rank a subset of architectures with a run's supernet vs a benchmark",
                       description="Score architectures with the run's supernet on its held-out split and compare "
                                   "with benchmark ground truth: Kendall tau-b, Spearman rho, precision@top-k, the "
                                   "benchmark accuracy of the supernet's top-1, and tau by complexity quintile. "
                                   "Writes RUN/rank.json and RUN/rank.csv; scores are cached in RUN/scores.csv.")
    r.add_argument("run_dir", help="a run directory written by nshot train")
    r.add_argument("--benchmark", help="ground-truth table: nb201 or macro (default: the run's space's own)")
    r.add_argument("--table", help="path of the benchmark table (nb201: the CSV, default $NSHOT_NB201_CSV; macro: "
                                   "nas-bench-macro_cifar10.json, default $NSHOT_MACRO_JSON)")
    r.add_argument("--metric", help="benchmark metric (default: the ground truth of the run's dataset: nb201 "
                                    "cifar10/test, cifar100/test or imagenet16/test; macro mean_acc; a run on other "
                                    "data is refused unless a metric is named)")
    r.add_argument("--subset", default="all", help="all | kendall327 | FILE (one arch per line) | N (seeded sample)")
    _score_args(r)
    r.add_argument("--dedup", default="exact", choices=["exact", "iso", "none"],
                   help="share evaluations: exact (default; cells that differ only on dead edges, identical "
                        "scores), iso (one cell per NB201 isomorphism class: an approximation for a supernet), none")
    r.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto (default): bf16 autocast on a CUDA GPU that supports it, else fp32")
    r.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format while scoring (default on: forward passes only, 1.5x faster "
                        "on CPU); --no-channels-last keeps NCHW")
    r.add_argument("--batch-group", type=_positive_int,
                   help="evaluation batches per forward pass; BN statistics stay per batch (default: 1 on CPU, "
                        "about 2048 images on CUDA)")
    r.add_argument("--arch-batch", type=_positive_int,
                   help="architectures per forward pass (every op runs, weighted per architecture; BN statistics "
                        "per architecture and batch: the same scores; default 1; batch-BN classifier scoring only)")

    s = sub.add_parser("search", help=f"search a run's supernet ({', '.join(STRATEGY_CHOICES)})",
                       description="Search the architectures of a run's supernet; fitness = supernet accuracy on the "
                                   "held-out split (cached in RUN/scores.csv). Writes RUN/search.json.")
    s.add_argument("run_dir")
    s.add_argument("--strategy", default="evolution", choices=STRATEGY_CHOICES,
                   help="tree: LaNAS-style partition tree (Pi-NAS's search; see docs/methods.md)")
    s.add_argument("--budget", type=_positive_int, help="distinct architectures to evaluate (random, tree: required; tree counts "
                                                             "cached ones too, so a rerun retraces the search)")
    s.add_argument("--population", type=_positive_int, default=50, help="architectures per generation (default 50)")
    s.add_argument("--generations", type=_positive_int, default=20, help="generations, the first included (default 20)")
    s.add_argument("--parents", type=_positive_int,
                   help="top-k kept as parents (default population/5, at least 2: 10 at population 50)")
    s.add_argument("--mutants", type=_non_negative_int, help="mutated children per generation (default population/2)")
    s.add_argument("--crossovers", type=_non_negative_int,
                   help="crossover children per generation (default population/2; random architectures fill the rest)")
    s.add_argument("--mutation-prob", type=_probability, default=0.1, help="per-decision mutation probability (default 0.1)")
    s.add_argument("--init-samples", type=_at_least(2), default=50, help="tree: random architectures before the first "
                                                                "partition (default 50)")
    s.add_argument("--tree-batch", type=_positive_int, default=8, help="tree: leaf selections per tree rebuild (default 8)")
    s.add_argument("--leaf-size", type=_positive_int, default=10, help="tree: a node splits when it holds at least twice "
                                                             "this many architectures (default 10)")
    s.add_argument("--max-depth", type=_non_negative_int, default=5, help="tree: depth limit (default 5)")
    s.add_argument("--ucb-c", type=_non_negative_float, default=0.5, help="tree: UCB exploration weight on standardised "
                                                            "fitness (0 = greedy, as Pi-NAS; default 0.5)")
    s.add_argument("--max-params", type=_non_negative_int, help="constraint: at most this many parameters (stand-alone network)")
    s.add_argument("--max-flops", type=_non_negative_int, help="constraint: at most this many FLOPs (multiply-adds)")
    s.add_argument("--top-k", type=_positive_int, default=10, help="best architectures listed (default 10)")
    s.add_argument("--seed", type=_non_negative_int, help="search seed (default: the run's seed)")
    s.add_argument("--benchmark", help="also report ground truth of the best architectures (nb201, macro)")
    s.add_argument("--table", help="path of the benchmark table")
    s.add_argument("--metric", help="benchmark metric (default: the ground truth of the run's dataset, as nshot rank)")
    _score_args(s)

    a = sub.add_parser("train-arch", help="train one architecture from scratch (NB201 protocol by default)",
                       description="Train an architecture (a string, or the best of RUN_DIR/search.json) from "
                                   "scratch: 200 epochs, lr 0.1 cosine, wd 5e-4, batch 256, Nesterov by default. "
                                   "Data settings come from CONFIG (or the run's config).")
    a.add_argument("arch", help="architecture string, or a run directory with search.json")
    a.add_argument("overrides", nargs="*", help="key.sub=value overrides of the data, device and standalone.* "
                                                "settings")
    a.add_argument("--config", help="YAML config for data/device (default: the run's config, else defaults)")
    a.add_argument("--run-dir", help="where to write (default runs/arch-<time>)")
    a.add_argument("--epochs", type=_positive_int, help="default 200 (or the config's standalone.epochs)")
    a.add_argument("--batch-size", type=_positive_int, help="default 256")
    a.add_argument("--lr", type=_positive_float, help="default 0.1")
    a.add_argument("--weight-decay", type=_non_negative_float, help="default 5e-4")
    a.add_argument("--C", type=_positive_int,
                   help="NB201: channels of the first stage (default 16, the benchmark network; DARTS space: 36); "
                        "macro / proxyless spaces train the run's own model (model.widths etc.)")
    a.add_argument("--N", type=_positive_int, help="default 5 (DARTS space: 6, i.e. 20 cells)")
    a.add_argument("--aux-weight", type=_non_negative_float, help="DARTS: auxiliary head loss weight (default 0: no head)")
    a.add_argument("--cutout", type=_non_negative_int, help="cutout square size (default 0: none)")
    a.add_argument("--drop-path", type=_probability, help="DARTS: final drop-path probability (default 0)")
    a.add_argument("--grad-clip", type=_positive_float, help="gradient norm clip (default none)")
    a.add_argument("--drop-last", action="store_true", default=None,
                   help="drop each epoch's final short batch (default off)")
    a.add_argument("--bn-calibrate", action="store_true", default=None,
                   help="before evaluating, set BN's running statistics to their average over the un-augmented "
                        "training images (default: the running averages training leaves)")

    rep = sub.add_parser("report", help="write RUN/report.html (plots and tables of a run)",
                         description="One self-contained HTML page: training curves, lr used, score vs ground "
                                     "truth, tau by complexity quintile, top architectures with cell drawings.")
    rep.add_argument("run_dir")
    rep.add_argument("--out", help="output HTML path (default RUN/report.html)")

    from .quickstart import DEFAULT_ARCHS   # numpy only, no torch
    q = sub.add_parser("quickstart", help="offline demo: small supernet on digits, ranked against stand-alone training",
                       description="Offline demo in about 1.5 CPU minutes on 2 cores: trains a small NB201 supernet on "
                                   "scikit-learn's digits and, meanwhile, architectures from every quality band "
                                   "(of a pool of NB201 cells, banded by their digits accuracy) stand-alone (--truth-seeds trainings each, default 3, averaged) as ground "
                                   "truth; prints Kendall tau with its 95 % bootstrap "
                                   "interval and writes RUN/report.html.")
    q.add_argument("--run-dir", help="where to write (default runs/quickstart-<time>)")
    q.add_argument("--archs", type=_at_least(3), default=DEFAULT_ARCHS,
                   help=f"architectures trained stand-alone, spread over the quality bands (3-32, default {DEFAULT_ARCHS})")
    q.add_argument("--epochs", type=_positive_int, default=120, help="supernet epochs (default 120)")
    q.add_argument("--standalone-epochs", type=_positive_int, default=30,
                   help="epochs per stand-alone network (default 30)")
    q.add_argument("--seed", type=_non_negative_int, default=0)
    q.add_argument("--truth-seeds", type=_positive_int, default=3,
                   help="stand-alone trainings per architecture, averaged as its ground truth (default 3)")
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def evolution_defaults(population: int, parents: Optional[int] = None, mutants: Optional[int] = None,
                       crossovers: Optional[int] = None) -> dict[str, int]:
    """SPOS's proportions at any population (:func:`nshot.search.strategies.evolution_defaults`)."""
    from .search.strategies import evolution_defaults as defaults
    return defaults(population, parents, mutants, crossovers)


def _at_least(low: int):
    """An argparse type: an integer >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bn", default="batch", choices=["batch", "recal"],
                   help="BN mode: batch statistics (default) or running statistics re-calibrated per architecture")
    p.add_argument("--recal-batches", type=_positive_int, default=10, help="training batches for --bn recal (default 10)")
    p.add_argument("--eval-images", type=_positive_int, help="score on the first N held-out images only")
    p.add_argument("--probe", choices=PROBE_CHOICES,
                   help="what scores a path: the supernet's classifier head, or a labelled probe on its frozen "
                        "features (knn: weighted 20-NN vote; linear: ridge least squares per path; shared-linear: "
                        "one linear head trained once under uniformly sampled paths, cached in RUN/probes/). "
                        "Default: knn for a run trained without labels (train.objective=pinas), else classifier")
    p.add_argument("--probe-images", type=_positive_int, default=5000,
                   help="labelled training images in the probe's bank (a seeded sample of the training split; "
                        "default 5000); shared-linear trains its head on them")
    p.add_argument("--probe-epochs", type=_positive_int, default=10,
                   help="shared-linear: epochs over the probe images (one random path per batch; default 10)")
    p.add_argument("--probe-lr", type=_positive_float, default=1.0,
                   help="shared-linear: peak SGD learning rate, cosine to 0 (momentum 0.9; default 1.0)")
    p.add_argument("--device", help="override the run's device (cpu, cuda)")
    p.add_argument("--threads", type=_positive_int, help="override the run's CPU threads")
    p.add_argument("--progress", default="auto", choices=["auto", "bar", "log", "none"])


def _cmd_rank(args: argparse.Namespace) -> int:
    from .preflight import check_rank
    check_rank(args)   # before torch is imported: a wrong path, table or metric fails at once
    from .score.rank import format_rank, rank_run
    subset = int(args.subset) if args.subset.isdigit() else args.subset
    report = rank_run(args.run_dir, args.benchmark, args.metric, subset, table=args.table, bn_mode=args.bn,
                      recal_batches=args.recal_batches, eval_images=args.eval_images, device=args.device,
                      progress=args.progress, dedup=args.dedup, precision=args.precision,
                      channels_last=args.channels_last, batch_group=args.batch_group, probe=args.probe,
                      probe_images=args.probe_images, threads=args.threads, probe_epochs=args.probe_epochs,
                      probe_lr=args.probe_lr, arch_batch=args.arch_batch)
    if "protocol" not in report:   # a torchrun rank other than 0: rank 0 writes the outputs
        print(f"rank {report['rank']}/{report['world']}: evaluated {report['evaluated']} architectures")
        return 0
    print(format_rank(report))
    print(f"wrote {args.run_dir}/rank.json and rank.csv")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from .preflight import check_search
    from .search.constraint import Constraint
    check_search(args)   # before torch is imported
    constraint = None
    if args.max_params is not None or args.max_flops is not None:
        constraint = Constraint(max_params=args.max_params, max_flops=args.max_flops)
    from .search import cli_options, get_strategy
    extra = cli_options(get_strategy(args.strategy), args)   # the strategy's own options
    from .search.run_search import format_search, search_run
    out = search_run(args.run_dir, args.strategy, budget=args.budget, constraint=constraint, top_k=args.top_k,
                     seed=args.seed, bn_mode=args.bn, recal_batches=args.recal_batches,
                     eval_images=args.eval_images, benchmark=args.benchmark, metric=args.metric, table=args.table,
                     device=args.device, progress=args.progress, probe=args.probe, probe_images=args.probe_images,
                     threads=args.threads, probe_epochs=args.probe_epochs, probe_lr=args.probe_lr, **extra)
    print(format_search(out))
    print(f"wrote {args.run_dir}/search.json")
    return 0


def _cmd_train_arch(args: argparse.Namespace) -> int:
    import time

    from .preflight import check_train_arch
    cfg, arch, source = check_train_arch(args)   # config, architecture and --run-dir before torch is imported
    from .train.standalone import StandaloneConfig
    from .train.train_arch import standalone_settings, train_arch

    sa = StandaloneConfig(**standalone_settings(args, cfg), augment=cfg.data.augment,
                          crop_padding=cfg.data.crop_padding, flip=cfg.data.flip)
    run_dir = args.run_dir or f"runs/arch-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"training {arch} from scratch ({sa.epochs} epochs) in {run_dir}")
    result = train_arch(arch, cfg, sa, run_dir, source)
    print(f"accuracy {result['accuracy']:.2f}% on {result['evaluated_on']}; wrote {run_dir}/result.json")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .preflight import check_report
    check_report(args)   # before matplotlib is imported
    from .report import build_report
    path = build_report(args.run_dir, args.out)
    print(f"wrote {path}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from .config import ConfigError, load_config
    from .errors import INTERRUPTED
    from .run.rundir import RunDir, RunKind

    cfg = None
    kind = None   # of the run resumed
    if args.resume:
        overrides = ([args.config] if args.config else []) + list(args.overrides)
        files = RunDir(args.resume)
        files.require_run()
        kind = files.kind()
    else:   # validate the config before torch is imported: a typo fails in a fraction of a second
        if not args.config:
            raise ConfigError("nshot train needs a CONFIG file (or --resume RUN_DIR); see nshot train --help")
        if "=" in args.config:
            raise ConfigError(f"the first argument must be a config file, got override {args.config!r}")
        cfg = load_config(args.config, args.overrides)
        from .preflight import check_train
        check_train(cfg, args.run_dir or cfg.run.dir)

    from .train.distributed import from_env
    from .train.fewshot import FewShotRun
    from .train.trainer import Trainer

    info = from_env()   # under torchrun every rank runs this; rank 0 alone talks and writes
    say = print if info.is_main else (lambda *a, **k: None)

    if kind is RunKind.FEW_SHOT and not files.is_node():   # a node is refused by Trainer.resume (resume the tree)
        if info.enabled:
            raise ConfigError("few-shot runs train in one process (torchrun is for one-shot supernets)")
        if args.config or args.overrides or args.max_steps:
            raise ConfigError("a few-shot run resumes with its own config: no overrides or --max-steps")
        run = FewShotRun.resume(args.resume)
        print(f"resuming few-shot run {args.resume}")
        run.fit()
        return _finish_fewshot(run)
    if kind in (RunKind.DIFFERENTIABLE, RunKind.GM_DIFFERENTIABLE) or (cfg is not None and cfg.arch.method != "none"):
        return _train_differentiable(args, cfg, kind)
    if args.resume:
        if any("=" not in o for o in overrides):
            raise ConfigError("--resume takes no config file: the run's own config is used (overrides of "
                              "optim.lr and a few other keys are allowed, see --help)")
        trainer = Trainer.resume(args.resume, overrides=overrides)
        say(f"resuming {args.resume} at step {trainer.step}/{trainer.total_steps}")
    else:
        if info.enabled and not (args.run_dir or cfg.run.dir):
            raise ConfigError("under torchrun give the run directory (--run-dir or run.dir): every rank must use "
                              "the same one")
        run_dir = args.run_dir or cfg.run.dir or f"runs/{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        cfg.run.dir = str(run_dir)
        if cfg.fewshot.method != "none":
            if info.enabled:
                raise ConfigError("few-shot runs train in one process (torchrun is for one-shot supernets)")
            if args.max_steps:
                raise ConfigError("--max-steps is not supported for few-shot runs (Ctrl-C pauses them)")
            run = FewShotRun.create(cfg, run_dir)
            print(f"training a {cfg.fewshot.method} few-shot {cfg.space.name} supernet in {run_dir}")
            run.fit()
            return _finish_fewshot(run)
        trainer = Trainer.create(cfg, run_dir)
        say(f"training {cfg.space.name} supernet ({trainer.total_steps} steps) on {trainer.device} in {run_dir}")
    trainer.fit(max_steps=args.max_steps)
    say(("finished: " if trainer.done else "paused: ") + f"{trainer.run_dir} at step {trainer.step}/{trainer.total_steps}")
    if not trainer.done and trainer.interrupted:
        return INTERRUPTED   # stopped by Ctrl-C / SIGTERM: resumable, and a script can tell it from a finished run
    return 0


def _finish_fewshot(run) -> int:
    """Print how a few-shot run ended; 130 when a signal paused it (it has no --max-steps)."""
    from .errors import INTERRUPTED
    print(("finished: " if run.done else "paused: ") + str(run.run_dir))
    return 0 if run.done else INTERRUPTED


def _train_differentiable(args: argparse.Namespace, cfg, kind=None) -> int:
    """``nshot train`` for DARTS / SNAS (``cfg``: the loaded config of a new run; ``kind``: the
    :class:`nshot.run.RunKind` of a run resumed): :class:`nshot.train.differentiable.DifferentiableSearch`."""
    import time
    from pathlib import Path

    from .config import ConfigError
    from .errors import INTERRUPTED
    from .run.rundir import RunKind
    from .train.differentiable import DifferentiableSearch
    from .train.distributed import from_env
    from .train.gm_search import GMSearch
    if from_env().enabled:
        raise ConfigError("differentiable search (arch.method) runs in one process; torchrun is for single-path "
                          "supernets")
    if args.resume:
        if args.config or args.overrides:
            raise ConfigError("a differentiable search resumes with its own config: no config file or overrides")
        if kind is RunKind.GM_DIFFERENTIABLE:
            gm = GMSearch.resume(args.resume)
            print(f"resuming GM-NAS + {gm.cfg.arch.method} run {args.resume}")
            return _finish_gm(gm)
        run = DifferentiableSearch.resume(args.resume)
        print(f"resuming {args.resume} at step {run.step}/{run.total_steps}")
    else:
        run_dir = args.run_dir or cfg.run.dir or f"runs/{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        cfg.run.dir = str(run_dir)
        if cfg.fewshot.method == "gm":
            if args.max_steps:
                raise ConfigError("--max-steps is not supported for GM-NAS runs (Ctrl-C pauses them)")
            print(f"GM-NAS + {cfg.arch.method} on {cfg.space.name} in {run_dir}")
            return _finish_gm(GMSearch.create(cfg, run_dir))
        run = DifferentiableSearch.create(cfg, run_dir)
        print(f"{cfg.arch.method} search on {cfg.space.name} ({run.total_steps} steps) on {run.device} in {run_dir}")
    def show(record: dict) -> None:
        truth = f" truth {record['truth']:.2f}" if "truth" in record else ""
        print(f"epoch {record['epoch']} loss {record['loss']:.4f} valid acc {record['valid_acc']:.2f}{truth} "
              f"arch {record['arch']}", flush=True)

    run.fit(max_steps=args.max_steps, on_epoch=show)
    print(("finished: " if run.done else "paused: ") + f"{run.run_dir} at step {run.step}/{run.total_steps}")
    return 0 if run.done or args.max_steps else INTERRUPTED


def _finish_gm(gm) -> int:
    """Run a GM-NAS differentiable search to its end; 130 when a signal paused it."""
    from .errors import INTERRUPTED
    result = gm.fit()
    if result is None:
        print(f"paused: {gm.run_dir}; continue with: nshot train --resume {gm.run_dir}")
        return INTERRUPTED
    truth = f" (NB201 truth {result['truth']['value']:.2f})" if "truth" in result else ""
    print(f"finished: {gm.run_dir}; node {result['node']} won the halving; {result['projection']} projection: "
          f"{result['arch']}{truth}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from .preflight import check_quickstart
    check_quickstart(args)   # before torch is imported
    from .quickstart import run_quickstart
    from .errors import INTERRUPTED
    try:
        run_quickstart(args.run_dir, num_archs=args.archs, supernet_epochs=args.epochs,
                       standalone_epochs=args.standalone_epochs, seed=args.seed, truth_seeds=args.truth_seeds)
    except KeyboardInterrupt:
        print("interrupted: the quickstart does not resume; run it again", file=sys.stderr)
        return INTERRUPTED
    return 0


OVERRIDE_COMMANDS = ("train", "train-arch")   # commands that take key.sub=value overrides anywhere


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``nshot`` console script. Exit status: 0 finished, 130 interrupted (resumable),
    2 usage error, 1 failure while running (see :mod:`nshot.errors`)."""
    from .errors import INTERRUPTED, exit_code
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:   # key=value overrides may follow options (`train CFG --run-dir D seed=1`)
        stray = [e for e in extra if e.startswith("-") or "=" not in e]
        if stray or args.command not in OVERRIDE_COMMANDS:
            parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
        args.overrides = list(args.overrides) + extra
    if args.command is None:
        parser.print_help()
        return 2
    try:
        commands = {"train": _cmd_train, "quickstart": _cmd_quickstart, "rank": _cmd_rank, "search": _cmd_search,
                    "train-arch": _cmd_train_arch, "report": _cmd_report}
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("interrupted (training checkpoints at the next step on Ctrl-C; `--resume` continues; scoring "
              "resumes from scores.csv)", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:   # noqa: BLE001 - classified below; anything unexpected keeps its traceback
        code = exit_code(exc)
        if code is None or os.environ.get("NSHOT_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
