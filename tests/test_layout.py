"""The dependency rule of ARCHITECTURE.md, enforced: the loop, losses, pruning and models never
import Ray; only `export` imports onnxruntime; `platform/` stays a plain folder."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "platform" / "slimtune"
RAY_ALLOWED = ("ray_session.py", "train/ray_train.py", "search/", "cli/")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_adapters_import_ray_and_only_export_imports_onnxruntime():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        found = _imports(path)
        if "ray" in found:
            assert rel.startswith(RAY_ALLOWED), f"{rel} imports ray"
        if "onnxruntime" in found:
            assert rel.startswith("export/"), f"{rel} imports onnxruntime"


def test_platform_is_a_plain_folder():
    assert not (ROOT / "platform" / "__init__.py").exists()
    assert [p.name for p in (ROOT / "platform").glob("*.py")] == []
