# Every target creates / updates the virtual environment first, so each one works on a
# fresh machine with nothing but Python 3.10+ and make.  CI (.ci/run) calls them unchanged.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test reliability lint format demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q -m "not reliability"

# The long fault-storm / bad-input / secrets suites; rewrites tests/RELIABILITY.md.
reliability: install
	ZUOTANG_WRITE_RELIABILITY=1 $(BIN)/python -m pytest -q tests/reliability

lint: install
	$(BIN)/ruff check zuotang_cli tests
	$(BIN)/ruff format --check zuotang_cli tests
	$(BIN)/mypy

format: install
	$(BIN)/ruff format zuotang_cli tests
	$(BIN)/ruff check --fix zuotang_cli tests

demo: install
	@bash samples/demo.sh

# Not part of `make test`: minutes long, and its figures depend on the machine.
# BENCH_ARGS=--quick for a short run while developing (see python -m tests.bench --help).
bench: install
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache *.egg-info
