"""Score many architectures with a trained supernet on a held-out split, with a cache in the run directory.

``scores.csv`` holds one row per (architecture, protocol); a scorer re-uses rows whose protocol matches, so
ranking and search never evaluate an architecture twice, and an interrupted scoring resumes from the cache.

Cheap scoring of thousands of subnets (docs/scoring.md):

* **dedup** (``ScoreProtocol.dedup``): ``exact`` (default) evaluates one cell per supernet function (cells that
  differ only on non-live edges run the same computation, so they share a score exactly); ``iso`` one cell per
  isomorphism class of the space (NB201's; an approximation for a supernet, keyed apart in the cache); ``none``
  every string.
  Each row of ``scores.csv`` names its ``representative``: the architecture whose forward pass gave the number.
* **batching**: ``batch_group`` protocol batches go through the network as one forward pass; in batch-statistics
  mode every BN still normalises each protocol batch with its own statistics (:func:`grouped_batch_stats`), so
  the numbers are those of the protocol batch size. Correct counts stay on the device; the host reads them once
  per ``sync_every`` architectures.
* **precision** ``bf16`` (autocast, CUDA default) is part of the cache key; the ``channels_last`` memory format
  (default on every device: forward passes only) changes values by float rounding alone and is not.
* **probe** (``ScoreProtocol.probe``): ``classifier`` (the supernet's own head) or, for supernets trained without
  labels (Pi-NAS), ``knn`` / ``linear`` on the path's frozen features of ``probe_images`` training images (a
  seeded sample) (:mod:`nshot.score.probe`), or ``shared-linear``: one linear head trained once for all paths
  (:mod:`nshot.score.shared_head`, passed in as ``head``); part of the cache key.
* **sharding**: with ``world > 1`` the scorer evaluates only its rank's share (:meth:`Scorer.score_shard`)
  into its own part file; rank 0 merges the parts (:meth:`Scorer.gather`).
"""
from __future__ import annotations

import csv
import io
import os
import time
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import torch

from ..data import ImageData, epoch_batches, eval_input, normalize
from ..registry import ChainChoices
from ..run import atomic_write_bytes
from ..train.progress import Progress
from .bn import batch_stats_mode, grouped_batch_stats, recalibrate, running_stats_mode
from .dedup import DEDUP_MODES, Deduper
from .probe import PROBES, bank_indices, extract_features, probe_predict
from .shard import shard

BN_MODES = ("batch", "recal")
PRECISIONS = ("fp32", "bf16")
FLUSH_SECONDS = 2.0   # scores are appended to the cache at least this often (and every flush_every archs)
_KEY_FIELDS = ["bn_mode", "recal_batches", "eval_images", "step", "seed", "equivalence", "precision", "probe"]
_OLD_FIELDS = ["arch", "score", "bn_mode", "recal_batches", "eval_images", "step", "seed"]   # before dedup
_FIELDS_NO_PROBE = ["arch", "score", *_KEY_FIELDS[:-1], "representative"]                    # before probes
_FIELDS = ["arch", "score", *_KEY_FIELDS, "representative"]
PROBE_MODES = ChainChoices(("classifier",), PROBES, ("shared-linear",))   # the registered probes, read when used
AUTO_PHYSICAL_BATCH = 2048   # images per forward pass that batch_group=None aims at on CUDA
AUTO_SYNC_EVERY = 32         # architectures per host sync that sync_every=None gives on CUDA

Key = tuple   # (bn_mode, recal_batches, eval_images, step, seed, equivalence, precision)
Row = tuple   # (arch, score, key, representative)


