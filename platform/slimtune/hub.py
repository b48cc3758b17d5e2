"""Is the Hugging Face hub reachable? Asked before any hub download, so that an offline machine
fails in seconds with one line instead of after the hub client's retries."""

from __future__ import annotations


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect, so that an offline machine fails in seconds, not after the hub
    client's retries (about 25 s)."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return True  # offline mode: the hub client itself answers at once from the local cache
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
