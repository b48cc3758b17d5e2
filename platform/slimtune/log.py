"""User-facing progress lines. They go to stderr so stdout stays clean for JSON output."""

import sys


def info(message: str) -> None:
    print(f"[slimtune] {message}", file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
