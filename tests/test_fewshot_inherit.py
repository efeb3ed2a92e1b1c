"""A few-shot child starts from its parent's checkpoint state (``fewshot.inherit``) without a parent trainer:
its whole state equals what resuming the parent's trainer and copying its state by name gave before."""
from __future__ import annotations

import pytest

from nshot.config import load_config
from nshot.train import Trainer
from nshot.train import fewshot
from nshot.train.fewshot import FewShotRun
from nshot.train.plan import SubSpace
from tests.helpers import assert_same_tensors, pinas_overrides, tiny_overrides

GM = ["fewshot.method=gm", "fewshot.split_epochs=[1]", "fewshot.gm_batches=1", "fewshot.inherit=true"]


def _old_inherit(parent: Trainer, child: Trainer) -> None:
    """The inheritance of nshot before this test: a parent trainer resumed, its state copied by name."""
    psd = parent.model.state_dict()
    child.model.load_state_dict({k: psd[k] for k in child.model.state_dict()})

    def names(tr: Trainer) -> list[str]:
        own = [n for n, p in tr.model.named_parameters() if p.requires_grad]
        return own + [f"objective.{i}" for i in range(len(tr.objective.parameters()))]
    pnames, cnames = names(parent), names(child)
    pstate = parent.optimizer.state_dict()
    index = {n: i for i, n in enumerate(pnames)}
    cstate = child.optimizer.state_dict()
    cstate["state"] = {ci: pstate["state"][index[n]] for ci, n in enumerate(cnames) if index[n] in pstate["state"]}
    child.optimizer.load_state_dict(cstate)
    if hasattr(parent.objective, "teacher"):   # Pi-NAS: heads, teacher on the child's modules, queue, pointer
        o, p = child.objective, parent.objective
        tsd = p.teacher.state_dict()
        o.teacher.load_state_dict({k: tsd[k] for k in o.teacher.state_dict()})
        o.head.load_state_dict(p.head.state_dict())
        o.teacher_head.load_state_dict(p.teacher_head.state_dict())
        o.queue.copy_(p.queue)
        o.ptr = p.ptr


@pytest.mark.parametrize("overrides", [
    tiny_overrides(*GM),
    tiny_overrides(*GM, "train.optimizer=ms_sgd", "train.lr_policy=calr"),
    pinas_overrides(*GM, "train.batch_size=48"),
], ids=["spos", "calr-ms", "pinas"])
def test_child_state_equals_the_resumed_parents_copy(tmp_path, tiny_data, overrides):
    cfg = load_config(None, overrides)
    run = FewShotRun.create(cfg, tmp_path / "fs", data=tiny_data)
    root = run._trainer(0, 0, fresh=False)
    root.fit(max_steps=2)                       # momentum buffers (and a Pi-NAS queue) that are not all zero
    assert root.step == 2
    d = next(d for d in range(run.space.num_decisions) if d != run.ms_edge)
    run.tree.split(0, d, [[0, 1], [2, 3, 4]], info={"method": "test"})
    for child in run.tree.nodes[1:]:
        new = run._trainer(child.id, root.step, fresh=False)       # inherits from the root's checkpoint
        parent = Trainer.resume(run.node_dir(0), data=tiny_data, fewshot_node=True)
        sub = SubSpace.of(child.mask, start=0, salt=child.id, exclude=[d])
        ref = Trainer.create(run.cfg, tmp_path / f"ref{child.id}", data=tiny_data, subspace=sub)
        _old_inherit(parent, ref)
        ref.step = root.step
        assert new.subspace == sub
        assert len(new.optimizer.state_dict()["state"]) > 0
        assert_same_tensors(new.state_dict(), ref.state_dict())
        # what the child saved is what it holds
        again = Trainer.resume(run.node_dir(child.id), data=tiny_data, fewshot_node=True)
        assert_same_tensors(again.state_dict(), ref.state_dict())


def test_inherit_refuses_a_parent_with_other_momentum_groups(tmp_path, tiny_data):
    cfg = load_config(None, tiny_overrides(*GM, "train.optimizer=ms_sgd"))
    run = FewShotRun.create(cfg, tmp_path / "fs", data=tiny_data)
    root = run._trainer(0, 0, fresh=False)
    state = root.state_dict()
    state["optimizer"] = {**state["optimizer"], "num_groups": root.optimizer.num_groups + 1}
    child = Trainer.create(run.cfg, tmp_path / "child", data=tiny_data)
    with pytest.raises(ValueError, match="parent and child optimizers differ"):
        fewshot.inherit(state, child)
