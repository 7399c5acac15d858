# tbox — one Makefile for a fresh machine (Python 3.11, pip, gcc, apt).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
MPY_DIR := .cache/micropython
MPY_PKG := $(MPY_DIR)/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs

.PHONY: venv test bench soak lint demo tools mosquitto clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[mqtt,sim,test,lint,fleet]'
	@touch $(STAMP)

# Mosquitto for the MQTT uplink tests (a private broker per test on 127.0.0.1; Debian: /usr/sbin/mosquitto).
mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null) || echo "warning: mosquitto missing and not root; MQTT tests will be skipped (and fail under CI=true)"; }

# Node.js + the MicroPython WebAssembly port, used to run wire.py's tests under real MicroPython.
tools: $(MPY_PKG)

$(MPY_PKG):
	@command -v npm >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null) || echo "warning: npm missing and not root; MicroPython tests will fail"; }
	@mkdir -p $(MPY_DIR)
	cd $(MPY_DIR) && npm install --silent --no-audit --no-fund @micropython/micropython-webassembly-pyscript@1.27.0

test: venv tools mosquitto
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python -m pytest -q -s -m bench tests/bench

# the long runs kept out of `make test` (a simulated hour decoded, soak loops, a second Locust run)
soak: venv tools mosquitto
	$(BIN)/python -m pytest -q -m soak

lint: venv
	$(BIN)/ruff check agent sim tests
	$(BIN)/mypy
	$(BIN)/python board/micropython/tools/typecheck.py

demo: venv
	$(BIN)/tbox demo

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
