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
DEMO_ENV = AI_INFRA_NETWORK_ENV=internal INTERNAL_REGISTRY=127.0.0.1:5552/aihpc RECONCILE_STACK=desired

.PHONY: demo test unit docs engine engine-down deps system-deps clean

demo: deps engine
	$(PY) -m tests.seeding desired
	@echo; echo "=== reconcile plan (internal network, Harbor stand-in at 127.0.0.1:5552) ==="
	@eval "$$($(PY) -m tests.harness env)" && $(DEMO_ENV) $(VENV)/bin/reconcile plan
	@echo; echo "=== reconcile apply --auto-approve ==="
	@eval "$$($(PY) -m tests.harness env)" && $(DEMO_ENV) $(VENV)/bin/reconcile apply --auto-approve
	@echo; echo "=== reconcile plan --detailed-exitcode (must be converged) ==="
	@eval "$$($(PY) -m tests.harness env)" && $(DEMO_ENV) $(VENV)/bin/reconcile plan --detailed-exitcode

test: deps engine
	$(PY) -m pytest

unit: deps
	$(PY) -m pytest tests/unit

docs: deps
	$(PY) docs/generate.py

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
	$(PY) -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
