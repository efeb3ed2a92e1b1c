"""Progress reporting: a bar on a terminal, plain log lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import Optional


class Progress:
    """Progress over ``total`` steps. ``mode``: auto (bar on a TTY, else log lines), bar, log or none."""

    def __init__(self, total: int, initial: int = 0, mode: str = "auto", desc: str = "", log_every: int = 50):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode, self.total, self.n, self.desc, self.log_every = mode, total, initial, desc, log_every
        self.t0, self.n0 = time.time(), initial
        self.bar = None
        if mode == "bar":
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=True)

    def update(self, n: int = 1, info: Optional[dict] = None) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
            if info:
                self.bar.set_postfix(info, refresh=False)
        elif self.mode == "log" and (self.n % self.log_every == 0 or self.n == self.total):
            rate = (self.n - self.n0) / max(time.time() - self.t0, 1e-9)
            extra = " ".join(f"{k} {v}" for k, v in (info or {}).items())
            print(f"{self.desc} {self.n}/{self.total} {extra} {rate:.1f} it/s".replace("  ", " "), flush=True)

    def write(self, msg: str) -> None:
        """Print a line without breaking the bar."""
        if self.mode == "none":
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
