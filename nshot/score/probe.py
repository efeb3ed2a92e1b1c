"""Cheap labelled probes on frozen supernet features (Pi-NAS, decision 12): a path is scored by how well its
pooled features separate the classes, not by a classifier head that label-free training never trained.

- :func:`knn_accuracy`: weighted k-nearest-neighbour vote (cosine similarity, weights exp(sim / T)) of each
  held-out image among the features of a labelled *bank* of training images.
- :func:`linear_probe_accuracy`: a least-squares (ridge) linear classifier fitted in closed form on the bank's
  standardised features: deterministic, one solve per path, no hyper-parameter schedule.

Probes are registered by name in :data:`PROBES` (``@PROBES.register("name")`` on a function
``predict(bank, bank_labels, query, num_classes) -> classes``, here or in its own file of ``nshot/score/``
imported by ``nshot/score/__init__.py``); ``--probe`` and the scorer accept every registered name.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from ..registry import Registry

PROBES = Registry("probe")


def bank_indices(n: int, k: int, seed: int) -> torch.Tensor:
    """The probe bank: ``k`` of ``n`` training images, a seeded uniform sample (ascending indices), so it mixes
    the classes whatever the order of the split."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=g)[:min(k, n)].sort().values


@torch.no_grad()
def extract_features(features: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """Concatenated float32 features of ``batches`` (normalised images) through ``features(x)``."""
    return torch.cat([features(x).float() for x in batches])


@PROBES.register("knn")
@torch.no_grad()
def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor, num_classes: int, k: int = 20,
                temperature: float = 0.07, chunk: int = 1024) -> torch.Tensor:
    """Predicted class of every ``query`` row: the k most cosine-similar bank rows vote with weight
    exp(similarity / temperature); ties go to the lower class index."""
    if len(bank) == 0:
        raise ValueError("the kNN bank is empty")
    bank = F.normalize(bank.float(), dim=1)
    k = min(k, len(bank))
    preds = []
    for q in query.float().split(chunk):
        sim = F.normalize(q, dim=1) @ bank.t()
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(q), num_classes, device=q.device)
        votes.scatter_add_(1, bank_labels[idx], torch.exp(top / temperature))
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def knn_accuracy(bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor, query_labels: torch.Tensor,
                 num_classes: int, k: int = 20, temperature: float = 0.07) -> float:
    """Top-1 accuracy (%) of :func:`knn_predict` on ``query``."""
    pred = knn_predict(bank, bank_labels, query, num_classes, k, temperature)
    return 100.0 * float((pred == query_labels).float().mean())


@PROBES.register("linear")
@torch.no_grad()
def linear_probe_predict(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, num_classes: int,
                         ridge: float = 1e-3) -> torch.Tensor:
    """Predicted classes of ``test_f`` by a ridge least-squares linear classifier (with bias) fitted on the
    standardised ``train_f``: W = argmin |[X 1] W - onehot(y)|^2 + ridge * n * |W|^2, solved in float64."""
    x = train_f.double()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-8)
    design = torch.cat([(x - mean) / std, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], 1)
    target = F.one_hot(train_y, num_classes).double()
    reg = ridge * len(x) * torch.eye(design.shape[1], dtype=x.dtype, device=x.device)
    reg[-1, -1] = 0.0                                                      # the bias is not penalised
    w = torch.linalg.solve(design.t() @ design + reg, design.t() @ target)
    t = torch.cat([(test_f.double() - mean) / std, torch.ones(len(test_f), 1, dtype=x.dtype, device=x.device)], 1)
    return (t @ w).argmax(1)


def linear_probe_accuracy(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, test_y: torch.Tensor,
                          num_classes: int, ridge: float = 1e-3) -> float:
    """Top-1 accuracy (%) of :func:`linear_probe_predict` on ``test_f``."""
    pred = linear_probe_predict(train_f, train_y, test_f, num_classes, ridge)
    return 100.0 * float((pred == test_y).double().mean())


def probe_predict(probe: str, bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor,
                  num_classes: int) -> torch.Tensor:
    """Predicted classes of ``query`` by the named probe (``knn``, ``linear``, ...) fitted on the bank."""
    return PROBES.get(probe)(bank, bank_labels, query, num_classes)


def probe_accuracy(probe: str, bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor,
                   query_labels: torch.Tensor, num_classes: int) -> float:
    """Accuracy (%) of the named probe (``knn`` or ``linear``)."""
    pred = probe_predict(probe, bank, bank_labels, query, num_classes)
    return 100.0 * float((pred == query_labels).double().mean())

