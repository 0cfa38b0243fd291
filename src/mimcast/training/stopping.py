"""Stopping on a signal: finish the current step, save a checkpoint, then stop.

SIGINT (Ctrl-C), SIGTERM (a scheduler) and SIGHUP (a closed terminal or ssh session) all ask
the run to stop after the step in progress; a second signal aborts at once
(KeyboardInterrupt). The handlers that were installed before are restored afterwards.
"""

from __future__ import annotations

import contextlib
import signal
from types import FrameType

SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class StopSignals:
    """Context manager; `received` names the first stop signal, or is None."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        for sig in SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: no handlers
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
