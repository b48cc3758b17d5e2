"""The int8 model in ONNX Runtime's ORT format, for ONNX Runtime Mobile (Android, iOS) and
reduced builds, made with ONNX Runtime's own converter.

`convert_onnx_models_to_ort` with the fixed optimisation style and `target_platform="arm"`
applies only the optimisations every build has and no x86-only layout fusions (NCHWc), so
the file runs on an ARM phone as well as here. The converter also writes the list of operators
(and their types) that a reduced ONNX Runtime build must include to run the model.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

ORT_FILE = "model.int8.ort"
OPERATORS_FILE = "required_operators.config"


def to_ort_format(onnx_path: Path, folder: Path) -> dict:
    """Write folder/model.int8.ort and folder/required_operators.config from `onnx_path`."""
    import logging

    import onnxruntime
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    for name in ("ort_format_model", "ort_format_model.utils"):  # "Created config in ..." on stderr
        logging.getLogger(name).setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="slimtune-ort-") as tmp:
        source, target = Path(tmp) / "in", Path(tmp) / "out"
        source.mkdir()
        shutil.copy(onnx_path, source / "model.int8.onnx")
        with contextlib.redirect_stdout(io.StringIO()):  # the converter prints a line per step
            convert_onnx_models_to_ort(source, output_dir=target, optimization_styles=[OptimizationStyle.Fixed],
                                       target_platform="arm")
        ort_files = list(target.rglob("*.ort"))
        configs = list(target.rglob("*.config")) or list(source.rglob("*.config"))
        if len(ort_files) != 1 or not configs:
            raise RuntimeError(f"the ORT converter wrote {[p.name for p in target.rglob('*')]}")
        shutil.copy(ort_files[0], folder / ORT_FILE)
        lines = configs[0].read_text().splitlines()  # its header names our temporary folder
        (folder / OPERATORS_FILE).write_text("\n".join(f"# - {ORT_FILE}" if l.startswith("# - ") else l for l in lines) + "\n")
    return {"ort_file": ORT_FILE, "ort_operators_file": OPERATORS_FILE, "ort_version": onnxruntime.__version__,
            "ort_optimization": "fixed, target_platform=arm", "size_mb_ort": (folder / ORT_FILE).stat().st_size / 1e6}
