"""Few-shot partitions: sub-spaces given by a per-decision mask of allowed choices, and the tree of splits.

The leaves of a :class:`PartitionTree` cover the space exactly once; :meth:`PartitionTree.route` finds the
one leaf that contains an architecture. Pure Python (no torch): the supernets that train each leaf live in
the trainer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from ..spaces import SearchSpace

Mask = tuple[tuple[int, ...], ...]


def full_mask(space: SearchSpace) -> Mask:
    """Every choice allowed at every decision."""
    return tuple(tuple(range(n)) for n in space.sizes)


def mask_size(mask: Mask) -> int:
    """Number of architectures a mask allows."""
    n = 1
    for m in mask:
        n *= len(m)
    return n


def mask_contains(mask: Mask, choice: Sequence[int]) -> bool:
    """Whether the choice vector ``choice`` lies in the sub-space ``mask`` (every decision's choice allowed)."""
    return all(c in m for c, m in zip(choice, mask))


def sample_in_mask(space: SearchSpace, mask: Mask, rng: np.random.Generator,
                   forced: Optional[dict[int, int]] = None) -> str:
    """One architecture uniform over the mask (``forced`` decisions must be allowed by it)."""
    choice = [m[int(rng.integers(len(m)))] for m in mask]
    for d, c in (forced or {}).items():
        if c not in mask[d]:
            raise ValueError(f"forced choice {c} at decision {d} is outside the mask {mask[d]}")
        choice[d] = c
    return space.encode(choice)


@dataclass
class Node:
    """One (sub-)supernet of the tree."""
    id: int
    mask: Mask
    parent: Optional[int] = None
    split_decision: Optional[int] = None      # set once the node is split
    children: list[int] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)   # e.g. the GM distance matrix that chose the split

    @property
    def is_leaf(self) -> bool:
        return not self.children


class PartitionTree:
    """A tree of sub-spaces; the leaves partition the space."""

    def __init__(self, space: SearchSpace, nodes: Optional[list[Node]] = None):
        self.space = space
        self.nodes: list[Node] = nodes if nodes is not None else [Node(0, full_mask(space))]

    def leaves(self) -> list[Node]:
        return [n for n in self.nodes if n.is_leaf]

    def split(self, node_id: int, decision: int, groups: Sequence[Sequence[int]],
              info: Optional[dict[str, Any]] = None) -> list[Node]:
        """Split leaf ``node_id`` at ``decision`` into one child per group of its allowed choices.

        The groups must partition the node's allowed choices at that decision (each non-empty, disjoint,
        covering), so the children still cover the node exactly once.
        """
        node = self.nodes[node_id]
        if not node.is_leaf:
            raise ValueError(f"node {node_id} is already split")
        if not 0 <= decision < self.space.num_decisions:
            raise ValueError(f"decision {decision} is out of range 0..{self.space.num_decisions - 1}")
        allowed = node.mask[decision]
        flat = [int(c) for g in groups for c in g]
        if len(groups) < 2 or any(len(g) == 0 for g in groups) or sorted(flat) != sorted(allowed):
            raise ValueError(f"groups {list(map(list, groups))} must split node {node_id}'s choices {list(allowed)} at "
                             f"decision {decision} into at least two non-empty disjoint parts covering them")
        node.split_decision = decision
        node.info.update(info or {})
        children = []
        for g in groups:
            mask = tuple(tuple(sorted(int(c) for c in g)) if d == decision else m for d, m in enumerate(node.mask))
            child = Node(len(self.nodes), mask, parent=node_id)
            self.nodes.append(child)
            node.children.append(child.id)
            children.append(child)
        return children

    def route(self, arch: str) -> Node:
        """The leaf containing ``arch``."""
        choice = self.space.decode(arch)
        node = self.nodes[0]
        while not node.is_leaf:
            c = choice[node.split_decision]
            node = next(self.nodes[k] for k in node.children if c in self.nodes[k].mask[node.split_decision])
        return node

    def split_decisions(self, node_id: int) -> set[int]:
        """Decisions already split on the path from the root to ``node_id``."""
        out, node = set(), self.nodes[node_id]
        while node.parent is not None:
            node = self.nodes[node.parent]
            out.add(node.split_decision)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space.name, "nodes": [
            {"id": n.id, "mask": [list(m) for m in n.mask], "parent": n.parent, "split_decision": n.split_decision,
             "children": list(n.children), "info": n.info} for n in self.nodes]}

    @classmethod
    def from_dict(cls, space: SearchSpace, data: dict[str, Any]) -> "PartitionTree":
        if data.get("space") != space.name:
            raise ValueError(f"partition tree is for space {data.get('space')!r}, not {space.name!r}")
        nodes = [Node(d["id"], tuple(tuple(m) for m in d["mask"]), d["parent"], d["split_decision"],
                      list(d["children"]), dict(d.get("info", {}))) for d in data["nodes"]]
        return cls(space, nodes)
