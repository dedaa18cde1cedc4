# GridFlex: `make test` and `make demo` do their own set-up on a fresh Debian/Ubuntu machine:
# system packages (apt-get, when missing), uv, the locked virtualenv in .venv/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests talk to for real: an MQTT broker and its command-line clients,
# VictoriaMetrics, which accepts the InfluxDB v2 write API (/api/v2/write) on loopback,
# InfluxDB 1.x (the v1 write API and the InfluxQL history reads), Chromium, the headless
# browser the dashboard's tests drive (Playwright, system browser), and PostgreSQL (the
# shared store's tests start their own server with initdb; pg_ctlcluster comes with it).
APT_PACKAGES := mosquitto mosquitto-clients victoria-metrics influxdb chromium postgresql
APT_BINARIES := /usr/sbin/mosquitto /usr/bin/mosquitto_sub /usr/bin/victoria-metrics /usr/bin/influxd /usr/bin/chromium /usr/bin/pg_ctlcluster

BUNDLE := dist/bundle
# The docker compose test bed (`make testbed` only; `make test` needs none of these):
# Debian's Docker daemon, compose v1.29 (no v2 plugin in Debian), debootstrap for a base
# image from Debian packages where Docker Hub is not reachable.
TESTBED_APT := docker.io docker-compose debootstrap
TESTBED_BINARIES := /usr/sbin/dockerd /usr/bin/docker-compose /usr/sbin/debootstrap
TESTBED_SITES ?= 3

.PHONY: help setup system-deps testbed-deps venv openadr-venv uftp-venv lint typecheck test test-all bench chaos demo bundle testbed clean

help:
	@echo "make test   - set up everything, then ruff, mypy and the test suite (unit + integration)"
	@echo "make demo   - set up everything, run the demo, serve its dashboard (URL printed) until Ctrl-C"
	@echo "make bench  - benchmarks that print figures (see docs/benchmarks.md)"
	@echo "make test-all - also the slow tests"
	@echo "make chaos  - the full chaos run against real processes, ~15 min (see docs/reliability.md)"
	@echo "make bundle - gridflex's wheel + every locked runtime wheel in $(BUNDLE), for gateways without PyPI"
	@echo "make testbed - build the images, run the docker compose test bed, check it, tear it down (deploy/README.md)"

system-deps:
	@missing=""; for f in $(APT_BINARIES); do [ -x "$$f" ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(APT_PACKAGES) with apt-get"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES); \
	fi

testbed-deps:
	@missing=""; for f in $(TESTBED_BINARIES); do [ -x "$$f" ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(TESTBED_APT) with apt-get"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(TESTBED_APT); \
	fi

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python python3
	@touch $@

venv: $(VENV)/.synced

setup: system-deps venv

# The OpenADR 3 tests' other party (docs/openadr.md): ElaadNL's openadr3-client needs Python >= 3.12,
# the project is on 3.11, so the client runs in its own venv as a subprocess of the test.
OA3_VENV := .venv-oa3
OA3_REQ := tests/integration/openadr/openadr3-requirements.txt
$(OA3_VENV)/.installed: $(OA3_REQ)
	@py=""; for c in python3.12 python3.13 $$HOME/.pyenv/versions/3.1[23].*/bin/python; do \
	  if "$$c" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then py=$$c; break; fi; \
	done; \
	if [ -z "$$py" ]; then echo "openadr-venv: no Python >= 3.12 (python3.12/3.13 on PATH or under ~/.pyenv)"; \
	elif rm -rf $(OA3_VENV) && "$$py" -m venv $(OA3_VENV) && $(OA3_VENV)/bin/pip install -q --no-deps -r $(OA3_REQ); then \
	  touch $@; \
	else rm -rf $(OA3_VENV); fi; \
	[ -f $@ ] || echo "openadr-venv: NOT built; the OpenADR interop test fails with CI=true and skips (saying so) otherwise"

openadr-venv: $(OA3_VENV)/.installed

# The UFTP tests' other party (docs/market.md): shapeshifter-uftp's fastapi-xml needs FastAPI
# 0.136-0.139, the project pins 0.165, so the library runs in its own venv as a subprocess of the test.
UFTP_VENV := .venv-uftp
UFTP_REQ := tests/integration/uftp/uftp-requirements.txt
$(UFTP_VENV)/.installed: $(UFTP_REQ)
	@if rm -rf $(UFTP_VENV) && python3 -m venv $(UFTP_VENV) && $(UFTP_VENV)/bin/pip install -q --no-deps -r $(UFTP_REQ); then \
	  touch $@; \
	else rm -rf $(UFTP_VENV); fi; \
	[ -f $@ ] || echo "uftp-venv: NOT built; the UFTP interop tests fail with CI=true and skip (saying so) otherwise"

uftp-venv: $(UFTP_VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

test: setup openadr-venv uftp-venv lint typecheck
	$(VENV)/bin/pytest

test-all: setup openadr-venv uftp-venv
	$(VENV)/bin/pytest -m "not bench"

bench: setup
	$(VENV)/bin/gridflex bench contract
	$(VENV)/bin/gridflex bench dispatch
	$(VENV)/bin/gridflex bench study
	$(VENV)/bin/gridflex bench ingest
	$(VENV)/bin/gridflex bench uftp
	$(VENV)/bin/gridflex bench loop --sites 100 --minutes 3

chaos: setup
	$(VENV)/bin/gridflex chaos --out chaos-table.md

demo: setup
	$(VENV)/bin/gridflex demo --serve

# The offline install for a site gateway: the project's wheel and every runtime wheel the
# lock pins (no dev group), for `pip install --no-index --find-links DIR gridflex`.
bundle: $(UV)
	rm -rf $(BUNDLE) && mkdir -p $(BUNDLE)
	$(UV) build --wheel --out-dir $(BUNDLE) -q
	$(UV) export --frozen --no-dev --no-hashes --no-emit-project --no-header -q -o $(BUNDLE)/requirements.txt
	$(TOOLS)/bin/pip download -q --only-binary=:all: -r $(BUNDLE)/requirements.txt -d $(BUNDLE)
	@echo "$(BUNDLE): $$(ls $(BUNDLE)/*.whl | wc -l) wheels, $$(du -sh $(BUNDLE) | cut -f1); install with:"
	@echo "  python3 -m venv /opt/gridflex && /opt/gridflex/bin/pip install --no-index --find-links $(BUNDLE) gridflex"

# Builds the images from a Debian base, brings the bed up on the host's network, checks
# telemetry stored, commands acked and a broker restart survived, then `down -v`.
testbed: setup testbed-deps
	$(PY) -m gridflex.ops.compose_bed --sites $(TESTBED_SITES)

clean:
	rm -rf $(VENV) $(OA3_VENV) $(UFTP_VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache .hypothesis
