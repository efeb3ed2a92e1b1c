"""Gradient matching: distances, balanced min-intra partition, edge choice, and its cost."""
import numpy as np
import pytest
import torch
from torch import nn

from nshot import spaces
from nshot.spaces.base import SearchSpace
from nshot.train.gradmatch import best_partition, choose_split, cosine_distance_matrix, gm_distances
from nshot.train.partition import full_mask


class ToySpace(SearchSpace):
    """Two decisions of three choices, written as a 2-digit string."""
    name = "toy"
    choices = (("a", "b", "c"), ("a", "b", "c"))

    def parse(self, text):
        if len(text) != 2 or any(ch not in "012" for ch in text):
            raise ValueError(text)
        return text

    def decode(self, arch):
        return tuple(int(ch) for ch in arch)

    def encode(self, choice):
        return "".join(str(c) for c in self._check_choice(choice))

    def num_params(self, arch, **kw):
        return 1

    def flops(self, arch, **kw):
        return 1


class Toy(nn.Module):
    """Decision 0: ops a and b scale the shared layer by +1, op c by -1 (opposite gradients at W = 0).
    Decision 1: all three ops are the identity (identical gradients)."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Linear(4, 3, bias=False)
        nn.init.zeros_(self.shared.weight)
        self.edges = nn.ModuleList([nn.ModuleDict({k: nn.Linear(1, 1) for k in "abc"}) for _ in range(2)])
        self.calls = 0

    def forward(self, x, arch):
        self.calls += 1
        sign = (1.0, 1.0, -1.0)[int(arch[0])]
        return sign * self.shared(x)


def _batches(n):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(n)]


def test_distances_of_identical_and_opposite_gradients():
    sp, model = ToySpace(), Toy()
    d0 = gm_distances(model, sp, full_mask(sp), 0, _batches(3), np.random.default_rng(0))
    np.testing.assert_allclose(d0, [[0, 0, 2], [0, 0, 2], [2, 2, 0]], atol=1e-5)
    d1 = gm_distances(model, sp, full_mask(sp), 1, _batches(3), np.random.default_rng(0))
    np.testing.assert_allclose(d1, np.zeros((3, 3)), atol=1e-5)


def test_choose_split_groups_agreeing_ops_and_picks_the_disagreeing_edge():
    sp, model = ToySpace(), Toy()
    batches = _batches(4)
    out = choose_split(model, sp, full_mask(sp), [0, 1], lambda i: batches[i], 4, np.random.default_rng(0))
    assert out["decision"] == 0
    assert sorted(map(sorted, out["groups"])) == [[0, 1], [2]]
    assert out["candidates"][0]["cross"] == pytest.approx(4.0, abs=1e-4)
    assert out["candidates"][1]["cross"] == pytest.approx(0.0, abs=1e-4)


def test_cost_is_linear_in_batches_and_candidate_edges():
    sp = ToySpace()
    for R in (1, 2, 5):
        for cands in ([0], [0, 1]):
            model = Toy()
            batches = _batches(R)
            choose_split(model, sp, full_mask(sp), cands, lambda i: batches[i], R, np.random.default_rng(0))
            assert model.calls == R * 3 * len(cands)   # one forward/backward per batch, op and candidate


def test_best_partition_is_balanced_and_minimal():
    rs = np.random.default_rng(0)
    for n in (2, 3, 4, 5):
        a = rs.random((n, n))
        d = np.triu(a, 1) + np.triu(a, 1).T
        parts, intra, cross = best_partition(d)
        assert sorted(len(p) for p in parts) == [n // 2, n - n // 2]
        assert sorted(i for p in parts for i in p) == list(range(n))
        assert intra + cross == pytest.approx(np.triu(d, 1).sum())
        # brute force over all balanced splits
        from itertools import combinations
        best = min(sum(d[i, j] for i, j in combinations(f, 2)) +
                   sum(d[i, j] for i, j in combinations([k for k in range(n) if k not in f], 2))
                   for f in combinations(range(n), n // 2))
        assert intra == pytest.approx(best)
    with pytest.raises(ValueError, match="fewer than 2"):
        best_partition(np.zeros((1, 1)))


def test_k_way_partition_is_balanced_minimal_and_found_by_hand():
    """ProxylessNAS-GM's 3-way splits: balanced groups (sizes differ by at most one) with the least summed
    intra-group distance, checked by hand and against brute force over every labelling."""
    from itertools import combinations, product
    d = np.ones((6, 6)) - np.eye(6)
    for i, j in ((0, 3), (1, 4), (2, 5)):   # three tight pairs
        d[i, j] = d[j, i] = 0.1
    parts, intra, cross = best_partition(d, 3)
    assert parts == [[0, 3], [1, 4], [2, 5]] and intra == pytest.approx(0.3) and cross == pytest.approx(12.0)
    rs = np.random.default_rng(1)
    for n, k in ((3, 3), (4, 3), (5, 3), (6, 3), (7, 3), (7, 4), (5, 5)):
        a = rs.random((n, n))
        d = np.triu(a, 1) + np.triu(a, 1).T
        parts, intra, cross = best_partition(d, k)
        sizes = sorted(len(p) for p in parts)
        assert len(parts) == k and sizes[-1] - sizes[0] <= 1 and sorted(sum(parts, [])) == list(range(n))
        assert [p[0] for p in parts] == sorted(p[0] for p in parts) and all(p == sorted(p) for p in parts)
        assert intra == pytest.approx(sum(d[i, j] for p in parts for i, j in combinations(p, 2)))
        assert intra + cross == pytest.approx(np.triu(d, 1).sum())
        brute = min(sum(d[i, j] for i, j in combinations(range(n), 2) if lab[i] == lab[j])
                    for lab in product(range(k), repeat=n)
                    if max(map(lab.count, range(k))) - min(map(lab.count, range(k))) <= 1)
        assert intra == pytest.approx(brute)
    with pytest.raises(ValueError, match="fewer than 3 allowed choices"):
        best_partition(np.zeros((2, 2)), 3)


def test_gm_on_the_nb201_supernet_runs_and_excludes_the_edge_ops():
    from nshot.nn import nb201_supernet
    from nshot.train.gradmatch import decision_param_names
    sp = spaces.get("nb201")
    torch.manual_seed(0)
    net = nb201_supernet(C=4, N=1, num_classes=5)
    names = decision_param_names(net, 2)
    assert names and all(".edges.2." in n for n in names)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(6, 3, 8, 8, generator=g), torch.randint(0, 5, (6,), generator=g)) for _ in range(2)]
    d = gm_distances(net, sp, full_mask(sp), 2, batches, np.random.default_rng(0))
    assert d.shape == (5, 5) and np.allclose(d, d.T, atol=1e-5) and (d >= -1e-5).all() and (d <= 2 + 1e-5).all()
    assert d.max() > 1e-3   # the edge is live on the sampled paths: ops differ


def test_cosine_distance_matrix():
    v = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 0.0])]
    np.testing.assert_allclose(cosine_distance_matrix(v), [[0, 1, 2], [1, 0, 1], [2, 1, 0]], atol=1e-6)
