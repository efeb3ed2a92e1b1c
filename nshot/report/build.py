"""``build_report(run_dir)``: one self-contained HTML page describing a run directory.

The page shows a section per input that exists (config, environment, training metrics, ranking, search) and
says plainly which inputs are absent and how to produce them. Plots are PNGs embedded as base64 data URIs;
the same PNGs are written next to the page (``RUN/report/``) for reuse.
"""
from __future__ import annotations

import csv
import json
import math
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import yaml

from ..run.io import atomic_write_bytes
from ..run.rundir import RunDir
from . import plots
from .alphas import differentiable_figures
from .cell_drawing import draw_arch, drawing_legend
from .html import (NA, Markup, code, esc, figure, fmt_compact, fmt_duration, fmt_num, fmt_value, is_number,
                   kv_table, note, page, table, to_float, with_code)

TOP_CELLS = 3


_RANK_JSON, _RANK_CSV = RunDir.rank_name("json"), RunDir.rank_name("csv")   # what `nshot rank` writes


class NotARunDirError(FileNotFoundError, ValueError):
    """The path given is not an nshot run directory (no ``config.yaml``).

    Subclasses both FileNotFoundError (a file is missing) and ValueError (a bad argument).
    """


@dataclass
class Input:
    """One file of the run directory the report reads."""
    name: str
    what: str
    hint: str
    status: str = "absent"  # ok | absent | empty | error
    detail: str = ""
    data: Any = None


@dataclass
class _Ctx:
    run_dir: Path
    inputs: dict[str, Input]
    config: dict
    space: str
    images: list[tuple[str, bytes]] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (anchor, title) for the navigation

    def image(self, name: str, png: bytes, alt: str, caption: Any = None, width: Optional[int] = None) -> Markup:
        self.images.append((name, png))
        return figure(png, alt, caption, width)


# -- reading --------------------------------------------------------------------------------------------------

