"""Scoring's dedup asks the search space (``function_key``, ``canonical``, ``evaluation_cost``): a space that is
not NB201 goes through the same generic path, and one without the notion shares nothing."""
import pytest
import torch

from nshot.nn import build_supernet
from nshot.score import Deduper, ScoreProtocol, Scorer, count_functions, space_of
from nshot.spaces import MacroSpace

TINY = dict(stem_width=4, widths=[8, 8, 16], head_width=12, num_classes=4)


class FirstLayerFree(MacroSpace):
    """A toy equivalence on the macro space: layer 0's block never matters (its key holds the smallest held
    choice there); 'isomorphism classes' ignore layer 1 as well."""

    has_isomorphism = True

    def function_key(self, arch, candidates=None):
        c = list(self.decode(arch))
        c[0] = min(candidates[0]) if candidates is not None else 0
        return self.encode(c)

    def canonical(self, arch):
        c = list(self.decode(arch))
        c[0] = c[1] = 0
        return self.encode(c)

    def evaluation_cost(self, arch):
        return float(self.flops(arch))


def make_net():
    torch.manual_seed(0)
    return build_supernet("macro", **TINY)


def test_a_space_without_the_notion_shares_nothing(tiny_data):
    _, evald = tiny_data
    net = make_net()
    sp = space_of(net)
    assert isinstance(sp, MacroSpace) and not sp.has_isomorphism
    archs = [sp.sample(i) for i in range(5)]
    archs += archs[:2]
    d = Deduper("exact", net)
    assert d.space is sp
    assert [d.measured(a) for a in archs] == archs and [d.representative(a) for a in archs] == archs
    assert d.groups(archs) == {a: [a] for a in dict.fromkeys(archs)}
    assert count_functions(archs, "exact", sp) == count_functions(archs, "none", sp) == 5
    with pytest.raises(ValueError, match="isomorphism classes"):
        Deduper("iso", net)
    with pytest.raises(ValueError, match="isomorphism classes"):
        count_functions(archs, "iso", "macro")
    s = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), progress="none")
    s.score_many(archs)
    assert s.forward_passes == 5
    assert s.my_share(archs) == list(dict.fromkeys(archs))


def test_a_space_supplies_its_keys_through_its_interface(tmp_path, tiny_data):
    _, evald = tiny_data
    sp = FirstLayerFree()
    base = "0" + sp.sample(0)[1:]                             # its own key
    same = [str(k) + base[1:] for k in range(3)]            # differ only at layer 0: one function
    other = base[0] + ("1" if base[1] != "1" else "2") + base[2:]
    archs = same + [other]
    d = Deduper("exact", make_net(), space=sp)
    assert [d.measured(a) for a in archs] == [sp.function_key(base)] * 3 + [sp.function_key(other)]
    assert count_functions(archs, "exact", sp) == 2 and count_functions(archs, "iso", sp) == 1
    iso = Deduper("iso", make_net(), space=sp)
    assert [iso.representative(a) for a in archs] == [sp.canonical(base)] * 4
    assert len(iso.groups(archs)) == 1

    net = make_net()
    net.space = sp                                           # the network's own space is what the scorer asks
    plain = Scorer(net, evald, ScoreProtocol(eval_batch_size=32, dedup="none"), progress="none").score_many(archs)
    fast = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), progress="none")
    assert fast.dedup.space is sp
    scores = fast.score_many(archs)
    assert fast.forward_passes == 2
    assert scores[:3] == [plain[0]] * 3 and scores[3] == plain[3]

    # sharding balances the space's evaluation cost: every evaluation goes to exactly one rank
    shares = [Scorer(net, evald, ScoreProtocol(eval_batch_size=32), progress="none", rank=r, world=2,
                     cache_path=tmp_path / "scores.csv").my_share(archs) for r in range(2)]
    assert sorted(shares[0] + shares[1]) == sorted(archs) and all(len(s) in (1, 3) for s in shares)
