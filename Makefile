# Two commands on a fresh machine: `make demo` and `make test`.
# Everything they need is installed here; nothing touches the system's Docker daemon:
# the private engine lives under $(ENGINE_ROOT) with its own socket and ports.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ENGINE_ROOT ?= /tmp/reconcile-engine
export RECONCILE_ENGINE_ROOT := $(ENGINE_ROOT)
APT_PACKAGES := docker.io docker-registry busybox-static

.PHONY: demo test unit lint format docs bench engine engine-down deps system-deps clean

# The demo works on a copy of desired/ (build/demo), so rendered files and the
# edit it makes never touch the repository.
DEMO_DIR := build/demo
DEMO_ENV = AI_INFRA_NETWORK_ENV=internal INTERNAL_REGISTRY=127.0.0.1:5552/aihpc RECONCILE_STACK=$(DEMO_DIR)
RECONCILE = eval "$$($(PY) -m tests.harness env)" && $(DEMO_ENV) $(VENV)/bin/reconcile

demo: deps engine
	$(PY) -m tests.seeding desired
	$(PY) -m tests.harness reset
	rm -rf $(DEMO_DIR) && mkdir -p build && cp -r desired $(DEMO_DIR)
	@echo; echo "=== reconcile plan (internal network, Harbor stand-in at 127.0.0.1:5552) ==="
	@$(RECONCILE) plan
	@echo; echo "=== reconcile apply --auto-approve: pulls, aliases, rendered files, then every build ==="
	@$(RECONCILE) apply --auto-approve
	@echo; echo "=== reconcile plan --detailed-exitcode (must be converged) ==="
	@$(RECONCILE) plan --detailed-exitcode
	@echo; echo "=== edit one context file of the base service, then plan: base and the two services built FROM it ==="
	echo "# demo edit $$(date +%s)" >> $(DEMO_DIR)/src/base/etc/ai-infra/release
	@$(RECONCILE) plan

test: deps engine
	$(PY) -m pytest

unit: deps
	$(PY) -m pytest tests/unit

# ruff: the lint rules and the formatter, both configured in pyproject.toml.
lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: deps
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: deps
	$(PY) docs/generate.py

bench: deps
	$(PY) benchmarks/context_hash.py 20000 4
	$(PY) benchmarks/context_hash.py 2000 256

engine: deps
	$(PY) -m tests.harness up >/dev/null

engine-down:
	$(PY) -m tests.harness down

deps: system-deps $(VENV)/.installed

# apt-get only when something is missing, so repeated runs stay fast and offline.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