@dataclass(frozen=True)
class ScoreProtocol:
    """How a score is measured. ``bn_mode``: ``batch`` (batch statistics) or ``recal`` (running statistics
    re-estimated per architecture on ``recal_batches`` training batches of ``recal_batch_size``).
    ``dedup``: ``exact``, ``iso`` or ``none`` (see :mod:`nshot.score.dedup`); ``precision``: ``fp32``,
    ``bf16`` (autocast) or ``auto`` (bf16 on a CUDA device that supports it, else fp32; resolved by the
    scorer)."""
    bn_mode: str = "batch"
    recal_batches: int = 0
    recal_batch_size: int = 256
    eval_batch_size: int = 256
    eval_images: int = 0          # how many held-out images were used (filled in by the scorer)
    step: int = 0                 # checkpoint step of the supernet
    seed: int = 0
    dedup: str = "exact"
    precision: str = "fp32"
    probe: str = "classifier"     # or knn / linear on frozen features (nshot.score.probe)
    probe_images: int = 0         # labelled training images in the probe's bank (the first ones of the split)
    probe_tag: str = ""           # shared-linear: the head's settings (SharedHeadSpec.tag), its cache key

    @property
    def probe_key(self) -> str:
        if self.probe == "shared-linear":
            return self.probe_tag
        return "classifier" if self.probe == "classifier" else f"{self.probe}:{int(self.probe_images)}"

    @property
    def equivalence(self) -> str:
        """What a cached number stands for: ``exact`` (a measurement of this function: dedup ``none`` and
        ``exact`` give identical numbers and share rows) or ``iso`` (the isomorphism class's representative)."""
        return "iso" if self.dedup == "iso" else "exact"

    def key(self) -> Key:
        return (self.bn_mode, int(self.recal_batches), int(self.eval_images), int(self.step), int(self.seed),
                self.equivalence, self.precision, self.probe_key)

    def measurement_key(self) -> Key:
        """The key of the exact measurements this protocol's scores are made of."""
        return self.key()[:5] + ("exact", self.precision, self.probe_key)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on a CUDA device with bf16 support, else ``fp32``; others are checked."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is invalid: expected auto or one of {', '.join(PRECISIONS)}")
    return precision


class ScoreCache:
    """Append-only CSV of scores; rows of other protocols are kept but ignored.

    ``write_path`` (default: ``path``) is where new rows go: a rank of a sharded scoring writes its own part
    file ``scores.part-r<rank>.csv``; reads always cover ``path`` and every part file next to it. Files written
    before dedup existed (7 columns) are read as exact fp32 measurements and rewritten in the new layout at
    the first append.
    """

    def __init__(self, path: Optional[Union[str, Path]], write_path: Optional[Union[str, Path]] = None):
        self.path = Path(path) if path is not None else None
        self.write_path = Path(write_path) if write_path is not None else self.path

    def part_path(self, rank: int) -> Path:
        assert self.path is not None
        return self.path.with_name(f"{self.path.stem}.part-r{rank}{self.path.suffix}")

    def parts(self) -> list[Path]:
        if self.path is None:
            return []
        return sorted(self.path.parent.glob(f"{self.path.stem}.part-r*{self.path.suffix}"))

    @staticmethod
    def read_rows(path: Path) -> list[Row]:
        """Rows of one file; a torn last line (a crash mid-write) is ignored, any other bad row refused."""
        if not path.exists():
            return []
        text = path.read_text()
        if not text:
            return []
        torn = not text.endswith("\n")
        records = [r for r in csv.reader(io.StringIO(text)) if r]
        if torn:
            records.pop()
        if not records:
            return []
        header, body = records[0], records[1:]
        if header not in (_FIELDS, _FIELDS_NO_PROBE, _OLD_FIELDS):
            raise ValueError(f"{path}: unexpected columns {header}, expected {_FIELDS}")
        old = header == _OLD_FIELDS
        out: list[Row] = []
        for line, rec in enumerate(body, start=2):
            try:
                if len(rec) != len(header):
                    raise ValueError
                if old:
                    rec = rec + ["exact", "fp32", "classifier", rec[0]]
                elif header == _FIELDS_NO_PROBE:
                    rec = rec[:9] + ["classifier", rec[9]]
                key = (rec[2], int(rec[3]), int(rec[4]), int(rec[5]), int(rec[6]), rec[7], rec[8], rec[9])
                out.append((rec[0], float(rec[1]), key, rec[10]))
            except (TypeError, ValueError):
                if line == len(records):   # a torn last line from a crash: ignore it
                    break
                raise ValueError(f"{path}, line {line}: malformed row {rec}") from None
        return out

    def rows(self) -> list[Row]:
        """Rows of the main file, then of every part file."""
        if self.path is None:
            return []
        out = self.read_rows(self.path)
        for part in self.parts():
            out.extend(self.read_rows(part))
        return out

    def load(self, protocol: ScoreProtocol) -> dict[str, float]:
        """arch -> score of the rows of ``protocol`` (first row wins)."""
        key = protocol.key()
        out: dict[str, float] = {}
        for arch, score, k, _ in self.rows():
            if k == key:
                out.setdefault(arch, score)
        return out

    @staticmethod
    def _encode(rows: Sequence[Row]) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for arch, score, key, rep in rows:
            w.writerow([arch, repr(float(score)), *key, rep])
        return buf.getvalue()

    def _header(self) -> str:
        return ",".join(_FIELDS) + "\n"

    def append(self, rows: Sequence[Row]) -> None:
        """Append ``rows`` to ``write_path`` (fsynced). A torn last line is cut off first; a file in the
        old 7-column layout is rewritten in the new one."""
        if self.write_path is None or not rows:
            return
        path = self.write_path
        if path.exists() and path.stat().st_size > 0:
            with open(path, "rb") as f:
                head = f.readline().decode().strip()
            if head.split(",") in (_OLD_FIELDS, _FIELDS_NO_PROBE):
                atomic_write_bytes(path, (self._header() + self._encode(self.read_rows(path))).encode())
            with open(path, "r+b") as f:              # cut a torn last line (no newline at the end)
                data = f.read()
                if data and not data.endswith(b"\n"):
                    f.truncate(data.rfind(b"\n") + 1)
        new = not path.exists() or path.stat().st_size == 0
        with open(path, "a", newline="") as f:
            f.write((self._header() if new else "") + self._encode(rows))
            f.flush()
            os.fsync(f.fileno())

    def merge_parts(self) -> int:
        """Fold every part file into the main file (rows already there are not repeated) and delete the parts.
        Returns how many rows were added."""
        parts = self.parts()
        if self.path is None or not parts:
            return 0
        main = self.read_rows(self.path)
        seen = {(r[0], r[2]) for r in main}
        added: list[Row] = []
        for part in parts:
            for r in self.read_rows(part):
                if (r[0], r[2]) not in seen:
                    seen.add((r[0], r[2]))
                    added.append(r)
        atomic_write_bytes(self.path, (self._header() + self._encode(main + added)).encode())
        for part in parts:
            part.unlink()
        return len(added)


