"""Images/s and peak memory of one SPOS training step on the NB201 supernet: nshot vs. xautodl.

One step = set the sampled path, zero the gradients, forward, cross-entropy, backward, clip the gradient
norm at 5, SGD step (lr 0.025, momentum 0.9, Nesterov, weight decay 5e-4). Each implementation does what
its own training loop does:

* nshot (``nshot.train.trainer.Trainer.train_step``): ``zero_grad(set_to_none=True)``, ``net(x, arch)``,
  ``clip_grad_norm_`` over the parameters that have a gradient.
* xautodl (``TinyNetworkRANDOM``, the random-sampling NB201 supernet the DYNAS code trains):
  ``net.arch_cache = <Structure>``, ``optimizer.zero_grad()`` (torch>=2: set_to_none=True),
  ``_, logits = net(x)``, ``clip_grad_norm_(net.parameters(), 5)``. The Structure objects are built
  before timing (DYNAS samples a Structure directly; no string parsing happens in its step).

Workloads: ``random``, a seeded sequence of cells drawn uniformly from all 15,625 (disconnected ones
included), the same sequence for both implementations; ``conv3x3``, the all-``nor_conv_3x3`` cell.

Timing protocol: both models are built in one process; every (implementation, workload) gets warm-up
steps, then ``--rounds`` rounds in which each implementation runs one block of ``--steps`` steps, the
order alternating ABBA... across rounds so that drifting machine noise hits both. Within a round both
implementations run the same cells on the same batches. Each block's process CPU time / wall time is
recorded; on CPU a round counts only if every block got at least ``--min-cpu-share`` x ``--threads``
cores (other load on the machine shows up as a lower share). Reported: median over the counted rounds of
block images/s, the min-max range, and nshot/xautodl (ratio of the medians, and median of per-round
ratios); the all-rounds medians are in the JSON.

Memory protocol: a fresh subprocess per (implementation, workload) builds model, optimizer and data, then
runs the warm-up cells and one block of cells (the same cells as the first timed round).
CPU, two figures: (1) peak RSS increase: ``VmHWM`` (reset through ``/proc/self/clear_refs`` just before the
first step; ``ru_maxrss`` would include the parent's RSS, inherited across fork+exec) minus the RSS before
the first step, with glibc's mmap threshold pinned (``MALLOC_MMAP_THRESHOLD_``) so freed tensor memory goes
back to the OS instead of staying in the heap; (2) peak live tensors: the allocator-level peak of live CPU
tensor bytes above the pre-step level, replayed from every allocation/free event torch.profiler records
(maximum over the run; the median over steps of each step's own peak above its start is also given).
Both include the gradients and SGD momentum buffers created during the steps. CUDA:
``torch.cuda.max_memory_allocated`` minus ``memory_allocated`` before the first step.

Run ``python -m benchmarks.step_speed --help`` for the flags.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import command_line, module_env
from benchmarks.timing import abba_order

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
CONV3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
IMPLS = ("nshot", "xautodl")
WORKLOADS = ("random", "conv3x3")
LR, MOMENTUM, WEIGHT_DECAY, GRAD_CLIP = 0.025, 0.9, 5e-4, 5.0
NUM_BATCHES = 4  # distinct fixed batches cycled through by step index


# -- workloads and data ---------------------------------------------------------------------------------
def nb201_string(ops) -> str:
    parts, e = [], 0
    for i in range(1, 4):
        parts.append("|" + "|".join(f"{NB201_OPS[ops[e + j]]}~{j}" for j in range(i)) + "|")
        e += i
    return "+".join(parts)


def arch_sequence(workload: str, length: int, seed: int) -> list[str]:
    """The cells of a run: index ``i`` is the cell of step ``i`` (warm-up first), for every implementation."""
    if workload == "conv3x3":
        return [CONV3X3] * length
    if workload == "random":
        rng = random.Random(seed)  # uniform over all 5**6 = 15,625 cells, disconnected included
        return [nb201_string([rng.randrange(len(NB201_OPS)) for _ in range(6)]) for _ in range(length)]
    raise ValueError(f"unknown workload {workload!r}")


def make_batches(args, device):
    g = torch.Generator().manual_seed(args.seed)
    xs = torch.randn(NUM_BATCHES, args.batch, 3, args.resolution, args.resolution, generator=g)
    ys = torch.randint(0, args.num_classes, (NUM_BATCHES, args.batch), generator=g)
    return [(xs[i].to(device).contiguous(), ys[i].to(device).contiguous()) for i in range(NUM_BATCHES)]


# -- the two implementations ----------------------------------------------------------------------------
class NshotImpl:
    name = "nshot"

    def __init__(self, args, device):
        from nshot.nn import nb201_supernet

        torch.manual_seed(args.seed)
        self.net = nb201_supernet(C=args.C, N=args.N, num_classes=args.num_classes).to(device)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.SGD(self.params, lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)
        self.net.train()

    def prepare(self, archs):
        return list(archs)  # nshot takes the NB201 string itself

    def step(self, x, y, arch):  # mirrors nshot.train.trainer.Trainer.train_step (one path, no metrics)
        self.opt.zero_grad(set_to_none=True)
        self.net.train()
        loss = F.cross_entropy(self.net(x, arch), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in self.params if p.grad is not None], GRAD_CLIP)
        self.opt.step()
        return loss


class XautodlImpl:
    name = "xautodl"

    def __init__(self, args, device):
        try:
            from xautodl.models.cell_searchs.genotypes import Structure
            from xautodl.models.cell_searchs.search_model_random import TinyNetworkRANDOM
        except ImportError as exc:
            raise SystemExit(f"xautodl is needed for the comparison: pip install --no-deps xautodl ({exc})")

        self.Structure = Structure
        torch.manual_seed(args.seed)
        # TinyNetworkRANDOM(C, N, max_nodes, num_classes, search_space, affine, track_running_stats)
        self.net = TinyNetworkRANDOM(args.C, args.N, 4, args.num_classes, list(NB201_OPS), False, False).to(device)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True,
                                   weight_decay=WEIGHT_DECAY)
        self.net.train()

    def prepare(self, archs):
        cache = {}
        return [cache.setdefault(a, self.Structure.str2structure(a)) for a in archs]

    def step(self, x, y, arch):  # mirrors the DYNAS / xautodl random-sampling search loop (no metrics)
        self.net.arch_cache = arch
        self.opt.zero_grad()
        _, logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), GRAD_CLIP)
        self.opt.step()
        return loss


def build(name, args, device):
    return {"nshot": NshotImpl, "xautodl": XautodlImpl}[name](args, device)


# -- helpers --------------------------------------------------------------------------------------------
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_block(impl, batches, archs, first_step, device):
    """Runs ``archs`` (already in the implementation's format); returns seconds."""
    sync(device)
    t0 = time.perf_counter()
    loss = None
    for i, arch in enumerate(archs):
        x, y = batches[(first_step + i) % NUM_BATCHES]
        loss = impl.step(x, y, arch)
    sync(device)
    dt = time.perf_counter() - t0
    if loss is not None and not torch.isfinite(loss.detach()).item():
        raise FloatingPointError(f"{impl.name}: non-finite loss")
    return dt


def current_rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return peak_rss_kib() is not None
    except OSError:
        return False


def peak_rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def machine_info(args, device) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        info["cpu"] = platform.processor() or "?"
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import xautodl
        info["xautodl"] = getattr(xautodl, "__version__", None) or _dist_version("xautodl")
    except ImportError:
        info["xautodl"] = None
    info["loadavg_start"] = os.getloadavg()
    return info


def _dist_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return "?"


# -- memory (one fresh process per implementation x workload) -------------------------------------------
def memory_worker(args) -> dict:
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    impl = build(args.mem_impl, args, device)
    batches = make_batches(args, device)
    archs = impl.prepare(arch_sequence(args.mem_workload, args.warmup + args.steps, args.seed))
    gc.collect()
    out = {"impl": args.mem_impl, "workload": args.mem_workload, "steps": len(archs)}
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run_block(impl, batches, archs, 0, device)
        out["peak_mib"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        out["baseline_mib"] = base / 2**20
        return out
    # CPU 1: RSS high-water mark during the steps above the RSS just before them. The kernel's mark is reset
    # first (clear_refs 5): a child inherits its parent's ru_maxrss across fork+exec, which would hide ours.
    base_rss = current_rss_kib()
    hwm_reset = reset_peak_rss()
    run_block(impl, batches, archs, 0, device)
    peak_rss = peak_rss_kib() if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    out["rss_baseline_mib"] = base_rss / 1024
    out["peak_rss_mib"] = (peak_rss - base_rss) / 1024
    out["rss_method"] = "VmHWM after clear_refs" if hwm_reset else "ru_maxrss (may include the parent's)"
    # CPU 2: allocator-level peak of live CPU tensor bytes, replayed from torch.profiler's memory events,
    # in a second fresh state (implementation rebuilt, so step 1's grad/momentum allocations are seen again).
    del impl
    gc.collect()
    impl = build(args.mem_impl, args, device)
    archs = impl.prepare(arch_sequence(args.mem_workload, args.warmup + args.steps, args.seed))
    out.update(profiler_peaks(impl, batches, archs, device))
    return out


def profiler_peaks(impl, batches, archs, device) -> dict:
    """Peak of live tensor bytes above the level before the first step, from every allocation and free
    the profiler records; also the per-step peak above the level at the step's start (median and max)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for i, arch in enumerate(archs):
            x, y = batches[i % NUM_BATCHES]
            with record_function(f"bench_step_{i}"):
                impl.step(x, y, arch)
    try:
        raw = prof.profiler.kineto_results.events()  # raw events: one per allocation / free, with nbytes
    except AttributeError:
        return {"peak_alloc_mib": None, "step_peak_alloc_mib_median": None, "step_peak_alloc_mib_max": None}
    mem = sorted((e.start_ns(), e.nbytes()) for e in raw
                 if e.name() == "[memory]" and e.device_type() == torch._C._autograd.DeviceType.CPU)
    steps = sorted((e.start_ns(), e.end_ns()) for e in raw if e.name().startswith("bench_step_"))
    live, peak, k = 0, 0, 0
    step_peaks = []
    for start, end in steps:
        while k < len(mem) and mem[k][0] < start:
            live += mem[k][1]
            peak = max(peak, live)
            k += 1
        at_start, step_peak = live, live
        while k < len(mem) and mem[k][0] <= end:
            live += mem[k][1]
            peak, step_peak = max(peak, live), max(step_peak, live)
            k += 1
        step_peaks.append((step_peak - at_start) / 2**20)
    return {"peak_alloc_mib": peak / 2**20, "step_peak_alloc_mib_median": statistics.median(step_peaks),
            "step_peak_alloc_mib_max": max(step_peaks)}


def measure_memory(args, impl_name, workload) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.step_speed", "--_mem-worker", impl_name, workload,
           "--device", args.device, "--threads", str(args.threads), "--batch", str(args.batch), "--C", str(args.C),
           "--N", str(args.N), "--num-classes", str(args.num_classes), "--resolution", str(args.resolution),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--seed", str(args.seed)]
    env = module_env()
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")  # fixed threshold: big blocks are mmap'd and returned
    env.setdefault("MALLOC_TRIM_THRESHOLD_", "131072")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"memory worker {impl_name}/{workload} failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- speed (both implementations in this process) ---------------------------------------------------------
def measure_speed(args, device, log) -> dict:
    impls = {name: build(name, args, device) for name in IMPLS}
    batches = make_batches(args, device)
    total = args.warmup + args.rounds * args.steps
    seqs = {w: arch_sequence(w, total, args.seed) for w in args.workloads}
    prepared = {(n, w): impls[n].prepare(seqs[w]) for n in IMPLS for w in args.workloads}
    results = {w: {n: [] for n in IMPLS} for w in args.workloads}
    cpu_share = {w: {n: [] for n in IMPLS} for w in args.workloads}  # process CPU s / wall s per block
    loadavg = []
    for w in args.workloads:
        for n in IMPLS:
            run_block(impls[n], batches, prepared[(n, w)][:args.warmup], 0, device)
    log(f"warm-up done ({args.warmup} steps per implementation and workload)")
    for r in range(args.rounds):
        order = abba_order(IMPLS, r)
        lo = args.warmup + r * args.steps
        for w in args.workloads:
            for n in order:
                c0 = time.process_time()
                dt = run_block(impls[n], batches, prepared[(n, w)][lo:lo + args.steps], lo, device)
                cpu_share[w][n].append((time.process_time() - c0) / dt)
                results[w][n].append(args.steps * args.batch / dt)
            log(f"round {r + 1}/{args.rounds} {w:8s} " +
                "  ".join(f"{n} {results[w][n][-1]:7.1f} img/s (cpu/wall {cpu_share[w][n][-1]:.2f})"
                          for n in IMPLS))
        loadavg.append(os.getloadavg()[0])
    params = {n: sum(p.numel() for p in impls[n].net.parameters()) for n in IMPLS}
    return {"images_per_s": results, "cpu_per_wall": cpu_share, "loadavg_per_round": loadavg, "params": params}


def summarize(speed, mem, args, device) -> dict:
    """Medians over the uncontended rounds (see ``--min-cpu-share``), falling back to all rounds."""
    rows, rounds_used = [], {}
    for w in args.workloads:
        ips, share = speed["images_per_s"][w], speed["cpu_per_wall"][w]
        n_rounds = len(ips["nshot"])
        if device.type == "cpu" and args.min_cpu_share > 0:
            floor = args.min_cpu_share * args.threads
            clean = [r for r in range(n_rounds) if all(share[n][r] >= floor for n in IMPLS)]
        else:
            clean = list(range(n_rounds))
        used = clean if clean else list(range(n_rounds))
        rounds_used[w] = {"clean_rounds": clean, "rounds_used": used, "of": n_rounds}
        sel = {n: [ips[n][r] for r in used] for n in IMPLS}
        med = {n: statistics.median(sel[n]) for n in IMPLS}
        per_round = statistics.median(a / b for a, b in zip(sel["nshot"], sel["xautodl"]))
        med_all = {n: statistics.median(ips[n]) for n in IMPLS}
        for n in IMPLS:
            row = {"workload": w, "impl": n, "median_images_per_s": med[n], "min_images_per_s": min(sel[n]),
                   "max_images_per_s": max(sel[n]), "ms_per_step": 1e3 * args.batch / med[n],
                   "rounds_used": len(used), "rounds": n_rounds, "median_images_per_s_all_rounds": med_all[n],
                   "blocks_images_per_s": ips[n], "blocks_cpu_per_wall": share[n]}
            if mem is not None:
                row["memory"] = mem[(n, w)]
            if n == "nshot":
                row["ratio_of_medians"] = med["nshot"] / med["xautodl"]
                row["median_per_round_ratio"] = per_round
                row["ratio_of_medians_all_rounds"] = med_all["nshot"] / med_all["xautodl"]
            rows.append(row)
    return {"rows": rows, "params": speed["params"], "rounds": rounds_used,
            "loadavg_per_round": speed["loadavg_per_round"]}


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def markdown(summary, args, device) -> str:
    cuda = device.type == "cuda"
    mem_cols = (("peak mem. (MiB, allocated)",) if cuda else
                ("peak RSS incr. (MiB)", "peak live tensors (MiB)", "per-step peak, median (MiB)"))
    head = ["workload", "impl", "img/s (median)", "min-max", "rounds", "ms/step", *mem_cols, "nshot/xautodl"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in summary["rows"]:
        m = r.get("memory")
        if m is None:
            memv = ["-"] * len(mem_cols)
        elif cuda:
            memv = [f"{m['peak_mib']:.1f}"]
        else:
            memv = [f"{m['peak_rss_mib']:.1f}", _fmt(m.get("peak_alloc_mib")),
                    _fmt(m.get("step_peak_alloc_mib_median"))]
        ratio = (f"{r['ratio_of_medians']:.2f}x (per-round median {r['median_per_round_ratio']:.2f}x)"
                 if "ratio_of_medians" in r else "")
        lines.append(f"| {r['workload']} | {r['impl']} | {r['median_images_per_s']:.1f} | "
                     f"{r['min_images_per_s']:.1f}-{r['max_images_per_s']:.1f} | {r['rounds_used']}/{r['rounds']} | "
                     f"{r['ms_per_step']:.1f} | "
                     + " | ".join(memv) + f" | {ratio} |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " See the module docstring for the protocol.")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--C", type=int, default=16, help="NB201 channels C (default 16)")
    p.add_argument("--N", type=int, default=5, help="cells per stage N (default 5)")
    p.add_argument("--num-classes", type=int, default=10, help="classes (default 10)")
    p.add_argument("--resolution", type=int, default=32, help="input height = width (default 32)")
    p.add_argument("--steps", type=int, default=8, help="steps per timed block (default 8)")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up steps per implementation and workload (default 3)")
    p.add_argument("--workloads", default="random,conv3x3", help="comma list of random, conv3x3 (default both)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cell sequence, data and weights (default 0)")
    p.add_argument("--min-cpu-share", type=float, default=0.9,
                   help="CPU: a round counts only if every block got at least this fraction of --threads cores "
                        "(process CPU time / wall time), i.e. no other load stole a core; 0 keeps all rounds "
                        "(default 0.9; all rounds are used if none qualifies)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark=True (both)")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--_mem-worker", nargs=2, metavar=("IMPL", "WORKLOAD"), dest="mem_worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in args.workloads if w not in WORKLOADS]
    if bad or not args.workloads:
        p.error(f"--workloads: unknown {bad}; choose from {', '.join(WORKLOADS)}")
    if min(args.steps, args.rounds, args.batch, args.C, args.N, args.threads) < 1 or args.warmup < 0:
        p.error("--steps, --rounds, --batch, --C, --N, --threads must be >= 1 and --warmup >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.mem_worker:
        args.mem_impl, args.mem_workload = args.mem_worker
        print(json.dumps(memory_worker(args)))
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda given but torch.cuda.is_available() is False")
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    info = machine_info(args, device)
    log(f"torch {info['torch']}, {info['threads']} threads, device {device}, load {info['loadavg_start']}")
    t0 = time.perf_counter()
    speed = measure_speed(args, device, log)
    mem = None
    if not args.no_memory:
        mem = {}
        for w in args.workloads:
            for n in IMPLS:
                mem[(n, w)] = measure_memory(args, n, w)
                log(f"memory {n}/{w}: {mem[(n, w)]}")
    info["loadavg_end"] = os.getloadavg()
    info["seconds"] = time.perf_counter() - t0
    summary = summarize(speed, mem, args, device)
    table = markdown(summary, args, device)
    print(table)
    print(f"\nparameters: nshot {summary['params']['nshot']:,}, xautodl {summary['params']['xautodl']:,}; "
          f"load average start {info['loadavg_start']}, end {info['loadavg_end']}; {info['seconds']:.0f} s")
    if args.out:
        cfg = {k: v for k, v in vars(args).items() if k not in ("mem_worker", "out")}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"config": cfg, "machine": info, "command": command_line("step_speed", argv),
                                              **summary}, indent=1))


if __name__ == "__main__":
    main()
