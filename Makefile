# agegate: `make demo` to try it, `make test` to check everything.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# Debian packages the test suite drives for real (redis, browser, front proxies, load generator).
DEB_PACKAGES := redis-server chromium chromium-driver nginx caddy wrk
DEB_COMMANDS := redis-server chromium chromedriver nginx caddy wrk

.PHONY: demo test lint typecheck pytest bench bench-forward-auth soak install system-deps interop-deps clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e . --group dev
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/agegate demo

# Installs what the tests need when it is missing, then lint, types and the whole suite.
test: install system-deps interop-deps lint typecheck pytest

system-deps:
	@missing=""; for c in $(DEB_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing=yes; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $(DEB_PACKAGES)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
	fi

# npm ci refuses a lock whose platform-only optional packages (cbor-extract's) it left out
# itself (npm 11); npm install then installs the same locked versions.
interop-deps:
	@for dir in tests/interop tests/interop/*/; do \
	  if [ -f $$dir/package.json ] && [ ! -f $$dir/node_modules/.installed ]; then \
	    (cd $$dir && { npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || \
	      npm install --no-audit --no-fund --loglevel=error; }) && touch $$dir/node_modules/.installed || exit 1; \
	  fi; \
	done

lint: install
	$(VENV)/bin/ruff check gateway verifiers tests loadtests
	$(VENV)/bin/ruff format --check gateway verifiers tests loadtests
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install system-deps
	bash loadtests/bench.sh

bench-forward-auth: install system-deps
	bash loadtests/forward_auth.sh

# 10 minutes of mixed traffic (SOAK_SECONDS to change), RSS sampled every 10 s; see loadtests/soak.py.
soak: install system-deps
	PYTHONPATH=. $(PY) loadtests/soak.py

# Every node_modules (interop tests, Privacy Pass interop, any other) and hypothesis databases.
clean:
	rm -rf $(VENV) .import_linter_cache tests/artifacts .pytest_cache .mypy_cache .ruff_cache
	find . -path ./.git -prune -o \( -name node_modules -o -name .hypothesis \) -type d \
	  -prune -exec rm -rf {} +
