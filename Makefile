# localbcc: `make run` serves, `make test` tests. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: setup
	$(BIN)/localbcc serve

test: setup
	$(BIN)/python -m pytest

# Benchmarks (bench/run.py; installs wrk with apt-get if missing; about 2 minutes).
# `make bench BENCH_ARGS=--record` appends the figures to bench/RESULTS.md.
bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .localbcc bench/out
