# distributor: `make run` starts everything; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
N      ?= 100000

.PHONY: help install run test test-fast lint format typecheck lock clean \
        bench-send bench-relay bench-newsroom bench-import bench-tracking bench-render chaos \
        bounce-accuracy bench-reports bench-audience bench-scale

help:
	@echo "make run      - install, migrate, seed demo data, start web+worker+beat+dev SMTP inbox"
	@echo "make test     - install test tools and run the whole test suite"
	@echo "make lint     - ruff check, ruff format --check, mypy"
	@echo "make lock     - refresh constraints.txt from the current virtualenv"
	@echo "make chaos    - fault-injection run: duplicates, lost and in-doubt messages (N=, SCENARIOS=)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,dev]"
	@touch $(STAMP)

install: $(STAMP)

run: install
	@mkdir -p var
	$(BIN)/flask --app web db upgrade
	$(BIN)/flask --app web demo seed
	exec $(BIN)/python -m distributor.runner

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not integration and not browser" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy distributor

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,dev]"
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

bench-send: install
	$(BIN)/python benchmarks/bench_send.py -n $(N)

# make bench-scale [SIZES=10000,100000,1000000]: bench-send at each size, then a table of rate,
# freeze time and CPU per message (PostgreSQL, workers, Redis) and worker RSS.
bench-scale: install
	$(BIN)/python benchmarks/bench_send_scale.py $(if $(SIZES),--sizes $(SIZES))

bench-relay: install
	$(BIN)/python benchmarks/bench_relay.py -n $(or $(RELAY_N),20000)

bench-import: install
	$(BIN)/python benchmarks/bench_import.py -n $(N)

bench-tracking: install
	$(BIN)/python benchmarks/bench_tracking.py

bench-newsroom: install
	$(BIN)/python benchmarks/bench_newsroom.py --releases $(or $(RELEASES),10000)

bench-render: install
	$(BIN)/python benchmarks/bench_render.py

# make chaos [N=10000] [SCENARIOS=sigkill-30-60,flushall]: N defaults to 10000 here, not to the
# benchmarks' 100000.
CHAOS_N = $(if $(filter command line environment,$(origin N)),$(N),10000)

chaos: install
	$(BIN)/python -m benchmarks.chaos -n $(CHAOS_N) $(if $(SCENARIOS),--scenarios $(SCENARIOS))

bounce-accuracy: install
	$(BIN)/python -m benchmarks.bounce_accuracy

bench-reports: install
	$(BIN)/python benchmarks/bench_reports.py

# N defaults to 1,000,000 here; `make bench-audience N=100000` runs it smaller.
bench-audience: install
	$(BIN)/python benchmarks/bench_audience.py -n $(if $(filter command line environment,$(origin N)),$(N),1000000) $(if $(REUSE),--reuse)
