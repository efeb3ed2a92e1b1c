"""Small HTML helpers for the run report: escaping, number formatting, tables, the page shell.

Everything that is not a :class:`Markup` is escaped with :func:`html.escape` before it reaches the page.
"""
from __future__ import annotations

import base64
import html as _html
import math
from typing import Any, Iterable, Optional, Sequence

NA = "n/a"


class Markup(str):
    """A string that is already HTML (built by these helpers from escaped parts); inserted as is."""


def esc(value: Any) -> str:
    """``value`` as escaped HTML text (quotes included)."""
    if isinstance(value, Markup):
        return str(value)
    return _html.escape(str(value), quote=True)


def to_float(value: Any) -> float:
    """``value`` as a float; NaN for None, booleans, unparsable strings and other types."""
    if value is None or isinstance(value, bool):
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return math.nan
    if hasattr(value, "item"):  # numpy scalars
        try:
            return float(value.item())
        except (TypeError, ValueError):
            return math.nan
    return math.nan


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fmt_num(value: Any, digits: int = 4) -> str:
    """A number with about ``digits`` significant digits; "n/a" for None/NaN/inf.

    Integers get thousands separators; floats >= 1000 are shown without decimals (``12,346``); tiny
    values use 3 significant digits (``0.0005``, ``1.23e-05``).
    """
    if value is None:
        return NA
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    x = to_float(value)
    if not math.isfinite(x):
        return NA
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e15:
        return f"{x:.3e}"
    if a >= 1000:
        return f"{x:,.0f}"
    if a < 1e-3:
        return f"{x:.3g}"
    return f"{x:.{digits}g}"


def fmt_compact(value: Any) -> str:
    """A count in compact form: 73,306 -> 73.3k, 1,531,556 -> 1.53M."""
    x = to_float(value)
    if not math.isfinite(x):
        return NA
    a = abs(x)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def fmt_duration(seconds: Any) -> str:
    """Seconds as ``1h 02m 03s`` / ``2m 03s`` / ``4.2s``."""
    s = to_float(seconds)
    if not math.isfinite(s):
        return NA
    if s < 60:
        return f"{s:.3g}s"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else f"{m}m {sec:02d}s"


