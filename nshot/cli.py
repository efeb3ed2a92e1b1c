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

Overrides are dotted keys with YAML values (key.sub=value); see README.md for every key.
Ctrl-C (or SIGTERM) saves a checkpoint at the next step and exits; --resume continues exactly."""


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
    t.add_argument("--max-steps", type=int, help="stop (with a checkpoint) after this many more steps")

    q = sub.add_parser("quickstart", help="offline demo: small supernet on digits, ranked against stand-alone training",
                       description="Offline demo in a few CPU minutes: trains a small NB201 supernet on "
                                   "scikit-learn's digits, trains a few architectures stand-alone as ground "
                                   "truth, and prints the Kendall tau between the two rankings.")
    q.add_argument("--run-dir", help="where to write (default runs/quickstart-<time>)")
    q.add_argument("--archs", type=int, default=10, help="architectures trained stand-alone (default 10)")
    q.add_argument("--epochs", type=int, default=60, help="supernet epochs (default 60)")
    q.add_argument("--standalone-epochs", type=int, default=30, help="epochs per stand-alone network (default 30)")
    q.add_argument("--seed", type=int, default=0)
    return p


def _cmd_train(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from .config import load_config
    from .train.trainer import Trainer

    if args.resume:
        if args.config or args.overrides:
            raise SystemExit("error: --resume takes no config or overrides: the run's own config.yaml is used")
        trainer = Trainer.resume(args.resume)
        print(f"resuming {args.resume} at step {trainer.step}/{trainer.total_steps}")
    else:
        if not args.config:
            raise SystemExit("error: nshot train needs a CONFIG file (or --resume RUN_DIR); see nshot train --help")
        if "=" in args.config:
            raise SystemExit(f"error: the first argument must be a config file, got override {args.config!r}")
        cfg = load_config(args.config, args.overrides)
        run_dir = args.run_dir or cfg.run.dir or f"runs/{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        cfg.run.dir = str(run_dir)
        trainer = Trainer.create(cfg, run_dir)
        print(f"training {cfg.space.name} supernet ({trainer.total_steps} steps) on {trainer.device} in {run_dir}")
    trainer.fit(max_steps=args.max_steps)
    print(("finished: " if trainer.done else "paused: ") + f"{trainer.run_dir} at step {trainer.step}/{trainer.total_steps}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from .quickstart import run_quickstart
    run_quickstart(args.run_dir, num_archs=args.archs, supernet_epochs=args.epochs,
                   standalone_epochs=args.standalone_epochs, seed=args.seed)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``nshot`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .config import ConfigError
    from .data import DataError
    from .train.checkpoint import CheckpointError
    from .train.trainer import RunDirError
    try:
        return {"train": _cmd_train, "quickstart": _cmd_quickstart}[args.command](args)
    except (ConfigError, DataError, RunDirError, CheckpointError, FileNotFoundError, FloatingPointError) as exc:
        if os.environ.get("NSHOT_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
