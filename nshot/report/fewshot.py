"""The report's few-shot section: the partition tree, each sub-supernet's training curve and, for GM-NAS, the
gradient-matching distance matrices behind every split (all read from RUN/fewshot.json and RUN/nodes/)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..run.rundir import RunDir
from . import plots
from .html import Markup, esc, fmt_num, note, table


def _choice_names(space_name: str, decision: int, n: int) -> list[str]:
    """Option names of ``decision`` in the run's space (indices when the space cannot be built)."""
    try:
        from .. import spaces
        return list(spaces.get(space_name).choices[decision])
    except Exception:   # a space that needs model options (proxyless), or an unknown one: show indices
        return [str(i) for i in range(n)]


def _mask_text(mask: list, full: list[int]) -> str:
    """Compact mask: only the decisions restricted below their full size, as d:{choices}."""
    parts = [f"{d}:{{{','.join(str(c) for c in m)}}}" for d, m in enumerate(mask) if len(m) < full[d]]
    return " ".join(parts) if parts else "(whole space)"


def _read_metrics(path: Path) -> list[dict]:
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


def fewshot_section(run_dir: Path, image: Callable[..., Markup], section: Callable[[str, str, str], str]) -> str:
    """HTML of the few-shot section ('' for a one-shot run). ``image``/``section`` are the report's helpers."""
    files = RunDir(run_dir)
    path = files.fewshot
    if not path.is_file():
        return ""
    try:
        doc = json.loads(path.read_text())
        nodes = doc["tree"]["nodes"]
        space = doc["tree"].get("space", "")
    except (OSError, ValueError, KeyError, TypeError) as e:
        return section("fewshot", "Few-shot tree", str(note(f"{files.FEWSHOT} is unreadable ({esc(e)})")))
    full = [len(m) for m in nodes[0]["mask"]]
    finished = set(doc.get("finished_nodes") or [])
    rows = []
    for n in nodes:
        info = n.get("info") or {}
        split = n.get("split_decision")
        groups = ""
        if split is not None and n.get("children"):
            groups = " | ".join(_mask_text(nodes[c]["mask"], full) for c in n["children"])
        rows.append([n["id"], "-" if n.get("parent") is None else n["parent"], _mask_text(n["mask"], full),
                     "leaf" if not n.get("children") else f"decision {split} ({info.get('method', '')})",
                     groups or "-", "yes" if n["id"] in finished else "no"])
    parts = [table(["node", "parent", "allowed choices", "split", "children's choices", "trained"], rows)]
    series = []
    for n in nodes:
        recs = _read_metrics(files.node(n["id"]).metrics)
        if recs:
            series.append((f"node {n['id']}" + (" (leaf)" if not n.get("children") else ""),
                           [r.get("epoch") for r in recs], [r.get("loss") for r in recs]))
    if series:
        parts.append(image("fewshot_curves.png", plots.node_curves(series), "training loss per sub-supernet",
                           "Training loss of every node (RUN/nodes/<id>/metrics.jsonl), on the run's epoch axis: "
                           "a child continues from its parent's split epoch."))
    for n in nodes:
        cands = (n.get("info") or {}).get("candidates")
        if not isinstance(cands, dict) or not cands:
            continue
        panels, cross = [], []
        for d, c in sorted(cands.items(), key=lambda kv: int(kv[0])):
            ops = c.get("ops") or []
            names = _choice_names(space, int(d), full[int(d)])
            labels = [names[o] if isinstance(o, int) and o < len(names) else str(o) for o in ops]
            chosen = int(d) == n.get("split_decision")
            panels.append((f"decision {d}: cross {fmt_num(c.get('cross'))}", labels, c.get("distances") or [],
                           chosen))
            cross.append([d, fmt_num(c.get("cross")), fmt_num(c.get("intra")),
                          " | ".join("{" + ",".join(labels[ops.index(o)] if o in ops else str(o) for o in g) + "}"
                                     for g in (c.get("groups") or [])), "chosen" if chosen else ""])
        batches = (n.get("info") or {}).get("batches")
        parts.append(Markup(f"<h3>Split of node {esc(n['id'])}: gradient-matching distances"
                            f"{f' over {esc(batches)} batches' if batches else ''}</h3>"))
        parts.append(image(f"gm_node{n['id']}.png", plots.distance_matrices(panels),
                           f"gradient-matching distance matrices of node {n['id']}",
                           "1 - cos between the shared weights' gradients with each pair of choices (same batch, "
                           "same path); the split decision (largest cross-group distance) is framed in red."))
        parts.append(table(["decision", "cross-group distance", "intra-group distance", "best 2-way groups", ""],
                           cross))
    return section("fewshot", "Few-shot tree", "\n".join(str(p) for p in parts))
