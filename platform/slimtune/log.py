"""User-facing progress lines. They go to stderr so stdout stays clean for JSON output.

Inside a Ray worker the lines are sent to the driver instead (see `set_sink`): Ray's own worker
output stays in Ray's log files, and the user's terminal shows only ours.
"""

import sys
from typing import Callable

_sink: Callable[[str], None] | None = None


def set_sink(sink: Callable[[str], None] | None) -> None:
    """Send lines to `sink` instead of stderr (None restores stderr)."""
    global _sink
    _sink = sink


def info(message: str) -> None:
    line = f"[slimtune] {message}"
    if _sink is not None:
        _sink(line)
    else:
        print(line, file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
