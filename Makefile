# localbcc: `make run` serves, `make test` tests. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The request path is compiled with mypyc when the machine can (setup.py,
# docs/performance.md); it is compiled again when a source changed (compiled
# code also carries the types of the modules it imports).
BUILT  := $(VENV)/.compiled
SOURCES := $(shell find src/localbcc -name '*.py')
# Print the version (it says "compiled" or "pure Python (why)"), and say loudly
# when the build could not compile: everything still works, about 15% slower.
CHECK_BUILD = v=$$($(BIN)/localbcc --version) && echo "$$v" && case "$$v" in *"(compiled)") ;; \
	*) echo "localbcc: NOTE: the request path was not compiled (the reason is above); it runs as pure Python. LOCALBCC_COMPILE=required makes this an error." >&2 ;; esac

.PHONY: setup run test bench clean

setup: $(STAMP) $(BUILT)

$(STAMP): pyproject.toml constraints.txt setup.py
	@echo "localbcc: setting up $(VENV): pinned dependencies, then the request path compiled"
	@echo "localbcc: with mypyc (about a minute the first time; later runs start at once)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	@$(CHECK_BUILD)
	touch $(STAMP) $(BUILT)

$(BUILT): $(SOURCES) | $(STAMP)
	@echo "localbcc: sources changed: compiling the request path again (about a minute)"
	$(BIN)/pip install --quiet --no-deps -e .
	@$(CHECK_BUILD)
	touch $(BUILT)

run: setup
	$(BIN)/localbcc serve

test: setup
	$(BIN)/python -m pytest

# Benchmarks (bench/run.py; installs wrk with apt-get if missing; about 2 minutes).
# `make bench BENCH_ARGS=--record` appends the figures to bench/RESULTS.md.
bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .localbcc bench/out build .mypy_cache src/localbcc/compiled.json
	find src -name '*.so' -delete
