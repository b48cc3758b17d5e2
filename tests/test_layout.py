"""The dependency rule, enforced: the loop, losses, pruning and models never
import Ray; only `export` imports onnxruntime; `platform/` stays a plain folder."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "platform" / "slimtune"
RAY_ALLOWED = ("ray_session.py", "train/ray_train.py", "searching/", "cli/")


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
            assert rel.startswith("exporting/"), f"{rel} imports onnxruntime"


def test_platform_is_a_plain_folder():
    assert not (ROOT / "platform" / "__init__.py").exists()
    assert [p.name for p in (ROOT / "platform").glob("*.py")] == []


def test_training_loop_runs_without_pandas_or_ray():
    """A GPU box with only torch and transformers runs the loop and the GPU benchmark."""
    import subprocess
    import sys

    code = (
        "import importlib.abc, sys\n"
        "class B(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in {'pandas', 'ray', 'datasets', 'optuna', 'onnxruntime'}:\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, B())\n"
        "from slimtune.train.loop import train, TrainSpec, LocalContext\n"
        "from slimtune.data.tokenize import EncodedSplit\n"
        "from slimtune.models.surgery import prune_heads\n"
        "from slimtune.distillation.losses import DistillLoss\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_stages_take_the_version_from_its_own_module_which_matches_pyproject():
    import tomllib

    from slimtune.version import __version__

    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == __version__
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "slimtune":
                assert "__version__" not in {a.name for a in node.names}, f"{path.name}: from slimtune.version"
