"""Is the Hugging Face hub reachable? Asked before any hub download, so that an offline machine
fails in seconds with one line instead of after the hub client's retries."""

from __future__ import annotations


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect, so that an offline machine fails in seconds, not after the hub
    client's retries."""
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


def offline_and_not_cached(repo_id: str) -> bool:
    """True when HF_HUB_OFFLINE is set and the hub cache holds no config of `repo_id`: the name
    cannot load, and saying so needs no transformers import (seconds)."""
    import os

    if os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "", "false", "False"):
        return False
    from huggingface_hub import try_to_load_from_cache

    try:
        return not isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not even a valid repo id
        return True
