# The two commands of the README: `make quickstart` (set up + main job) and `make test`.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.slimtune-setup

.PHONY: setup quickstart test test-fast

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

quickstart: setup
	$(BIN)/slimtune run jobs/quickstart.yaml

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not ray and not slow and not assets"
