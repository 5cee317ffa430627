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
	# The kernels compiled once now (numba caches them on disk): ~5 s the first time, then 1 s; else the
	# first solve waits for it.
	$(BIN)/python -c "from solver.kernels import compile_kernels; compile_kernels()"

install-browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium)

# Served on this machine only (127.0.0.1); README "Robustness" says how to serve it on a network.
app: install
	$(BIN)/panel serve explorer/app.py --address 127.0.0.1 --port 5006 --allow-websocket-origin=127.0.0.1:5006 --allow-websocket-origin=localhost:5006 --show

test: install install-browser
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m solver.bench
