# Two commands a newcomer needs: `make app` (run the explorer) and `make test` (run the tests).
# Each installs what it needs into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install install-browser app test bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install torch==2.13.0

install: $(BIN)/python
	$(BIN)/pip install -e '.[test]'

install-browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium)

app: install
	$(BIN)/panel serve explorer/app.py --show

test: install install-browser
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m solver.bench
