"""Probes on frozen features: kNN vote and ridge linear probe, against hand-computed cases."""
from __future__ import annotations

import math

import pytest
import torch

from nshot.score.probe import extract_features, knn_accuracy, knn_predict, linear_probe_accuracy, probe_accuracy


def test_knn_weighted_vote_matches_a_hand_computed_case():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    q = torch.tensor([[1.0, 0.05], [0.05, 1.0], [1.0, 1.0]])
    # k=3, T=0.1: compute the votes by hand
    def manual(v):
        bn = bank / bank.norm(dim=1, keepdim=True)
        vn = v / v.norm()
        sims = [(float(vn @ b), int(y)) for b, y in zip(bn, labels)]
        top = sorted(sims, key=lambda s: -s[0])[:3]
        votes = [0.0, 0.0, 0.0]
        for s, y in top:
            votes[y] += math.exp(s / 0.1)
        return max(range(3), key=lambda c: (votes[c], -c))
    pred = knn_predict(bank, labels, q, 3, k=3, temperature=0.1)
    assert pred.tolist() == [manual(v) for v in q] == [0, 1, 2]
    assert knn_accuracy(bank, labels, q, torch.tensor([0, 1, 1]), 3, k=3, temperature=0.1) == pytest.approx(200 / 3)
    assert knn_predict(bank, labels, q, 3, k=50).shape == (3,)      # k larger than the bank: all rows vote
    with pytest.raises(ValueError, match="empty"):
        knn_predict(bank[:0], labels[:0], q, 3)


def test_linear_probe_separates_linearly_separable_features_and_not_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    centres = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]])
    x = centres[y] + 0.3 * torch.randn(300, 3, generator=g)
    assert linear_probe_accuracy(x[:200], y[:200], x[200:], y[200:], 3) == 100.0
    noise = torch.randn(300, 3, generator=g)
    assert linear_probe_accuracy(noise[:200], y[:200], noise[200:], y[200:], 3) < 60.0
    assert probe_accuracy("knn", x[:200], y[:200], x[200:], y[200:], 3) == 100.0
    with pytest.raises(ValueError, match="unknown probe"):
        probe_accuracy("svm", x, y, x, y, 3)


def test_linear_probe_solution_is_the_ridge_least_squares_minimiser():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 2, (40,), generator=g)
    acc = linear_probe_accuracy(x, y, x, y, 2, ridge=0.0)
    # ridge 0 = ordinary least squares on [standardised x, 1]: compare with lstsq
    xs = (x.double() - x.double().mean(0)) / x.double().std(0, unbiased=False)
    d = torch.cat([xs, torch.ones(40, 1, dtype=torch.double)], 1)
    w = torch.linalg.lstsq(d, torch.nn.functional.one_hot(y, 2).double()).solution
    assert acc == pytest.approx(100.0 * float(((d @ w).argmax(1) == y).double().mean()))


def test_extract_features_concatenates_in_order():
    lin = torch.nn.Linear(3, 2)
    xs = [torch.randn(4, 3), torch.randn(2, 3)]
    out = extract_features(lin, xs)
    torch.testing.assert_close(out, lin(torch.cat(xs)).detach())


def test_scorer_probe_scores_paths_and_keys_the_cache(tmp_path, tiny_data):
    """knn/linear probes score a path from its frozen features; rows are cached per probe and bank size."""
    from nshot.config import load_config
    from nshot.score.scorer import ScoreCache, ScoreProtocol, Scorer
    from nshot.train.trainer import Trainer

    from tests.helpers import tiny_overrides

    tr = Trainer.create(load_config(None, tiny_overrides()), tmp_path / "r", data=tiny_data)
    tr.fit()
    train, evald = tiny_data
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    cache = tmp_path / "scores.csv"
    knn = Scorer(tr.model, evald, ScoreProtocol(probe="knn", probe_images=80), train_data=train, cache_path=cache)
    s = knn.score(arch)
    # by hand: batch-statistics features of the bank (first 80 training images) and the held-out images
    from nshot.data import normalize
    from nshot.score.bn import batch_stats_mode
    from nshot.score.probe import bank_indices, knn_accuracy
    with torch.no_grad(), batch_stats_mode(tr.model):
        tr.model.eval()
        idx = bank_indices(len(train), 80, 0)
        assert len(set(idx.tolist())) == 80 and idx.tolist() != list(range(80))   # a seeded sample, not the first 80
        bank = torch.cat([tr.model.features(x, arch) for x in normalize(train.x[idx], train.mean, train.std).split(256)])
        query = torch.cat([tr.model.features(x, arch) for x in normalize(evald.x, evald.mean, evald.std).split(256)])
    assert s == pytest.approx(knn_accuracy(bank, train.y[idx], query, evald.y, 4))
    lin = Scorer(tr.model, evald, ScoreProtocol(probe="linear", probe_images=80), train_data=train, cache_path=cache)
    cls = Scorer(tr.model, evald, ScoreProtocol(), train_data=train, cache_path=cache)
    lin.score(arch)
    cls.score(arch)
    keys = {k[-1] for _, _, k, _ in ScoreCache(cache).rows()}
    assert keys == {"knn:80", "linear:80", "classifier"}
    again = Scorer(tr.model, evald, ScoreProtocol(probe="knn", probe_images=80), train_data=train, cache_path=cache)
    assert again.scores[arch] == s and again.forward_passes == 0
    with pytest.raises(ValueError, match="probe_images"):
        Scorer(tr.model, evald, ScoreProtocol(probe="knn"), train_data=train)
