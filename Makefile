# Every target creates / updates the virtual environment first, so each one works on a
# fresh machine with nothing but Python 3.10+ and make.  CI (.ci/run) calls them unchanged.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test test-pythons reliability lint format demo bench i18n clean

# The other Python versions `make test-pythons` runs the whole suite on, each in its own
# venv (.venv-3.10, ...).  Found with pyenv when it is there, else as python3.X on PATH.
OTHER_PYTHONS ?= 3.10 3.13

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# The suite on two workers a core (pytest-xdist): much of a test's time is spent waiting
# on a CLI subprocess, the emulator or the rate gate, so a second worker per core keeps the
# cores busy (measured on 2 idle cores: 4 m 25 s on three workers, 4 m 07 s on four, 4 m 45 s
# on six).  The tests marked `timing` run one after another on one worker.
# TEST_WORKERS=0 runs it all in one process.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(2 * (os.cpu_count() or 1))')

# The package compiled first: the suite starts zuotang some thousand times, and where
# PYTHONDONTWRITEBYTECODE is set each start would compile it again (0.2 s of CPU each).
test: install
	$(BIN)/python -m compileall -q zuotang_cli
	$(BIN)/python -m pytest -q -m "not reliability" -n $(TEST_WORKERS) --dist loadgroup

# `make test PYTHON=/path/to/python3.10 VENV=.venv-3.10` runs one version by hand.
test-pythons:
	@set -e; for v in $(OTHER_PYTHONS); do \
	    py="$$(pyenv prefix $$v 2>/dev/null)/bin/python"; \
	    [ -x "$$py" ] || py="$$(command -v python$$v)" || { echo "no python$$v found" >&2; exit 1; }; \
	    echo "== Python $$v: $$py"; \
	    $(MAKE) --no-print-directory test PYTHON="$$py" VENV=.venv-$$v; \
	done

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

# The message catalogs (docs/i18n.md): the human text extracted into locale/zuotang.pot,
# merged into each language's .po (translate what is new or changed there), compiled to
# the .mo files the package ships.  tests/test_i18n.py fails while a .po lags behind.
LOCALE := zuotang_cli/locale

i18n: install
	$(BIN)/pybabel --quiet extract -F babel.cfg -k N_ --no-location --sort-output \
	    --project zuotang --copyright-holder "zuotang authors" \
	    --msgid-bugs-address "" -o $(LOCALE)/zuotang.pot .
	$(BIN)/pybabel --quiet update -i $(LOCALE)/zuotang.pot -d $(LOCALE) -D zuotang \
	    --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile --statistics -d $(LOCALE) -D zuotang

demo: install
	@bash samples/demo.sh

# Not part of `make test`: minutes long, and its figures depend on the machine.
# BENCH_ARGS=--quick for a short run while developing (see python -m tests.bench --help).
bench: install
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-* out .pytest_cache .mypy_cache .ruff_cache *.egg-info
