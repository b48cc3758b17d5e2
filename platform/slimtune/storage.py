"""Where runs keep what must outlive a node: a local folder, or an `s3://` / `gs://` URI.

On one machine the default (a folder under `--out`) is enough. On a cluster every node must
reach Ray Train's checkpoints and Tune's trial state, so `--storage` names shared storage: a
network folder mounted on every node, or object storage. Ray reads and writes it through
pyarrow's filesystems, and so does this module when it copies results there. Credentials come
from the usual places (AWS_* variables or instance roles, GOOGLE_APPLICATION_CREDENTIALS) and are
never logged or written into our files.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from slimtune.errors import SlimtuneError

SCHEMES = ("s3", "gs", "gcs", "file")


def is_uri(location: str) -> bool:
    return "://" in location


def resolve(location: str | None, default: Path, flag: str = "--storage") -> str:
    """An absolute local path or a URI Ray and pyarrow accept; checked before any work starts."""
    if not location:
        return str(default.resolve())
    if is_uri(location):
        scheme = location.split("://", 1)[0].lower()
        if scheme not in SCHEMES:
            raise SlimtuneError(f"{flag}: use a local folder or an s3:// or gs:// URI, not {scheme}://")
        return location.rstrip("/")
    return str(Path(location).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *parts]) if is_uri(location) else str(Path(location, *parts))


def ensure_writable(folder: str | Path, flag: str = "--out") -> Path:
    """Create `folder` (and its parents) and prove it takes a file, or fail in one line now,
    before any expensive work."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".slimtune-write-test-{uuid.uuid4().hex[:8]}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise SlimtuneError(f"{flag}: cannot write to {folder} ({exc.strerror or type(exc).__name__}); "
                            "pick a folder you can write to") from None
    return folder


def write_text_atomic(path: Path, text: str) -> Path:
    """Write a local file under a temporary name, then rename it: a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def _fs(location: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(location) if is_uri(location) else (pafs.LocalFileSystem(), location)


def upload_dir(local: Path, location: str) -> str:
    """Copy a local folder to `location`, whole or not at all where the store allows: into a
    temporary sibling first, then moved into place (a rename on local and mounted folders; object
    stores have no rename, but every object there is written whole)."""
    import pyarrow.fs as pafs

    fs, path = _fs(location)
    staging = f"{path.rstrip('/')}.partial-{uuid.uuid4().hex[:8]}"
    pafs.copy_files(str(local), staging, destination_filesystem=fs)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)
    fs.move(staging, path)
    return location


def download_dir(location: str, local: Path) -> Path:
    """Copy a folder from storage to a local one (a temporary sibling, then renamed)."""
    import pyarrow.fs as pafs

    fs, path = _fs(location)
    staging = local.with_name(f".{local.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.parent.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(staging), source_filesystem=fs)
    staging.rename(local)
    return local


def remove_dir(location: str) -> None:
    import pyarrow.fs as pafs

    fs, path = _fs(location)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)
