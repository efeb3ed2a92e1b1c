"""HTML report of a run directory: configuration, environment, training curves, ranking, search.

``build_report(run_dir)`` writes ``RUN/report.html`` (self-contained: plots embedded as base64 PNGs) and the
PNGs into ``RUN/report/``. Plots use matplotlib's Agg canvas directly (no pyplot, no global backend change).
"""
from .build import NotARunDirError, build_report
from .cell_drawing import draw_arch, register_drawer

__all__ = ["NotARunDirError", "build_report", "draw_arch", "register_drawer"]
