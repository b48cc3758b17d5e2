"""Shared storage locations: checked up front, and folders copied whole through pyarrow."""

import pytest

from slimtune.errors import SlimtuneError
from slimtune.storage import download_dir, join, remove_dir, resolve, upload_dir


def test_resolve(tmp_path):
    assert resolve(None, tmp_path / "x") == str((tmp_path / "x").resolve())
    assert resolve("s3://bucket/runs/", tmp_path) == "s3://bucket/runs"
    assert resolve("gs://b/r", tmp_path) == "gs://b/r"
    assert join("s3://b/r", "job", "search") == "s3://b/r/job/search"
    with pytest.raises(SlimtuneError, match=r"--storage: use a local folder or an s3:// or gs:// URI, not ftp://"):
        resolve("ftp://host/x", tmp_path)


@pytest.mark.parametrize("uri", [False, True])
def test_upload_download_roundtrip(tmp_path, uri):
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("a")
    (source / "sub" / "b.bin").write_bytes(b"\x00\x01")
    target = f"file://{tmp_path / 'store' / 'job'}" if uri else str(tmp_path / "store" / "job")
    upload_dir(source, target)
    (source / "a.txt").write_text("changed")
    upload_dir(source, target)  # replaces the old copy whole
    assert not [p for p in (tmp_path / "store").iterdir() if "partial" in p.name]  # no staging left
    back = download_dir(target, tmp_path / "back")
    assert (back / "a.txt").read_text() == "changed" and (back / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    remove_dir(target)
    assert not (tmp_path / "store" / "job").exists()