def fmt_value(value: Any) -> str:
    """Any config/protocol value as text: numbers via :func:`fmt_num`, None as "null", lists joined."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        if isinstance(value, float) and math.isfinite(value) and value != 0 and abs(value) < 1e-3:
            return f"{value:g}"  # 5e-4 stays exact in a config table
        return fmt_num(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def cell(value: Any) -> tuple[str, bool]:
    """(escaped HTML, is_numeric) for a table cell."""
    if isinstance(value, Markup):
        return str(value), False
    if value is None:
        return NA, True
    if is_number(value):
        return esc(fmt_num(value)), True
    return esc(value), False


def with_code(text: Any) -> Markup:
    """Escaped ``text`` where each `backquoted` part becomes ``<code>``."""
    parts = esc(text).split("`")
    if len(parts) % 2 == 0:  # unbalanced: leave the backquotes as they are
        return Markup(esc(text))
    return Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


def code(text: Any, cls: str = "") -> Markup:
    c = f' class="{esc(cls)}"' if cls else ""
    return Markup(f"<code{c}>{esc(text)}</code>")


def table(header: Optional[Sequence[Any]], rows: Iterable[Sequence[Any]], cls: str = "",
          num_cols: Optional[set[int]] = None) -> Markup:
    """An HTML table; numeric cells (or columns in ``num_cols``) are right-aligned."""
    out = [f'<table class="{esc(cls)}">' if cls else "<table>"]
    if header:
        out.append("<thead><tr>")
        for i, h in enumerate(header):
            num = num_cols is not None and i in num_cols
            out.append(f'<th{" class=num" if num else ""}>{esc(h)}</th>')
        out.append("</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        out.append("<tr>")
        for i, v in enumerate(row):
            text, num = cell(v)
            if num_cols is not None:
                num = i in num_cols
            out.append(f'<td{" class=num" if num else ""}>{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return Markup("".join(out))


def kv_table(items: Iterable[tuple[Any, Any]]) -> Markup:
    """A two-column key/value table (keys as row headers)."""
    out = ['<table class="kv"><tbody>']
    for k, v in items:
        text, _ = cell(v)  # values stay left-aligned: a key/value table mixes numbers and text
        out.append(f"<tr><th>{esc(k)}</th><td>{text}</td></tr>")
    out.append("</tbody></table>")
    return Markup("".join(out))


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(png: bytes, alt: str, caption: Any = None, width: Optional[int] = None) -> Markup:
    """An ``<figure>`` holding ``png`` embedded as a base64 data URI."""
    style = f' style="max-width:{int(width)}px"' if width else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption is not None else ""
    return Markup(f'<figure{style}><img src="{png_data_uri(png)}" alt="{esc(alt)}">{cap}</figure>')


def note(text: Any, cls: str = "note") -> Markup:
    return Markup(f'<div class="{esc(cls)}">{esc(text)}</div>')


CSS = """
:root { --fg:#1d2330; --muted:#5d6678; --line:#dfe3ea; --soft:#f4f6f9; --accent:#2457a6;
        --warn-bg:#fff7e3; --warn-line:#e3b341; --ok:#2f855a; --absent:#a0693a; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background: #1f2a3c; color: #fff; }
header .inner, main { max-width: 1120px; margin: 0 auto; padding-left: 28px; padding-right: 28px; }
header .inner { padding-top: 20px; padding-bottom: 18px; }
header h1 { margin: 0 0 6px; font-size: 23px; font-weight: 650; }
header .meta { color: #c8d2e2; font-size: 13.5px; }
header .meta code { color: #fff; background: rgba(255,255,255,.08); padding: 1px 5px; border-radius: 3px;
                    word-break: break-all; }
nav { font-size: 14px; margin: 14px 0 0; }
nav a { color: var(--accent); text-decoration: none; margin-right: 16px; }
nav a:hover { text-decoration: underline; }
main { padding-bottom: 56px; }
h2 { font-size: 19px; margin: 34px 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; color: var(--muted); font-weight: 600; }
p { margin: 6px 0 10px; }
table { border-collapse: collapse; font-size: 14px; margin: 4px 0 14px; }
th, td { padding: 4px 12px 4px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: var(--soft); font-weight: 600; border-bottom: 1px solid #cfd5df; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { font-weight: 500; color: var(--muted); white-space: nowrap; background: none; }
table.kv td { word-break: break-word; font-variant-numeric: tabular-nums; }
.grid2 > div > h3:first-child { margin-top: 4px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace;
            font-size: 12.5px; }
code.arch { word-break: break-all; }
td.arch { max-width: 560px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 4px 32px;
         align-items: start; }
.cells { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 14px 20px; }
.cells figure { margin: 0; }
figure { margin: 8px 0 18px; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 4px; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 4px; }
figcaption code { word-break: break-all; }
.note { background: var(--warn-bg); border-left: 4px solid var(--warn-line); padding: 8px 12px; margin: 10px 0;
        font-size: 14px; }
.note ul { margin: 4px 0; padding-left: 20px; }
.muted { color: var(--muted); font-size: 13.5px; }
.ok { color: var(--ok); font-weight: 600; }
.absent { color: var(--absent); font-weight: 600; }
.error { color: #b42318; font-weight: 600; }
details { margin: 6px 0 12px; }
summary { cursor: pointer; color: var(--accent); font-size: 14px; }
details pre { background: var(--soft); padding: 10px 12px; overflow: auto; max-height: 420px; border-radius: 4px; }
footer { color: var(--muted); font-size: 12.5px; margin-top: 40px; border-top: 1px solid var(--line);
         padding-top: 10px; }
"""


def page(title: str, header_html: str, body_html: str, footer_html: str = "") -> str:
    """The whole HTML document (inline CSS, no scripts, no external resources)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<header><div class=\"inner\">{header_html}</div></header>\n"
            f"<main>\n{body_html}\n<footer>{footer_html}</footer>\n</main>\n</body>\n</html>\n")
