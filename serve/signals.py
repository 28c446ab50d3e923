"""Ctrl-C and SIGTERM as a request to stop at the next safe point, for the long-running commands.

A KeyboardInterrupt raised at an arbitrary line can leave a lock held or a file half-written; instead the
first signal sets a flag that the work loop checks between steps (training: between batches, sampling:
between batches of sprites), and a second one aborts at once.
"""

from __future__ import annotations

import signal
import threading

import click


class StopRequest(threading.Event):
    """Set by a signal handler; remembers which signal, for the exit status (128 + signum)."""

    signum: int = signal.SIGINT

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


class stop_on_signals:
    """Within the block, Ctrl-C / SIGTERM set `stop` (saying `doing`); a second one stops at once."""

    def __init__(self, stop: StopRequest, doing: str):
        self.stop, self.doing, self.previous = stop, doing, {}

    def _handle(self, signum, _frame):
        click.echo(f"\n{signal.Signals(signum).name}: {self.doing} (again to abort at once)", err=True)
        self.stop.signum = signum
        self.stop.set()
        signal.signal(signum, self.previous.get(signum, signal.SIG_DFL))

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False
