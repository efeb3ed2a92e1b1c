"""Screenshot of a run's HTML report in headless Chromium (a rendering check of `nshot.report`).

    python -m benchmarks.report_screenshot RUN_DIR --out OUT.png [--no-build] [--width 1280] [--height 4000]

Builds RUN_DIR/report.html (unless --no-build and it exists; RUN_DIR may also be an .html file), opens it
in headless Chromium and saves a PNG of the top ``--height`` pixels. Needs the ``chromium`` binary
(Debian: ``apt-get install chromium``). Exit status 2 with one ``error:`` line on failure.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: Path, out: Path, width: int = 1280, height: int = 4000, timeout: float = 180.0) -> Path:
    """Render ``html`` with headless Chromium into ``out`` (PNG); RuntimeError if Chromium fails."""
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("chromium not found on PATH (Debian: apt-get install -y chromium)")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    with tempfile.TemporaryDirectory(prefix="nshot-chromium-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={out}",
               f"--window-size={width},{height}", html.resolve().as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "HOME": profile})
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"chromium did not finish within {timeout:g}s") from e
    if not out.is_file() or out.stat().st_size == 0:
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-5:])
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): {tail}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="run directory (or a report .html file)")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--no-build", action="store_true", help="use the existing RUN_DIR/report.html if present")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--timeout", type=float, default=180.0)
    args = ap.parse_args(argv)
    try:
        if args.run_dir.is_file() and args.run_dir.suffix == ".html":
            html = args.run_dir
        else:
            html = args.run_dir / "report.html"
            if not (args.no_build and html.is_file()):
                from nshot.report import build_report
                html = build_report(args.run_dir)
        out = screenshot(html, args.out, args.width, args.height, args.timeout)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({args.width}x{args.height}) of {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
