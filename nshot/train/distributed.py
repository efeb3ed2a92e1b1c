"""Data-parallel training across processes (``torchrun --nproc_per_node=N -m nshot train ...``).

Every rank builds the same supernet from the same seed and draws the same path(s) each step (the sampler is a
pure function of (seed, step), so no broadcast is needed; :func:`check_same` verifies it on the first step).
The global batch is made and augmented identically on every rank, and rank r trains on its slice
:func:`shard_slice`; after the backward pass the gradients are averaged with one all-reduce over a flat
buffer (:func:`allreduce_grads`), weighted so that the update equals the gradient of the *global* batch's mean
loss. Parameters off the path have no gradient on any rank and stay ``None`` (decision 1 holds exactly).

Why not ``torch.nn.parallel.DistributedDataParallel``: its reducer is armed by the wrapped module's
``forward``; a step that calls ``features()`` (Pi-NAS) or several paths per step (FairNAS) would need
``find_unused_parameters`` graph walks every step and a different bucket set per path. One explicit
all-reduce after the backward gives the same averaging for every objective and sampler.

BatchNorm statistics are per rank (each normalises its own slice), as in DDP without SyncBatchNorm; a
single-process run with ``train.micro_batches = N`` computes exactly what N ranks compute.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place: ``rank`` of ``world`` (1 = not distributed)."""
    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env(environ: Optional[Mapping[str, str]] = None) -> DistInfo:
    """RANK / WORLD_SIZE as torchrun sets them (both unset: one process); ValueError naming them if invalid."""
    env = os.environ if environ is None else environ
    world_text, rank_text = env.get("WORLD_SIZE"), env.get("RANK")
    if world_text is None and rank_text is None:
        return DistInfo(0, 1)
    try:
        world = int(world_text if world_text is not None else "1")
        rank = int(rank_text if rank_text is not None else "0")
    except ValueError:
        raise ValueError(f"RANK={rank_text!r} / WORLD_SIZE={world_text!r} must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} / WORLD_SIZE={world}: need WORLD_SIZE >= 1 and 0 <= RANK < WORLD_SIZE")
    return DistInfo(rank, world)


def init(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); a no-op for one process."""
    info = from_env()
    if info.enabled and not dist.is_initialized():
        if device.type == "cuda":   # collectives (all_gather_object, barrier) use the current device
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world)
    return info


def check_batches(n_images: int, batch_size: int, drop_last: bool, info: DistInfo) -> None:
    """Every rank needs at least one image of every batch (ranks with nothing to train would skip the gradient
    all-reduce): ValueError saying how to fix a configuration where the last batch is smaller than the world."""
    if not info.enabled:
        return
    last = n_images % batch_size
    smallest = batch_size if drop_last or last == 0 else last
    if smallest < info.world:
        raise ValueError(f"with {info.world} processes every batch needs at least {info.world} images; the "
                         f"{'batch size' if smallest == batch_size else 'last batch of an epoch'} has {smallest} "
                         f"({n_images} images, train.batch_size {batch_size}): set train.drop_last=true or another "
                         "batch size")


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if ``flag`` is True on any rank (one all-reduce; the flag itself on one process)."""
    if not info.enabled:
        return flag
    return bool(all_reduce_sum(torch.tensor([1.0 if flag else 0.0], device=device), info)[0] > 0)


def local_device(device: torch.device) -> torch.device:
    """On CUDA, rank r uses ``cuda:LOCAL_RANK``; on CPU the device is unchanged."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def shard_slice(n: int, rank: int, world: int) -> slice:
    """The contiguous part of a batch of ``n`` that ``rank`` trains: sizes differ by at most one, in rank order
    (the same split as ``torch.arange(n).tensor_split(world)``)."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def allreduce_grads(params: Sequence[torch.Tensor], info: DistInfo) -> None:
    """Sum the gradients of ``params`` over ranks (one flat all-reduce). Parameters whose grad is None must be
    None on every rank (all ranks train the same path)."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_gather_cat(t: torch.Tensor, info: DistInfo, sizes: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Rows of ``t`` from every rank, concatenated in rank order (ranks may hold different row counts). Pass
    every rank's row count as ``sizes`` when it is known (saves one collective and a host read)."""
    if not info.enabled:
        return t
    if sizes is None:
        n = torch.tensor([len(t)], device=t.device)
        counts = [torch.zeros_like(n) for _ in range(info.world)]
        dist.all_gather(counts, n)
        sizes = [int(s) for s in counts]
    pad = max(sizes)
    buf = torch.zeros((pad, *t.shape[1:]), dtype=t.dtype, device=t.device)
    buf[:len(t)] = t
    out = [torch.zeros_like(buf) for _ in range(info.world)]
    dist.all_gather(out, buf)
    return torch.cat([o[:s] for o, s in zip(out, sizes)])


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """``t`` summed over ranks (a copy; ``t`` itself is unchanged)."""
    if not info.enabled:
        return t
    out = t.clone()
    dist.all_reduce(out)
    return out


def check_same(values: Sequence[str], info: DistInfo) -> None:
    """Raise RuntimeError if ranks disagree on ``values`` (e.g. the paths of a step)."""
    if not info.enabled:
        return
    gathered: list = [None] * info.world
    dist.all_gather_object(gathered, list(values))
    if any(g != gathered[0] for g in gathered):
        raise RuntimeError(f"ranks disagree on the step's paths: {gathered}")


def barrier(info: DistInfo) -> None:
    """Wait for every rank (a no-op in one process)."""
    if info.enabled:
        dist.barrier()
