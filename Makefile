# agentev developer tasks. `make setup` is idempotent: the venv is rebuilt only
# when pyproject.toml / setup.cfg change (stamp file .venv/.installed).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Lint only the folders that exist (benchmarks/ may not be there yet).
LINT_PATHS := $(wildcard agentev tests viz benchmarks)

.DEFAULT_GOAL := help
.PHONY: help setup glpk chromium mosquitto webassets run test bench clean

help:
	@echo "make setup  - install glpk-utils, chromium and mosquitto (if missing), create .venv,"
	@echo "              pip install -e '.[dev,lstm]', fetch Solara's web assets (npm registry)"
	@echo "make run    - run the light scenario with the fcfs strategy (seed 42)"
	@echo "make test   - ruff check + pytest"
	@echo "make bench  - run benchmarks/bench_core.py"
	@echo "make clean  - remove .venv, caches and build artefacts"

setup: glpk chromium mosquitto $(STAMP) webassets

# GLPK's glpsol is a system binary (used by Pyomo); install it from Debian if missing.
glpk:
	@if ! command -v glpsol >/dev/null 2>&1; then \
		echo ">> glpsol not found: installing glpk-utils"; \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -q; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends glpk-utils; \
		command -v glpsol >/dev/null 2>&1 || { echo "ERROR: glpsol still missing after installing glpk-utils" >&2; exit 1; }; \
	fi

# Debian's Chromium, for the browser test (tests/test_browser.py drives it with Playwright,
# which cannot download a browser of its own here).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo ">> /usr/bin/chromium not found: installing chromium"; \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -q; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
		[ -x /usr/bin/chromium ] || { echo "ERROR: /usr/bin/chromium still missing after installing chromium" >&2; exit 1; }; \
	fi

# Debian's Mosquitto MQTT broker, for the twin's MQTT tests (tests/mqtt_broker.py starts a
# private one on a free port of 127.0.0.1; a system service on port 1883 is not used).
mosquitto:
	@if [ ! -x /usr/sbin/mosquitto ]; then \
		echo ">> /usr/sbin/mosquitto not found: installing mosquitto"; \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -q; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mosquitto; \
		[ -x /usr/sbin/mosquitto ] || { echo "ERROR: /usr/sbin/mosquitto still missing after installing mosquitto" >&2; exit 1; }; \
	fi

# Solara's JavaScript/CSS/fonts from the npm registry into ~/.cache/agentev/solara-assets
# (or $AGENTEV_ASSETS_DIR), so the interactive page renders without CDN access.
# Downloads only what is missing.
webassets: $(STAMP)
	$(VPY) -m agentev.webassets

$(STAMP): pyproject.toml setup.cfg
	@if [ ! -x "$(VPY)" ]; then \
		echo ">> creating $(VENV) with $$(command -v $(PYTHON)) ($$($(PYTHON) --version 2>&1))"; \
		$(PYTHON) -m venv $(VENV); \
	fi
	@if ! $(VPY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then \
		echo "ERROR: $(VENV) uses $$($(VPY) --version 2>&1); agentev needs Python >= 3.12." >&2; \
		echo "       '$(PYTHON)' should resolve to 3.12 via .python-version (pyenv);" >&2; \
		echo "       or run: make setup PYTHON=/path/to/python3.12" >&2; \
		rm -rf $(VENV); \
		exit 1; \
	fi
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -e '.[dev,lstm]'
	@touch $(STAMP)

run: setup
	$(VENV)/bin/agentev run --scenario light --strategy fcfs --seed 42 --out results/light-fcfs-42

test: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VPY) -m pytest

bench: setup
	$(VPY) benchmarks/bench_core.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