class Scorer:
    """Top-1 accuracy (%) of architectures on ``eval_data`` with the supernet's shared weights.

    Deterministic for a given protocol: evaluation batches are in order, re-calibration batches are drawn
    from ``train_data`` with ``protocol.seed`` (the same batches for every architecture).

    Execution options (they do not change what a score means): ``batch_group`` protocol batches per forward
    pass (None: 1 on CPU, about ``AUTO_PHYSICAL_BATCH`` images on CUDA); ``sync_every`` architectures per host
    read of the correct counts (None: 1 on CPU, ``AUTO_SYNC_EVERY`` on CUDA); ``channels_last`` memory format
    (None: on; scoring is forward-only, 1.5x faster on CPU, see docs/scoring.md; the weights are converted
    back afterwards); ``arch_batch`` architectures per forward pass (None: 1; > 1 runs every candidate op with
    per-architecture path weights, :mod:`nshot.nn.weighted`: the same scores); ``rank``/``world`` for sharded
    scoring.
    """

    def __init__(self, model: torch.nn.Module, eval_data: ImageData, protocol: ScoreProtocol = ScoreProtocol(),
                 train_data: Optional[ImageData] = None, cache_path: Optional[Union[str, Path]] = None,
                 device: Optional[torch.device] = None, progress: str = "auto", *,
                 batch_group: Optional[int] = None, sync_every: Optional[int] = None,
                 channels_last: Optional[bool] = None, arch_batch: Optional[int] = None,
                 rank: int = 0, world: int = 1, head: Optional[torch.nn.Module] = None):
        if protocol.bn_mode not in BN_MODES:
            raise ValueError(f"bn mode {protocol.bn_mode!r} is invalid: expected one of {', '.join(BN_MODES)}")
        if protocol.bn_mode == "recal" and (train_data is None or protocol.recal_batches < 1):
            raise ValueError("bn mode 'recal' needs training data and recal_batches >= 1")
        if protocol.probe not in PROBE_MODES:
            raise ValueError(f"probe {protocol.probe!r} is invalid: expected one of {', '.join(PROBE_MODES)}")
        if protocol.probe in PROBES and (train_data is None or protocol.probe_images < 1):
            raise ValueError(f"probe {protocol.probe!r} needs labelled training data and probe_images >= 1")
        if (protocol.probe == "shared-linear") != (head is not None) or (head is not None and not protocol.probe_tag):
            raise ValueError("probe 'shared-linear' needs its trained head and the head's probe_tag (and only it "
                             "takes a head): see nshot.score.shared_head")
        self.head = head.to(device if device is not None else next(model.parameters()).device) \
            if head is not None else None
        self.head_record: dict = {}   # how the shared head was obtained (filled in by make_scorer)
        if protocol.dedup not in DEDUP_MODES:
            raise ValueError(f"dedup mode {protocol.dedup!r} is invalid: expected one of {', '.join(DEDUP_MODES)}")
        for name, v in (("batch_group", batch_group), ("sync_every", sync_every), ("arch_batch", arch_batch)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in 0..{world - 1}")
        if world > 1 and cache_path is None:
            raise ValueError("sharded scoring (world > 1) exchanges scores through files: give a cache_path")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        precision = resolve_precision(protocol.precision, self.device)
        self.protocol = ScoreProtocol(**{**asdict(protocol), "eval_images": len(eval_data), "precision": precision})
        self.progress = progress
        cuda = self.device.type == "cuda"
        self.batch_group = batch_group or (max(1, AUTO_PHYSICAL_BATCH // protocol.eval_batch_size) if cuda else 1)
        self.sync_every = sync_every or (AUTO_SYNC_EVERY if cuda else 1)
        # several architectures per forward pass (per-sample path weights, BN statistics per architecture and
        # protocol batch): batch-statistics scoring with the classifier, on a supernet with a weighted forward
        self.arch_batch = arch_batch or 1
        if self.arch_batch > 1 and not (protocol.bn_mode == "batch" and protocol.probe == "classifier"
                                        and hasattr(model, "forward_weighted")):
            raise ValueError("arch_batch > 1 needs bn mode 'batch', the classifier probe and a supernet with a "
                             "weighted forward (NB201, macro, proxyless; not a few-shot run)")
        self.sync_every = max(self.sync_every, self.arch_batch)
        self.channels_last = True if channels_last is None else bool(channels_last)
        self.rank, self.world = rank, world
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        size = eval_data.x.shape[-1]   # training images stored larger (image folders) are centre-cropped to it
        x = normalize(eval_data.x.to(self.device), eval_data.mean, eval_data.std).contiguous(memory_format=fmt)
        y = eval_data.y.to(self.device)
        self._batches = self._physical_batches(x, y, protocol.eval_batch_size, self.batch_group)
        self._recal: list[torch.Tensor] = []
        if protocol.bn_mode == "recal":
            assert train_data is not None
            idx = list(epoch_batches(len(train_data), protocol.recal_batch_size, protocol.seed, 0, drop_last=True))
            if len(idx) < protocol.recal_batches:
                raise ValueError(f"recal_batches={protocol.recal_batches} batches of {protocol.recal_batch_size} "
                                 f"need {protocol.recal_batches * protocol.recal_batch_size} training images, "
                                 f"have {len(train_data)}")
            self._recal = [eval_input(train_data.x[i].to(self.device), train_data.mean, train_data.std, size)
                           .contiguous(memory_format=fmt) for i in idx[:protocol.recal_batches]]
        self._bank: list[tuple] = []
        if protocol.probe in PROBES:   # the probe's labelled bank: a seeded sample of training images
            assert train_data is not None
            idx = bank_indices(len(train_data), protocol.probe_images, protocol.seed)
            self.protocol = replace(self.protocol, probe_images=len(idx))
            xb = eval_input(train_data.x[idx].to(self.device), train_data.mean, train_data.std, size)
            self._bank = self._physical_batches(xb.contiguous(memory_format=fmt), train_data.y[idx].to(self.device),
                                                protocol.eval_batch_size, self.batch_group)
            self.num_classes = eval_data.num_classes
        self.dedup = Deduper(self.protocol.dedup, self.model)
        self.cache = ScoreCache(cache_path)
        if world > 1 and cache_path is not None:
            self.cache.write_path = self.cache.part_path(rank)
        self.forward_passes = 0   # architectures actually evaluated by this scorer
        self._load()

    @staticmethod
    def _physical_batches(x: torch.Tensor, y: torch.Tensor, size: int, group: int) -> list[tuple]:
        """Protocol batches of ``size`` (the last may be short), ``group`` full ones per forward pass."""
        n = len(y)
        full = n // size * size
        step = size * group
        out = [(x[i:min(i + step, full)], y[i:min(i + step, full)]) for i in range(0, full, step)]
        if full < n:
            out.append((x[full:], y[full:]))
        return out

    def _load(self) -> None:
        """Scores of this protocol, and the exact measurements by supernet function, from the cache."""
        key, mkey = self.protocol.key(), self.protocol.measurement_key()
        self.scores: dict[str, float] = {}
        self._measured: dict[str, float] = {}
        for arch, score, k, _ in self.cache.rows():
            if k == key:
                self.scores.setdefault(arch, score)
            if k == mkey:
                self._measured.setdefault(self.dedup.function_key(arch), score)

    # -- evaluation ------------------------------------------------------------------------------------------
    def _autocast(self):
        if self.protocol.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    @contextmanager
    def _scoring_mode(self) -> Iterator[None]:
        """BN mode of the protocol (and grouped statistics, memory format) for a block of evaluations."""
        with ExitStack() as stack:
            if self.protocol.bn_mode == "recal":
                stack.enter_context(running_stats_mode(self.model))
            else:
                stack.enter_context(batch_stats_mode(self.model))   # even a supernet that tracks running stats
                if self.batch_group > 1 and self.arch_batch == 1:   # (a weighted forward groups its own)
                    stack.enter_context(grouped_batch_stats(self.model, self.protocol.eval_batch_size))
            if self.channels_last:
                self.model.to(memory_format=torch.channels_last)
                stack.callback(self.model.to, memory_format=torch.contiguous_format)
            self.model.eval()
            yield

    @torch.no_grad()
    def _count_correct(self, arch: str) -> torch.Tensor:
        """Correct predictions of ``arch`` on the held-out images, as a device tensor (no host sync)."""
        self.forward_passes += 1
        with self._autocast():
            if self.protocol.bn_mode == "recal":
                recalibrate(self.model, self._recal, arch)
                self.model.eval()
            if self._bank:
                return self._probe_correct(arch)
            correct = torch.zeros((), dtype=torch.long, device=self.device)
            for x, y in self._batches:
                if self.head is not None:   # shared-linear: the one head on this path's frozen features
                    correct += (self.head(self.model.features(x, arch)).argmax(1) == y).sum()
                else:
                    correct += (self.model(x, arch).argmax(1) == y).sum()
        return correct

    def _probe_correct(self, arch: str) -> torch.Tensor:
        """Correct predictions of the protocol's probe on ``arch``'s frozen features of the held-out images."""
        features = lambda x: self.model.features(x, arch)   # noqa: E731
        bank = extract_features(features, [x for x, _ in self._bank])
        query = extract_features(features, [x for x, _ in self._batches])
        pred = probe_predict(self.protocol.probe, bank, torch.cat([y for _, y in self._bank]), query,
                             self.num_classes)
        return (pred == torch.cat([y for _, y in self._batches])).sum()

    def _accuracy(self, correct: int) -> float:
        return 100.0 * int(correct) / max(self.protocol.eval_images, 1)

    def _evaluate(self, arch: str) -> float:
        """Score of one architecture (one host sync)."""
        return self._accuracy(int(self._count_correct(arch)))

    @torch.no_grad()
    def _count_correct_weighted(self, archs: Sequence[str]) -> torch.Tensor:
        """Correct predictions of each of ``archs`` (A,) from forward passes that hold all of them: the images
        repeated per architecture, each block run with its path weights, BN statistics per architecture and
        protocol batch, so every count is the one :meth:`_count_correct` gives."""
        self.forward_passes += len(archs)
        a = len(archs)
        w = torch.tensor([self.model.path_weights(x) for x in archs], dtype=torch.float32, device=self.device)
        correct = torch.zeros(a, dtype=torch.long, device=self.device)
        with self._autocast():
            for x, y in self._batches:
                n = len(y)
                logits = self.model.forward_weighted(torch.cat([x] * a), w,
                                                     stats_batch=min(self.protocol.eval_batch_size, n))
                correct += (logits.argmax(1).view(a, n) == y).sum(1)
        return correct

    def _evaluate_many(self, archs: Sequence[str]) -> list[float]:
        """Scores of several architectures with one host sync."""
        if self.arch_batch > 1:
            counts = torch.cat([self._count_correct_weighted(archs[i:i + self.arch_batch])
                                for i in range(0, len(archs), self.arch_batch)]).tolist()
            return [self._accuracy(c) for c in counts]
        if len(archs) == 1:
            return [self._evaluate(archs[0])]
        counts = torch.stack([self._count_correct(a) for a in archs]).tolist()
        return [self._accuracy(c) for c in counts]

    # -- public ----------------------------------------------------------------------------------------------
    def score(self, arch: str) -> float:
        """Score of one architecture (cached)."""
        return self.score_many([arch])[0]

    def representative(self, arch: str) -> str:
        """The architecture whose evaluation gives ``arch`` its score under this protocol's dedup mode."""
        return self.dedup.representative(arch)

    def evaluations_needed(self, archs: Iterable[str]) -> int:
        """Distinct evaluations ``archs`` need under the dedup mode (cached or not)."""
        return len(self.dedup.groups(archs))

    def score_many(self, archs: Iterable[str], flush_every: int = 50) -> list[float]:
        """Scores of ``archs`` in order; only architectures whose function is not in the cache are evaluated.

        New scores reach ``scores.csv`` every ``flush_every`` architectures or :data:`FLUSH_SECONDS`, whichever
        comes first, so a killed scoring loses at most that much work.
        """
        archs = list(archs)
        todo = [a for a in dict.fromkeys(archs) if a not in self.scores]
        if todo:
            groups = self.dedup.groups(todo)
            bar = Progress(len(todo), mode=self.progress if len(todo) > 1 else "none", desc="score",
                           log_every=max(1, len(todo) // 10))
            pending: list[Row] = []
            self._last_flush = time.monotonic()
            try:
                for m in [m for m in groups if m in self._measured]:
                    pending.extend(self._rows(m, self._measured[m], groups[m], new=False))
                pending = self._flush(pending, flush_every, bar)
                to_eval = [m for m in groups if m not in self._measured]
                if to_eval:
                    with self._scoring_mode():
                        for i in range(0, len(to_eval), self.sync_every):
                            chunk = to_eval[i:i + self.sync_every]
                            for m, s in zip(chunk, self._evaluate_many(chunk)):
                                pending.extend(self._rows(m, s, groups[m], new=True))
                            pending = self._flush(pending, flush_every, bar)
            finally:
                self._flush(pending, 1, bar)
                bar.close()
        return [self.scores[a] for a in archs]

    def _rows(self, measured: str, score: float, members: list[str], new: bool) -> list[Row]:
        """Cache rows for ``members`` that take ``score``, plus the measurement itself in iso mode."""
        key = self.protocol.key()
        rows = [(a, score, key, self.dedup.representative(a)) for a in members]
        if new and self.protocol.equivalence != "exact":
            rows.append((measured, score, self.protocol.measurement_key(), measured))
        return rows

    def _flush(self, pending: list[Row], every: int, bar: Progress) -> list[Row]:
        if pending and (len(pending) >= every or time.monotonic() - self._last_flush >= FLUSH_SECONDS):
            self._last_flush = time.monotonic()
            key, mkey = self.protocol.key(), self.protocol.measurement_key()
            for arch, s, k, _ in pending:
                if k == key:
                    self.scores[arch] = s
                if k == mkey:
                    self._measured.setdefault(self.dedup.function_key(arch), s)
            self.cache.append(pending)
            bar.update(sum(1 for r in pending if r[2] == key))
            return []
        return pending

    # -- sharding --------------------------------------------------------------------------------------------
    def my_share(self, archs: Iterable[str]) -> list[str]:
        """The architectures of ``archs`` this rank evaluates: the distinct evaluations are sharded (balanced by
        count, and by the space's ``evaluation_cost`` where it has one: NB201's live FLOPs) over ``world`` ranks, and each rank takes the archs of its
        evaluations. Every rank computes the same split from the same list, whatever the cache holds."""
        groups = self.dedup.groups(archs)
        keys = list(groups)
        cost = None
        if self.dedup.space is not None:
            cost = [self.dedup.space.evaluation_cost(m) for m in keys]
            if any(c is None for c in cost):   # a space without costs: balanced by count
                cost = None
        return [a for m in shard(keys, self.rank, self.world, cost) for a in groups[m]]

    def score_shard(self, archs: Iterable[str]) -> int:
        """Evaluate this rank's share of ``archs`` (written to its part file); returns the evaluations made."""
        before = self.forward_passes
        self.score_many(self.my_share(archs))
        return self.forward_passes - before

    def gather(self) -> int:
        """Rank 0, after every rank finished its shard: merge all part files into ``scores.csv``, reload, and
        write to the main file from now on. Returns the rows added."""
        added = self.cache.merge_parts()
        self.cache.write_path = self.cache.path
        self._load()
        return added


__all__ = ["BN_MODES", "PRECISIONS", "PROBE_MODES", "ScoreCache", "ScoreProtocol", "Scorer", "resolve_precision"]
