"""Few-shot partition trees: exact cover, routing, masked sampling, serialisation."""
from collections import Counter

import numpy as np
import pytest

from nshot import spaces
from nshot.train.partition import PartitionTree, mask_size, sample_in_mask

SP = spaces.get("nb201")


def _tree():
    t = PartitionTree(SP)
    t.split(0, 0, [[0], [1], [2], [3], [4]])                 # FSNAS: edge 0 exhaustively
    t.split(3, 4, [[0, 2], [1, 3, 4]])                        # GM-style 2-way split of a child
    t.split(6, 5, [[1], [0, 2, 3, 4]])
    return t


def test_leaves_cover_every_architecture_exactly_once():
    t = _tree()
    leaves = t.leaves()
    assert sum(mask_size(n.mask) for n in leaves) == len(SP) == 15625
    hits = Counter()
    for arch in SP.enumerate():
        choice = SP.decode(arch)
        inside = [n.id for n in leaves if all(c in m for c, m in zip(choice, n.mask))]
        assert len(inside) == 1
        assert t.route(arch).id == inside[0]
        hits[inside[0]] += 1
    assert set(hits) == {n.id for n in leaves}


def test_masked_sampling_never_leaves_its_mask():
    t = _tree()
    rs = np.random.default_rng(0)
    for leaf in t.leaves():
        seen = [set() for _ in range(6)]
        for _ in range(300):
            arch = sample_in_mask(SP, leaf.mask, rs)
            assert t.route(arch).id == leaf.id
            for d, c in enumerate(SP.decode(arch)):
                seen[d].add(c)
        assert all(s == set(m) for s, m in zip(seen, leaf.mask))   # and every allowed choice shows up
    with pytest.raises(ValueError, match="outside the mask"):
        sample_in_mask(SP, t.leaves()[0].mask, rs, forced={0: 4})


def test_bad_splits_are_refused():
    t = PartitionTree(SP)
    with pytest.raises(ValueError, match="at least two"):
        t.split(0, 1, [[0, 1, 2, 3, 4]])
    with pytest.raises(ValueError, match="disjoint parts covering"):
        t.split(0, 1, [[0, 1], [1, 2, 3, 4]])
    with pytest.raises(ValueError, match="out of range"):
        t.split(0, 6, [[0], [1, 2, 3, 4]])
    t.split(0, 1, [[0, 1], [2, 3, 4]])
    with pytest.raises(ValueError, match="already split"):
        t.split(0, 2, [[0], [1, 2, 3, 4]])


def test_tree_round_trips_and_records_split_path():
    t = _tree()
    t.nodes[3].info["distances"] = [[0.0, 0.5], [0.5, 0.0]]
    u = PartitionTree.from_dict(SP, t.to_dict())
    assert [n.mask for n in u.nodes] == [n.mask for n in t.nodes]
    assert u.nodes[3].info == t.nodes[3].info
    assert u.split_decisions(u.leaves()[-1].id) == {0, 4, 5}
    arch = SP.sample(1)
    assert u.route(arch).id == t.route(arch).id
