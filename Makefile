# ArbSphere Rig — entry points. `make run` and `make test` work on a fresh clone with only
# Python >= 3.11 installed: the first target run creates .venv and installs the project.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CAMPAIGN ?=
# mypy cannot follow setuptools' package-dir mapping, so it checks a symlink view of the
# `arbsphere` namespace built under build/typeview (see tools/typeview.sh).
TYPEVIEW := build/typeview

.PHONY: run test lint bench format headers docs clean venv system-deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)
	$(VENV)/bin/arbsphere run $(CAMPAIGN)

test: lint system-deps
	$(PY) -m pytest -q

# iproute2 for the external-device tests (apt-get as root when missing; see the script)
system-deps:
	@sh tools/system_deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@sh tools/typeview.sh $(TYPEVIEW)
	cd $(TYPEVIEW) && ../../$(VENV)/bin/mypy --config-file ../../pyproject.toml -p arbsphere -p benchmarks
	cd $(TYPEVIEW) && PYTHONPATH=. ../../$(VENV)/bin/lint-imports ../../pyproject.toml
	cd tests && MYPYPATH=$(CURDIR)/$(TYPEVIEW) ../$(VENV)/bin/mypy --config-file ../pyproject.toml *.py
	cd examples && MYPYPATH=$(CURDIR)/$(TYPEVIEW) ../$(VENV)/bin/mypy --config-file ../pyproject.toml *.py

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) -m benchmarks

headers: $(STAMP)
	$(VENV)/bin/arbsphere headers

# the SDK's API reference (pdoc, offline) into build/docs; tests/test_sdk_api.py builds it too
docs: $(STAMP)
	$(PY) tools/build_docs.py build/docs

clean:
	rm -rf build .mypy_cache .pytest_cache .ruff_cache
