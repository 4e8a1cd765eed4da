# One verb per task; CI calls the same verbs (.ci/run -> make test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DB_URL ?= sqlite:///./data/botwire.db

.PHONY: install run test test-long lint format bench soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	mkdir -p data
	$(BIN)/botwire serve --db $(DB_URL)

lint: $(STAMP)
	$(BIN)/ruff check botwire_server botwire_client botwire tests bench
	$(BIN)/ruff format --check botwire_server botwire_client botwire tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix botwire_server botwire_client botwire tests bench
	$(BIN)/ruff format botwire_server botwire_client botwire tests bench

test: $(STAMP) lint
	$(BIN)/pytest -m "not slow"

# The long reliability runs (many crash cycles, long fuzzing); .ci/run runs it after `make test`.
test-long: $(STAMP)
	$(BIN)/pytest -m slow

# Soak: 64 connections of mixed traffic for 10 minutes, zero errors and flat server memory
# (options through SOAK_ARGS, e.g. SOAK_ARGS="--duration 120"; python -m bench.soak --help).
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

$(VENV)/.bench-installed: $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The benchmark suite, ~10-15 minutes, then the 10-minute soak (BENCH_SOAK=0 leaves it out);
# options through BENCH_ARGS (e.g. BENCH_ARGS=--quick) or BENCH_* variables
# (python -m bench --help). Needs root once, to install wrk.
BENCH_SOAK ?= 1
bench: $(VENV)/.bench-installed
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)
	if [ "$(BENCH_SOAK)" != 0 ]; then $(BIN)/python -m bench.soak $(SOAK_ARGS); fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
