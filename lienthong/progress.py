"""A progress bar on stderr that needs no dependency and stays quiet when not on a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self._tty = sys.stderr.isatty()
        self._started = time.monotonic()
        self._last_draw = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self._tty and (now - self._last_draw > 0.1 or self.done >= self.total):
            self._last_draw = now
            width = 30
            filled = int(width * min(self.done, self.total) / self.total)
            rate = self.done / max(now - self._started, 1e-6)
            sys.stderr.write(
                f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.done}/{self.total} ({rate:,.0f}/s)"
            )
            sys.stderr.flush()

    def abandon(self) -> None:
        """Ended by a failure: the bar's line is ended, and no summary claims work was done
        (the failure is said in one line by whoever catches it)."""
        if self._tty:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def close(self, summary: bool = True) -> None:
        """End the bar; `summary=False` when the run failed and its error says it all."""
        elapsed = time.monotonic() - self._started
        if self._tty:
            sys.stderr.write("\n")
        if summary:
            sys.stderr.write(f"{self.label}: {self.done} in {elapsed:.1f} s\n")
        sys.stderr.flush()