def _read_config(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot read the run's config.yaml: {e}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: config.yaml must be a mapping, got {type(data).__name__}")
    return data


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _read_env(path: Path) -> tuple[Any, str]:
    data = _read_json(path)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ValueError("expected a list of JSON objects")
    return data, ""


def _read_metrics(path: Path) -> tuple[Any, str]:
    records, bad = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            bad += 1
    return records, (f"{bad} unreadable line{'s' * (bad != 1)} skipped" if bad else "")


def _read_rank_csv(path: Path) -> tuple[Any, str]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        missing = [c for c in ("arch", "score", "truth") if c not in fields]
        if missing:
            raise ValueError(f"missing column{'s' * (len(missing) > 1)} {', '.join(missing)} "
                             f"(has: {', '.join(fields) or 'none'})")
        rows = list(reader)
    return rows, ""


def _read_rank_json(path: Path) -> tuple[Any, str]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data, ""


def _read_search(path: Path) -> tuple[Any, str]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    best = data.get("best") or []
    if not isinstance(best, list):
        raise ValueError("'best' must be a list")
    entries = []
    for b in best:
        if isinstance(b, dict):
            e = dict(b)
            if "score" not in e and "fitness" in e:
                e["score"] = e["fitness"]
        elif isinstance(b, (list, tuple)) and b:
            e = {"arch": b[0], "score": b[1] if len(b) > 1 else None}
        else:
            continue
        entries.append(e)
    data = dict(data)
    data["best"] = entries
    hist = data.get("history") or []
    data["history"] = [h for h in hist if isinstance(h, dict)] if isinstance(hist, list) else []
    return data, ""


def _rank_hint(run_dir: Path, config: Any) -> str:
    """How to make rank.json for this run: plain `nshot rank RUN`, or with the flags its space/dataset need."""
    rd = shlex.quote(str(run_dir))
    from ..benchmarks import base as benchmarks
    try:
        bench = benchmarks.default_for_space(str(_get(config, "space.name")))
        known = benchmarks.dataset_metrics(bench)
    except benchmarks.BenchmarkError:
        return (f"the space has no ground-truth benchmark in nshot: `nshot rank {rd} --benchmark NAME` "
                "compares it with one you name")
    dataset = str(_get(config, "data.name"))
    if known and dataset not in known:
        metric = next(iter(known.values()))
        return (f"the run trained on {dataset}, which has no ground truth in {bench} ({', '.join(known)} have): "
                f"`nshot rank {rd} --metric {metric}` compares it with that metric anyway")
    return f"run `nshot rank {rd}` first"


def _load_inputs(run_dir: Path, config: Any = None) -> dict[str, Input]:
    rd = shlex.quote(str(run_dir))
    rank_hint = _rank_hint(run_dir, config)
    specs: list[tuple[str, str, str, Callable[[Path], tuple[Any, str]]]] = [
        (RunDir.ENV, "environment: versions, git commit, device",
         "written by `nshot train` at each start or resume (absent in runs made otherwise)", _read_env),
        (RunDir.METRICS, "training metrics per epoch",
         f"no epoch has finished yet: continue with `nshot train --resume {rd}`", _read_metrics),
        (_RANK_JSON, "ranking quality against the benchmark",
         rank_hint, _read_rank_json),
        (_RANK_CSV, "per-architecture supernet scores and benchmark truth",
         rank_hint, _read_rank_csv),
        (RunDir.SEARCH, "search result: best architectures and progress",
         f"run `nshot search {rd}` first", _read_search),
    ]
    inputs = {RunDir.CONFIG: Input(RunDir.CONFIG, "resolved run configuration", "", status="ok")}
    for name, what, hint, reader in specs:
        inp = Input(name, what, hint)
        path = run_dir / name
        if path.is_file():
            try:
                inp.data, inp.detail = reader(path)
                inp.status = "ok" if inp.data else "empty"
            except (OSError, UnicodeDecodeError, ValueError, csv.Error) as e:
                inp.status, inp.detail = "error", f"{type(e).__name__}: {e}"
        inputs[name] = inp
    return inputs


# -- helpers --------------------------------------------------------------------------------------------------

def _get(d: Any, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return default
        d = d[part]
    return d


def _num_or_none(value: Any) -> Optional[float]:
    x = to_float(value)
    return x if math.isfinite(x) else None


def _int_or_float(value: Any) -> Any:
    """A CSV/JSON number as int when it is integral (params, flops), else float, else None."""
    x = to_float(value)
    if not math.isfinite(x):
        return None
    return int(x) if x.is_integer() and abs(x) < 2 ** 63 else x


def _section(ctx: _Ctx, anchor: str, title: str, body: str) -> str:
    ctx.sections.append((anchor, title))
    return f'<section id="{esc(anchor)}">\n<h2>{esc(title)}</h2>\n{body}\n</section>'


def _problem(inp: Input) -> Markup:
    """One line saying why ``inp`` is not shown and how to produce it."""
    if inp.status == "absent":
        return Markup(f"no {esc(inp.name)}: {with_code(inp.hint)}")
    if inp.status == "empty":
        return Markup(f"{esc(inp.name)} is empty: {with_code(inp.hint)}")
    return Markup(f"{esc(inp.name)} is unreadable ({esc(inp.detail)})")


def _absent_note(inp: Input) -> Markup:
    return Markup(f'<div class="note">{_problem(inp)}</div>')


# -- sections -------------------------------------------------------------------------------------------------

def _overview(ctx: _Ctx) -> str:
    rows = []
    labels = {"ok": ("ok", "found"), "absent": ("absent", "absent"), "empty": ("absent", "empty"),
              "error": ("error", "unreadable")}
    for inp in ctx.inputs.values():
        cls, word = labels[inp.status]
        what = esc(inp.what) + (f'<br><span class="muted">{esc(inp.detail)}</span>'
                                if inp.detail and inp.status == "ok" else "")
        rows.append((code(inp.name), Markup(f'<span class="{cls}">{word}</span>'), Markup(what)))
    missing = [i for i in ctx.inputs.values() if i.status != "ok"]
    parts = []
    if missing:
        items = "".join(f"<li>{_problem(i)}</li>" for i in missing)
        parts.append(f'<div class="note">Sections without their input are left out.<ul>{items}</ul></div>')
    glance = _glance(ctx)
    inputs_table = table(["input", "status", "gives"], rows)
    if glance:
        parts.append('<div class="grid2"><div>' + inputs_table + "</div><div><h3>At a glance</h3>"
                     + kv_table(glance) + "</div></div>")
    else:
        parts.append(inputs_table)
    return _section(ctx, "inputs", "Inputs", "\n".join(parts))


def _glance(ctx: _Ctx) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    metrics = ctx.inputs[RunDir.METRICS]
    if metrics.status == "ok":
        last = metrics.data[-1]
        total = _get(ctx.config, "train.epochs")
        ep = last.get("epoch", len(metrics.data))
        out.append(("epochs trained", f"{fmt_num(ep)} of {fmt_num(total)}" if total is not None else fmt_num(ep)))
        out.append(("final train loss", _num_or_none(last.get("loss"))))
        out.append(("final train accuracy (%)", _num_or_none(last.get("acc"))))
    rank = ctx.inputs[_RANK_JSON]
    if rank.status == "ok":
        out.append(("Kendall tau", _num_or_none(rank.data.get("kendall_tau"))))
        out.append(("Spearman rho", _num_or_none(rank.data.get("spearman_rho"))))
    search = ctx.inputs[RunDir.SEARCH]
    if search.status == "ok" and search.data["best"]:
        b = search.data["best"][0]
        out.append(("best found: score", _num_or_none(b.get("score"))))
        if b.get("truth") is not None:
            out.append(("best found: truth", _num_or_none(b.get("truth"))))
    return out


def _config_section(ctx: _Ctx) -> str:
    c = ctx.config

    def show(*keys: str) -> str:
        vals = [_get(c, k) for k in keys]
        if all(v is None for v in vals):
            return "—"
        return ", ".join(f"{k.split('.')[-1]}={fmt_value(v)}" for k, v in zip(keys, vals) if v is not None)

    def one(key: str) -> str:
        v = _get(c, key)
        return "—" if v is None and not _has(c, key) else fmt_value(v)

    lr = _get(c, "optim.lr")
    lr_min = _get(c, "optim.lr_min")
    lr_text = fmt_value(lr) if lr is not None else "—"
    if lr is not None and lr_min is not None:
        lr_text += f" → {fmt_value(lr_min)}"
    opt = one("train.optimizer")
    opt_extra = [f"momentum {fmt_value(_get(c, 'optim.momentum'))}" if _has(c, "optim.momentum") else "",
                 "nesterov" if _get(c, "optim.nesterov") is True else "",
                 f"wd {fmt_value(_get(c, 'optim.weight_decay'))}" if _has(c, "optim.weight_decay") else ""]
    opt_extra = [x for x in opt_extra if x]
    if opt_extra:
        opt += f" ({', '.join(opt_extra)})"
    sampler = one("train.sampler")
    sampler_cfg = _get(c, "sampler")
    if isinstance(sampler_cfg, dict) and sampler_cfg:
        sampler += " (" + ", ".join(f"{k}: {fmt_value(v)}" for k, v in sampler_cfg.items()) + ")"
    data = " / ".join(x for x in (one("data.name"), one("data.split")) if x != "—") or "—"
    if _get(c, "data.split_file"):
        data += f" (split file {_get(c, 'data.split_file')})"
    rows = [
        ("space", one("space.name")),
        ("model", show("model.C", "model.N")),
        ("data (name / split)", data),
        ("epochs", one("train.epochs")),
        ("batch size", one("train.batch_size")),
        ("learning rate", lr_text),
        ("lr policy", one("train.lr_policy")),
        ("sampler", sampler),
        ("optimizer", opt),
        ("grad clip", one("train.grad_clip")),
        ("seed", one("seed")),
        ("device", one("device")),
    ]
    full = yaml.safe_dump(c, sort_keys=False, default_flow_style=False, allow_unicode=True)
    body = (kv_table(rows) + "<details><summary>full config.yaml</summary>"
            f"<pre>{esc(full)}</pre></details>")
    return _section(ctx, "config", "Configuration", body)


def _has(d: Any, dotted: str) -> bool:
    sentinel = object()
    return _get(d, dotted, sentinel) is not sentinel


def _env_section(ctx: _Ctx) -> str:
    inp = ctx.inputs[RunDir.ENV]
    if inp.status != "ok":
        return ""
    first = inp.data[0]
    rows = [(k, Markup(esc(fmt_value(v))) if not is_number(v) else v) for k, v in first.items()]
    if len(inp.data) == 1:
        return _section(ctx, "env", "Environment", kv_table(rows))
    events = [(i + 1, e.get("event", NA), e.get("step", None), e.get("time", NA), e.get("device", NA),
               e.get("git_commit", NA)) for i, e in enumerate(inp.data)]
    body = (f'<p class="muted">{len(inp.data)} entries (one per start or resume); the table shows the first.</p>'
            '<div class="grid2"><div>' + kv_table(rows) + "</div><div><h3>Starts and resumes</h3>"
            + table(["#", "event", "step", "time", "device", "git commit"], events) + "</div></div>")
    return _section(ctx, "env", "Environment", body)


def _training_section(ctx: _Ctx) -> str:
    inp = ctx.inputs[RunDir.METRICS]
    if inp.status != "ok":
        return ""
    recs = inp.data
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(recs)]
    last = recs[-1]
    secs = [to_float(r.get("seconds")) for r in recs]
    ips = [to_float(r.get("images_per_s")) for r in recs]
    finite_secs = [s for s in secs if math.isfinite(s)]
    finite_ips = [s for s in ips if math.isfinite(s)]
    total_epochs = _get(ctx.config, "train.epochs")
    summary = [
        ("epochs logged", f"{len(recs)}" + (f" of {fmt_num(total_epochs)} configured" if total_epochs else "")),
        ("last epoch / step", f"{fmt_num(last.get('epoch'))} / {fmt_num(last.get('step'))}"),
        ("final train loss", _num_or_none(last.get("loss"))),
        ("final contrastive top-1 (%), Pi-NAS" if _get(ctx.config, "train.objective") == "pinas"
         else "final train accuracy (%)", _num_or_none(last.get("acc"))),
        ("final learning rate (epoch mean)", _num_or_none(last.get("lr"))),
        ("training time", fmt_duration(sum(finite_secs)) if finite_secs else NA),
        ("throughput (images/s, mean)", sum(finite_ips) / len(finite_ips) if finite_ips else None),
    ]
    known = {"epoch", "step", "loss", "acc", "lr", "seconds", "images_per_s", "loss_by_quintile", "grad_momentum_cos"}
    extra = sorted({k for r in recs for k in r} - known)
    parts = [kv_table(summary)]
    if inp.detail:
        parts.append(note(f"metrics.jsonl: {inp.detail}"))
    parts.append(ctx.image("training_curves.png",
                           plots.training_curves(epochs, [r.get("loss") for r in recs], [r.get("acc") for r in recs]),
                           "training loss and accuracy per epoch",
                           "Training loss and accuracy of the sampled paths, averaged over each epoch."))
    row = [ctx.image("lr.png", plots.lr_curve(epochs, [r.get("lr") for r in recs]), "learning rate per epoch",
                     "Learning rate actually used: the mean over each epoch's steps.")]
    quint = [r.get("loss_by_quintile") for r in recs]
    if any(isinstance(q, list) and q for q in quint):
        rows = [q if isinstance(q, list) else [] for q in quint]
        row.append(ctx.image("loss_by_quintile.png", plots.loss_by_quintile(epochs, rows),
                             "training loss by complexity quintile",
                             "Training loss by complexity quintile (Q1: smallest architectures)."))
    cos = [r.get("grad_momentum_cos") for r in recs]
    if any(is_number(c) for c in cos):
        row.append(ctx.image("grad_momentum_cos.png", plots.grad_momentum_cosine(epochs, cos),
                             "cosine between gradient and momentum per epoch",
                             "Cosine between each update direction and the momentum buffer it joins (epoch mean; "
                             "with MS, the buffer of the step's group): near 0 = noisy momentum."))
    parts.append('<div class="grid2">' + "".join(row) + "</div>")
    parts.extend(differentiable_figures(ctx.image, ctx.space, recs))   # DARTS / SNAS runs: alphas, derived truth
    extra = [k for k in extra if k not in ("alphas", "truth")]
    if extra:
        parts.append(Markup(f'<p class="muted">Also recorded per epoch (not plotted): {esc(", ".join(extra))}.</p>'))
    return _section(ctx, "training", "Training", "\n".join(parts))


_PROTOCOL_ORDER = ("benchmark", "metric", "subset", "n", "dataset", "split", "scored_on", "eval_images", "bn_mode",
                   "recal_batches", "checkpoint_step", "total_steps", "seed", "complexity")


def _ranking_section(ctx: _Ctx) -> str:
    rj, rc = ctx.inputs[_RANK_JSON], ctx.inputs[_RANK_CSV]
    if rj.status != "ok" and rc.status != "ok":
        return ""
    parts: list[str] = []
    report = rj.data if rj.status == "ok" else None
    rows = rc.data if rc.status == "ok" else None
    for inp in (rj, rc):
        if inp.status != "ok":
            parts.append(_absent_note(inp))
    if report is not None:
        numbers = _rank_numbers(report, rows)
        proto = report.get("protocol")
        proto_html = ""
        if isinstance(proto, dict):
            keys = [k for k in _PROTOCOL_ORDER if k in proto] + [k for k in proto if k not in _PROTOCOL_ORDER]
            proto_html = "<h3>Protocol</h3>" + kv_table(
                [(k, proto[k] if is_number(proto[k]) else fmt_value(proto[k])) for k in keys])
        parts.append('<div class="grid2"><div><h3>Rank correlation</h3>' + kv_table(numbers) + "</div><div>"
                     + proto_html + "</div></div>")
    if rows:
        parts.append(_scatter(ctx, rows, report))
    if report is not None and isinstance(report.get("fairness"), list) and report["fairness"]:
        parts.append(_fairness(ctx, [b for b in report["fairness"] if isinstance(b, dict)]))
    return _section(ctx, "ranking", "Ranking against the benchmark", "\n".join(parts))


def _rank_numbers(report: dict, rows: Optional[list[dict]]) -> list[tuple[str, Any]]:
    """The rows of the "Rank correlation" table: correlations, precision@k, the top-1, other scalars."""
    numbers: list[tuple[str, Any]] = []
    if "n" in report:
        numbers.append(("architectures ranked", _int_or_float(report.get("n"))))
    numbers += [("Kendall tau-b", _num_or_none(report.get("kendall_tau"))),
                ("Spearman rho", _num_or_none(report.get("spearman_rho")))]
    prec = report.get("precision_at")
    ks = report.get("precision_k") if isinstance(report.get("precision_k"), dict) else {}
    if isinstance(prec, dict):
        for frac, v in prec.items():
            f = to_float(frac)
            name = f"precision@top {f * 100:g}%" if math.isfinite(f) and 0 < f <= 1 else f"precision@{frac}"
            if ks.get(frac) is not None:
                name += f" (k = {fmt_num(_int_or_float(ks[frac]))})"
            numbers.append((name, _num_or_none(v)))
    top = report.get("top1")
    if isinstance(top, dict):
        numbers.append(("top-1 by supernet: truth", _num_or_none(top.get("truth"))))
        numbers.append(("top-1 by supernet: score", _num_or_none(top.get("score"))))
        truths = [t for t in (to_float(r.get("truth")) for r in rows or []) if math.isfinite(t)]
        n = _int_or_float(report.get("n")) or len(truths) or None
        rank = top.get("truth_rank")
        if rank is None and truths and math.isfinite(to_float(top.get("truth"))):
            rank = sum(1 for x in truths if x > to_float(top.get("truth"))) + 1
        if rank is not None:
            numbers.append(("top-1 truth rank", f"{fmt_num(_int_or_float(rank))}" + (f" of {fmt_num(n)}" if n else "")))
        best = top.get("best_truth", max(truths) if truths else None)
        if best is not None:
            numbers.append(("best truth in the ranked set", _num_or_none(best)))
        if top.get("regret") is not None:
            numbers.append(("regret (best truth - top-1 truth)", _num_or_none(top.get("regret"))))
        if top.get("arch") is not None:
            numbers.append(("top-1 by supernet: arch", code(top.get("arch"), "arch")))
    elif "top1" in report:
        numbers.append(("top-1 by supernet", None))
    ctau = report.get("complexity_tau")
    if isinstance(ctau, dict):
        for k, v in ctau.items():
            numbers.append((f"tau of {k} vs complexity", _num_or_none(v)))
    skip = {"n", "kendall_tau", "spearman_rho", "precision_at", "precision_k", "top1", "top1_truth", "fairness",
            "protocol", "complexity_tau"}
    for k, v in report.items():
        if k not in skip and (v is None or is_number(v) or isinstance(v, str)):
            numbers.append((k, _num_or_none(v) if not isinstance(v, str) else v))
    return numbers


def _scatter(ctx: _Ctx, rows: list[dict], report: Optional[dict]) -> str:
    score = [to_float(r.get("score")) for r in rows]
    truth = [to_float(r.get("truth")) for r in rows]
    params = [to_float(r.get("params")) for r in rows] if rows and "params" in rows[0] else None
    finite = [i for i, (s, t) in enumerate(zip(score, truth)) if math.isfinite(s) and math.isfinite(t)]
    highlight = max(finite, key=lambda i: score[i]) if finite else None
    metric = _get(report, "protocol.metric") if report else None
    truth_label = f"benchmark truth ({metric})" if metric else "benchmark truth"
    tau = _num_or_none(report.get("kendall_tau")) if report else None
    title = f"Supernet score vs benchmark truth (n = {len(finite)}"
    title += f", Kendall tau = {fmt_num(tau, 3)})" if tau is not None else ")"
    png = plots.rank_scatter(score, truth, params, truth_label, highlight, title)
    dropped = len(rows) - len(finite)
    cap = (f"One dot per architecture in rank.csv ({len(rows)} rows), coloured by log10 of its parameter count."
           + (f" {dropped} row{'s' * (dropped != 1)} without a finite score or truth not shown." if dropped else ""))
    return ctx.image("rank_scatter.png", png, "supernet score against benchmark truth", cap, width=820)


def _fairness(ctx: _Ctx, bins: list[dict]) -> str:
    labels = plots.bin_labels(bins)
    rows = []
    for lbl, b in zip(labels, bins):
        lo, hi = b.get("complexity_min"), b.get("complexity_max")
        rows.append((lbl.split("\n")[0], f"{fmt_compact(lo)} – {fmt_compact(hi)}", _int_or_float(b.get("n")),
                     _num_or_none(b.get("kendall_tau")), _num_or_none(b.get("mean_error"))))
    png = plots.fairness_bars(labels, [b.get("kendall_tau") for b in bins], [b.get("mean_error") for b in bins])
    return ("<h3>By complexity bin</h3>"
            + table(["bin", "params", "n", "Kendall tau", "mean error"], rows, num_cols={2, 3, 4})
            + ctx.image("fairness.png", png, "Kendall tau and mean error by complexity bin",
                        "Ranking quality within each complexity bin (equal-count bins by parameter count). Mean "
                        "error: score rank percentile minus truth rank percentile (positive: the supernet ranks "
                        "these architectures higher than the benchmark does). n/a: too few architectures or no "
                        "variation in the bin."))


def _search_section(ctx: _Ctx) -> str:
    inp = ctx.inputs[RunDir.SEARCH]
    if inp.status != "ok":
        return ""
    data = inp.data
    best, hist = data["best"], data["history"]
    strategy = str(data.get("strategy", "")) if data.get("strategy") is not None else ""
    summary: list[tuple[str, Any]] = [("strategy", strategy or NA), ("architectures evaluated",
                                                                    _int_or_float(data.get("evaluations")))]
    info = data.get("info")
    if isinstance(info, dict):
        summary += [(k, v if is_number(v) else fmt_value(v)) for k, v in info.items()]
    proto = data.get("protocol")
    proto_html = ""
    if isinstance(proto, dict) and proto:
        proto_html = "<h3>Protocol</h3>" + kv_table(
            [(k, v if is_number(v) else fmt_value(v)) for k, v in proto.items()])
    parts = ['<div class="grid2"><div><h3>Summary</h3>' + kv_table(summary) + "</div><div>" + proto_html
             + "</div></div>"]
    if best:
        rows = []
        for i, b in enumerate(best):
            rows.append((i + 1, Markup(code(b.get("arch", NA), "arch")), _num_or_none(b.get("score")),
                         _num_or_none(b.get("truth")), _int_or_float(b.get("params")), _int_or_float(b.get("flops"))))
        parts.append("<h3>Top architectures</h3>"
                     + table(["#", "architecture", "score", "truth", "params", "flops"], rows,
                             num_cols={0, 2, 3, 4, 5}))
    else:
        parts.append(note("search.json lists no architectures"))
    if hist:
        xs = [h.get("evaluations", i + 1) for i, h in enumerate(hist)]
        ys = [h.get("best") for h in hist]
        parts.append(ctx.image("search_progress.png", plots.search_progress(xs, ys, strategy),
                               "best score against architectures evaluated",
                               "Best supernet score found so far against the number of architectures evaluated.",
                               width=820))
    if best:
        parts.append(_cells(ctx, best[:TOP_CELLS]))
    return _section(ctx, "search", "Search", "\n".join(parts))


def _cells(ctx: _Ctx, best: list[dict]) -> str:
    figs, problems = [], []
    for i, b in enumerate(best):
        arch = b.get("arch")
        if not isinstance(arch, str):
            problems.append(f"#{i + 1}: architecture is not a string ({arch!r})")
            continue
        try:
            png = draw_arch(arch, ctx.space)
        except ValueError as e:
            problems.append(f"#{i + 1}: cannot draw: {e}")
            continue
        cap = Markup(f"<b>#{i + 1}</b> score {esc(fmt_num(_num_or_none(b.get('score'))))}"
                     + (f" · truth {esc(fmt_num(_num_or_none(b.get('truth'))))}" if b.get("truth") is not None else "")
                     + f"<br>{code(arch, 'arch')}")
        ctx.images.append((f"cell_{i + 1}.png", png))
        figs.append(figure(png, f"drawing of architecture #{i + 1}", cap))
    out = [f"<h3>Best architecture{'s' * (len(best) > 1)} ({esc(ctx.space or 'unknown space')})</h3>"]
    legend = drawing_legend(ctx.space) if figs else None
    if legend:
        out.append(Markup(f'<p class="muted">{legend}</p>'))
    if figs:
        out.append('<div class="cells">' + "".join(figs) + "</div>")
    for p in problems:
        out.append(note(p))
    return "\n".join(out)


# -- the page -------------------------------------------------------------------------------------------------

_IMAGE_NAMES = ("training_curves.png", "lr.png", "loss_by_quintile.png", "rank_scatter.png", "fairness.png",
                "search_progress.png", "fewshot_curves.png", "grad_momentum_cos.png") + tuple(f"cell_{i + 1}.png" for i in range(TOP_CELLS))


def build_report(run_dir: Union[str, Path], out: Union[str, Path, None] = None) -> Path:
    """Write a self-contained HTML report of ``run_dir`` and return its path.

    ``out``: the HTML file to write (a directory means ``out/report.html``); default ``RUN/report.html``.
    The plots are embedded in the page as base64 PNGs and also written to a folder named after the page
    (``RUN/report/`` by default). Raises :class:`NotARunDirError` (a FileNotFoundError and ValueError) when
    ``run_dir`` is not a directory holding ``config.yaml``, and ValueError when config.yaml is unreadable.
    Every other input is optional: a section whose input is absent or unreadable is replaced by a note.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        why = "not a directory" if run_dir.exists() else "no such directory"
        raise NotARunDirError(f"{run_dir}: not a run directory ({why})")
    files = RunDir(run_dir)
    if not files.is_run():
        raise NotARunDirError(f"{run_dir}: not a run directory (no {files.CONFIG})")
    config = _read_config(files.config)
    space = _get(config, "space.name")
    ctx = _Ctx(run_dir=run_dir, inputs=_load_inputs(run_dir, config), config=config,
               space=str(space) if space is not None else "")

    from .fewshot import fewshot_section
    body = [_overview(ctx), _config_section(ctx), _env_section(ctx), _training_section(ctx),
            fewshot_section(run_dir, ctx.image, lambda a, t, b: _section(ctx, a, t, b)),
            _ranking_section(ctx), _search_section(ctx)]
    body = [b for b in body if b]
    nav = "<nav>" + "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in ctx.sections) + "</nav>"

    from .. import __version__
    now = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    header = (f"<h1>nshot run report: {esc(run_dir.resolve().name)}</h1>"
              f'<div class="meta">run directory <code>{esc(run_dir.resolve())}</code> · generated {esc(now)} · '
              f"space {esc(ctx.space or NA)}</div>")
    html_text = page(f"nshot report: {run_dir.resolve().name}", header, nav + "\n" + "\n".join(body),
                     f"Generated by nshot {esc(__version__)} from the files of the run directory. "
                     "Self-contained: the plots are embedded in this page.")

    out_path = Path(out) if out is not None else files.report
    if out_path.is_dir():
        out_path = out_path / RunDir.REPORT
    out_path.parent.mkdir(parents=True, exist_ok=True)
    img_dir = out_path.parent / out_path.stem
    img_dir.mkdir(parents=True, exist_ok=True)
    written = {name for name, _ in ctx.images}
    stale_names = set(_IMAGE_NAMES) | {p.name for p in img_dir.glob("gm_node*.png")}
    for name in stale_names:  # drop plots of a previous report whose input is gone
        stale = img_dir / name
        if name not in written and stale.is_file():
            stale.unlink()
    for name, png in ctx.images:
        atomic_write_bytes(img_dir / name, png)
    atomic_write_bytes(out_path, html_text.encode("utf-8"))
    return out_path
