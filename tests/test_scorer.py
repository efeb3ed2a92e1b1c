"""Scorer: cache reuse, determinism, BN re-calibration, run loading."""
import pytest
import torch

from nshot import spaces
from nshot.config import load_config
from nshot.nn import nb201_supernet
from nshot.score import ScoreProtocol, Scorer, load_run, recalibrate, running_stats_mode
from nshot.train import Trainer
from nshot.train.trainer import RunDirError
from tests.helpers import tiny_overrides

SP = spaces.get("nb201")
ARCHS = [SP.sample(i) for i in range(6)]


@pytest.fixture
def net():
    torch.manual_seed(0)
    return nb201_supernet(C=4, N=1, num_classes=4)


def test_cached_scores_are_reused(tmp_path, net, tiny_data):
    train, evald = tiny_data
    cache = tmp_path / "scores.csv"
    s1 = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), cache_path=cache, progress="none")
    first = s1.score_many(ARCHS + ARCHS[:2])
    assert s1.forward_passes == len(set(ARCHS))
    s2 = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), cache_path=cache, progress="none")
    assert s2.score_many(ARCHS) == first[:len(ARCHS)] and s2.forward_passes == 0
    # another protocol is measured afresh, and both live in the same file
    s3 = Scorer(net, evald, ScoreProtocol(eval_batch_size=32, step=5), cache_path=cache, progress="none")
    s3.score_many(ARCHS[:3])
    assert s3.forward_passes == 3
    assert len(cache.read_text().splitlines()) == 1 + len(set(ARCHS)) + 3


def test_a_torn_last_cache_line_is_ignored(tmp_path, net, tiny_data):
    _, evald = tiny_data
    cache = tmp_path / "scores.csv"
    Scorer(net, evald, cache_path=cache, progress="none").score_many(ARCHS[:3])
    with open(cache, "a") as f:
        f.write(ARCHS[3] + ",9")   # crash mid-write
    s = Scorer(net, evald, cache_path=cache, progress="none")
    assert len(s.scores) == 3


def test_scores_are_deterministic_and_batch_size_matters_only_in_batch_mode(net, tiny_data):
    _, evald = tiny_data
    a = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), progress="none").score_many(ARCHS)
    b = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), progress="none").score_many(ARCHS)
    assert a == b


def test_recalibration_changes_bn_statistics_and_nothing_else(net, tiny_data):
    train, evald = tiny_data
    params = {k: v.clone() for k, v in net.state_dict().items()}
    proto = ScoreProtocol(bn_mode="recal", recal_batches=2, recal_batch_size=32, eval_batch_size=32)
    scorer = Scorer(net, evald, proto, train_data=train, progress="none")
    recal = scorer.score_many(ARCHS)
    batch = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), progress="none").score_many(ARCHS)
    assert recal != batch   # running statistics are not batch statistics
    # parameters and the BN configuration are exactly as before
    after = net.state_dict()
    assert after.keys() == params.keys() and all(torch.equal(after[k], params[k]) for k in params)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not m.track_running_stats and m.running_mean is None for m in bns)


def test_recalibrated_statistics_are_the_batch_statistics(net, tiny_data):
    train, _ = tiny_data
    x = (train.x[:32].float() / 255 - 0.5) / 0.25
    arch = ARCHS[0]
    with running_stats_mode(net):
        recalibrate(net, [x], arch)
        stem_out = net.stem[0](x)
        torch.testing.assert_close(net.stem[1].running_mean, stem_out.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(net.stem[1].running_var, stem_out.var(dim=(0, 2, 3), unbiased=True),
                                   rtol=1e-4, atol=1e-6)
        # a BN off the path (conv 1x1 on edge 0 when the arch uses another op) saw no data
        ops = SP.decode(arch)
        unused = [name for name in net.cells[0].edges[0] if name != SP.ops[ops[0]] and name.startswith("nor")]
        for name in unused:
            assert int(net.cells[0].edges[0][name][2].num_batches_tracked) == 0


def test_bad_scoring_inputs(net, tiny_data):
    train, evald = tiny_data
    with pytest.raises(ValueError, match="bn mode 'x' is invalid"):
        Scorer(net, evald, ScoreProtocol(bn_mode="x"))
    with pytest.raises(ValueError, match="needs training data"):
        Scorer(net, evald, ScoreProtocol(bn_mode="recal", recal_batches=1))
    with pytest.raises(ValueError, match="need 3200 training images"):
        Scorer(net, evald, ScoreProtocol(bn_mode="recal", recal_batches=100, recal_batch_size=32), train_data=train)


def test_load_run(tmp_path, tiny_data):
    with pytest.raises(RunDirError, match="not a run directory"):
        load_run(tmp_path, data=tiny_data)
    cfg = load_config(None, tiny_overrides())
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    with pytest.raises(RunDirError, match="no usable checkpoint"):
        load_run(tmp_path / "r", data=tiny_data)
    tr.fit()
    run = load_run(tmp_path / "r", data=tiny_data)
    assert run.step == tr.step == run.total_steps
    assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(), tr.model.state_dict().values()))


def test_batch_mode_uses_batch_statistics_even_when_the_supernet_tracks_running_stats(tiny_data):
    from nshot.nn import BNConfig
    _, evald = tiny_data
    torch.manual_seed(0)
    plain = nb201_supernet(C=4, N=1, num_classes=4)
    torch.manual_seed(0)
    tracked = nb201_supernet(C=4, N=1, num_classes=4, bn=BNConfig(track_running_stats=True))
    tracked.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():               # running statistics far from the data: eval mode would use them
        for m in tracked.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.fill_(5.0)
    before = {k: v.clone() for k, v in tracked.state_dict().items()}
    a = Scorer(plain, evald, ScoreProtocol(eval_batch_size=32), progress="none").score_many(ARCHS)
    b = Scorer(tracked, evald, ScoreProtocol(eval_batch_size=32), progress="none").score_many(ARCHS)
    assert a == b
    assert all(torch.equal(v, before[k]) for k, v in tracked.state_dict().items())
