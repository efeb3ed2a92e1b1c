"""Throughput of nshot: architectures/s of the plain vs the fast scorer, and training images/s of a plain loop vs\nnshot's training step.

Scoring half. One supernet with random weights (default C=8, N=1, 10 classes, BN affine=False with batch
statistics, as nshot trains it) scores the same architectures with:

* ``plain``: every distinct string evaluated, one protocol batch per forward pass, one host read per
  architecture, fp32: what ``nshot rank`` did before dedup (``dedup=none, batch_group=1, sync_every=1``);
* ``fast exact``: ``dedup=exact`` (cells that differ only on dead edges share one evaluation, identical
  scores) with the device's default batching, sync and precision (CPU: 1 batch per pass, one read per arch,
  fp32; CUDA: about 2048 images per pass, one read per 32 archs, bf16 autocast where supported);
* ``fast iso``: as ``fast exact`` with ``dedup=iso`` (one cell per NB201 isomorphism class: an approximation
  for a supernet, shown for scale only).

Workloads: ``random<N>`` (N cells drawn uniformly from the 15,625 with a seeded generator, disconnected ones
included) and ``kendall327`` (the 327-cell subset, from ``--subset``, default ``../shared/data/nb201/
kendall_subset_327.txt`` when present). Data: ``--images`` random 32x32 images (content does not change the
cost). Every scorer starts with an empty cache. Timing: ``--rounds`` rounds, each scoring every workload with
every scorer, the scorer order rotating between rounds; reported: median wall time per (workload, scorer),
architectures/s = workload size / time (so dedup shows as a higher rate), and fast/plain. ``identical``
checks that ``fast exact`` gave exactly the plain scores; for ``fast iso`` the share of equal scores.

Training half (``--train-steps`` > 0): images/s of SPOS steps (batch 64, random images, the same uniform
architecture sequence) with a conventional loop (:class:`PlainLoop`: host-side per-image crop/flip in Python,
a host-to-device copy and a loss read-back every step, fp32) vs nshot's ``Trainer.train_step`` (uint8 split on
the device, batched device-side augmentation, no per-step sync; bf16 autocast and channels_last where the
device defaults turn them on: CUDA), interleaved rounds, medians.

    python -m benchmarks.throughput                         # CPU scale of the results table
    python -m benchmarks.throughput --device cuda --C 16 --N 5 --images 10000
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Optional

import torch

from benchmarks.common import command_line, shared_data
from benchmarks.timing import abba
from nshot import spaces
from nshot.data import ImageData
from nshot.nn import nb201_supernet
from nshot.score import ScoreProtocol, Scorer, count_functions

DEFAULT_SUBSET = shared_data() / "nb201" / "kendall_subset_327.txt"
SCORERS = {   # name -> (dedup, execution options; None = the device default)
    "plain": ("none", dict(batch_group=1, sync_every=1), "fp32"),
    "fast exact": ("exact", dict(batch_group=None, sync_every=None), "auto"),
    "fast iso": ("iso", dict(batch_group=None, sync_every=None), "auto"),
}


def workloads(args) -> dict[str, list[str]]:
    """Workload name -> architectures (NB201 strings)."""
    sp = spaces.get("nb201")
    rng = random.Random(args.seed)
    every = list(sp.enumerate())
    out = {f"random{args.random_cells}": [every[rng.randrange(len(every))] for _ in range(args.random_cells)]}
    if args.subset == "none":
        return out
    subset = Path(args.subset) if args.subset else DEFAULT_SUBSET
    if subset.is_file():
        archs = [sp.parse(line.split("#")[0].strip()) for line in subset.read_text().splitlines()
                 if line.split("#")[0].strip()]
        out[f"kendall{len(archs)}" if len(archs) == 327 else subset.stem] = archs
    elif args.subset:
        raise SystemExit(f"subset file {subset} not found")
    return out


def make_data(args) -> ImageData:
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randint(0, 256, (args.images, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (args.images,), generator=g)
    return ImageData(x, y, 10, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), "random")


def time_scorer(net, data, archs, name, args, device) -> tuple[float, list[float], Scorer]:
    dedup, options, precision = SCORERS[name]
    proto = ScoreProtocol(eval_batch_size=args.eval_batch_size, dedup=dedup, precision=precision)
    scorer = Scorer(net, data, proto, device=device, progress="none", **options)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    scores = scorer.score_many(archs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, scores, scorer


def scoring_throughput(args, device: torch.device) -> list[dict]:
    """Rows of the scoring half: one per workload, plain vs fast scorers side by side."""
    torch.manual_seed(args.seed)
    net = nb201_supernet(C=args.C, N=args.N, num_classes=10).to(device).eval()
    data = make_data(args)
    loads = workloads(args)
    names = list(SCORERS)
    # warm-up: a few cells through every scorer (kernels, allocator, autocast caches)
    warm = list(loads.values())[0][:4]
    for name in names:
        time_scorer(net, data, warm, name, args, device)
    times = {(w, n): [] for w in loads for n in names}
    results: dict[tuple, tuple] = {}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for w, archs in loads.items():
            for name in order:
                t, scores, scorer = time_scorer(net, data, archs, name, args, device)
                times[(w, name)].append(t)
                results[(w, name)] = (scores, scorer.forward_passes, scorer)
    rows = []
    for w, archs in loads.items():
        plain_scores, plain_evals, _ = results[(w, "plain")]
        t_plain = statistics.median(times[(w, "plain")])
        row = {"workload": w, "archs": len(archs), "distinct": len(set(archs)),
               "plain": {"seconds": t_plain, "archs_per_s": len(archs) / t_plain, "evaluations": plain_evals}}
        for name in names[1:]:
            scores, evals, scorer = results[(w, name)]
            t = statistics.median(times[(w, name)])
            same = sum(a == b for a, b in zip(scores, plain_scores))
            row[name] = {"seconds": t, "archs_per_s": len(archs) / t, "evaluations": evals,
                         "ratio": t_plain / t, "identical": same == len(archs), "equal_share": same / len(archs),
                         "precision": scorer.protocol.precision, "batch_group": scorer.batch_group,
                         "sync_every": scorer.sync_every}
        row["functions"] = {"exact": count_functions(archs, "exact"), "iso": count_functions(archs, "iso")}
        row["times"] = {n: times[(w, n)] for n in names}
        rows.append(row)
    return rows


class PlainLoop:
    """A conventional training step, as a typical NAS code base writes it: the training images live on the host
    as uint8 numpy; each step crops (zero padding 4) and flips every image of the batch in a Python loop, stacks
    them, copies the batch to the device, normalises, runs forward/backward, clips, steps SGD and reads the loss
    back for logging (one host sync per step). fp32, default memory format."""

    def __init__(self, net: torch.nn.Module, data: ImageData, args, device: torch.device):
        import numpy as np
        self.np = np
        self.net, self.device = net, device
        self.x, self.y = data.x.numpy(), data.y
        self.mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(data.std, device=device).view(1, -1, 1, 1) * 255
        self.opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, nesterov=True, weight_decay=5e-4)
        self.rng = np.random.default_rng(args.seed)

    def step(self, idx: torch.Tensor, arch: str) -> float:
        np = self.np
        imgs = []
        for i in idx.tolist():
            im = np.pad(self.x[i], ((0, 0), (4, 4), (4, 4)))
            dy, dx = self.rng.integers(0, 9, size=2)
            im = im[:, dy:dy + 32, dx:dx + 32]
            if self.rng.random() < 0.5:
                im = im[:, :, ::-1]
            imgs.append(np.ascontiguousarray(im))
        x = torch.from_numpy(np.stack(imgs)).to(self.device).float()
        x = (x - self.mean) / self.std
        y = self.y[idx].to(self.device)
        self.opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.net(x, arch), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in self.net.parameters() if p.grad is not None], 5.0)
        self.opt.step()
        return loss.item()


def training_throughput(args, device: torch.device) -> Optional[list[dict]]:
    """Training images/s: :class:`PlainLoop` vs nshot's ``Trainer.train_step`` (the training split on the device
    as uint8, augmentation on the device, no host sync inside the step, bf16 autocast and channels_last where
    the device's defaults turn them on), the same architectures (the trainer's uniform SPOS sequence) and the
    same batches (64 images), in interleaved rounds of ``--train-steps`` steps after 3 warm-up steps each."""
    if args.train_steps < 1:
        return None
    import tempfile

    from nshot.config import load_config
    from nshot.data import epoch_batches
    from nshot.train.trainer import Trainer

    data = make_data(args)
    cfg = load_config(None, [f"device={device.type}", f"model.C={args.C}", f"model.N={args.N}", "train.epochs=1000",
                             "train.batch_size=64", "run.progress=none", f"seed={args.seed}",
                             "diagnostics.grad_momentum_cos_every=0", "diagnostics.loss_by_quintile=false"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer.create(cfg, Path(tmp) / "run", data=(data, data))
        torch.manual_seed(args.seed)
        plain = PlainLoop(nb201_supernet(C=args.C, N=args.N, num_classes=10).to(device), data, args, device)
        batches = [b for e in range(1000) for b in epoch_batches(len(data), 64, args.seed, e)]
        state = {"t": 0}

        def run(name: str, steps: int) -> None:
            for _ in range(steps):
                t = state["t"]
                state["t"] += 1
                idx = batches[t % len(batches)]
                if name == "nshot":
                    trainer.step = t
                    d = idx.to(device)
                    trainer.train_step(trainer.train_data.x[d], trainer.train_data.y[d])
                else:
                    plain.step(idx, trainer.step_plan(t)[0][0])
            if device.type == "cuda":
                torch.cuda.synchronize()

        for name in ("plain", "nshot"):   # warm-up: 3 steps each
            run(name, 3)
        ms = abba({n: (lambda n=n: run(n, args.train_steps)) for n in ("plain", "nshot")}, args.rounds, 1,
                  warmup=False)
        times = {n: [t / 1000 for t in v] for n, v in ms.items()}   # seconds per block
        rate = {n: args.train_steps * 64 / statistics.median(ts) for n, ts in times.items()}
        return [{"workload": f"SPOS steps, C={args.C} N={args.N}, batch 64", "plain": {"images_per_s": rate["plain"]},
                 "nshot": {"images_per_s": rate["nshot"], "ratio": rate["nshot"] / rate["plain"],
                           "precision": trainer.precision, "channels_last": trainer.channels_last},
                 "times": times}]


def markdown(scoring: list[dict], training: Optional[list[dict]], command: str, env: dict) -> str:
    lines = [f"Command: `{command}`", "",
             f"Device {env['device']}, torch {env['torch']}, {env['threads']} threads, {env['cpu']}; "
             f"supernet C={env['C']} N={env['N']}, {env['images']} images, eval batch {env['eval_batch_size']}, "
             f"median of {env['rounds']} rounds.", "",
             "| workload | archs | evaluations plain / exact / iso | plain archs/s | fast exact archs/s | "
             "fast exact / plain | identical scores | fast iso archs/s (approx.) | fast iso / plain |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in scoring:
        e, i = r["fast exact"], r["fast iso"]
        lines.append(f"| {r['workload']} | {r['archs']} | {r['plain']['evaluations']} / {e['evaluations']} / "
                     f"{i['evaluations']} | {r['plain']['archs_per_s']:.1f} | {e['archs_per_s']:.1f} | "
                     f"{e['ratio']:.2f}x | {'yes' if e['identical'] else 'NO'} | {i['archs_per_s']:.1f} | "
                     f"{i['ratio']:.2f}x |")
    if scoring:
        e = scoring[0]["fast exact"]
        lines += ["", f"fast scorer on this device: precision {e['precision']}, {e['batch_group']} eval batch(es) "
                      f"per forward pass, one host read per {e['sync_every']} architecture(s)."]
    if training:
        lines += ["", "| training workload | plain loop img/s | nshot img/s | nshot / plain | nshot precision, "
                      "channels_last |", "|---|---:|---:|---:|---|"]
        for r in training:
            n = r["nshot"]
            lines.append(f"| {r['workload']} | {r['plain']['images_per_s']:.1f} | {n['images_per_s']:.1f} | "
                         f"{n['ratio']:.2f}x | {n['precision']}, {n['channels_last']} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=1)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--eval-batch-size", type=int, default=256)
    ap.add_argument("--random-cells", type=int, default=100)
    ap.add_argument("--subset", help=f"subset file, or none (default {DEFAULT_SUBSET} when present)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=20, help="training steps per timed block (0: skip training)")
    ap.add_argument("--threads", type=int, help="torch threads (CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="also write the raw results here (JSON)")
    ap.add_argument("--json", dest="out", help=argparse.SUPPRESS)   # the old spelling, in recorded commands
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(), "C": args.C, "N": args.N, "images": args.images,
           "eval_batch_size": args.eval_batch_size, "rounds": args.rounds, "cpus": os.cpu_count()}
    scoring = scoring_throughput(args, device)
    training = training_throughput(args, device)
    command = command_line("throughput", argv)
    print(markdown(scoring, training, command.strip(), env))
    out = {"env": env, "command": command, "scoring": scoring, "training": training}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
