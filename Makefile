# fedlab workbench. `make lab` to learn, `make test` to check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JUPYTER_ARGS ?=
PYTEST_ARGS ?=
NBVAL := --nbval-lax --nbval-sanitize-with .ci/nbval-sanitize.cfg

# JupyterLab refuses to start as root without --allow-root (containers, cloud notebooks).
ROOT_ARGS := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: install lab test test-unit test-robust tutorials tutorials-check smoke site lint benchmark clean

install: $(STAMP)

# Re-installs only when the pins or the package metadata change. The exact versions
# come from constraints.txt; pyproject.toml declares the ranges.
$(STAMP): constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip check
	touch $(STAMP)

lab: install
	@echo "Starting JupyterLab on notebooks/. Open the URL with ?token= that it"
	@echo "prints below in your browser (JUPYTER_ARGS=\"--no-browser --port 8888\" to choose)."
	@echo "Ctrl-C stops it."
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_ARGS) $(JUPYTER_ARGS)

# The whole suite: unit tests, the notebooks' skeleton checks (tests/), and nbval on the
# committed notebooks, which executes every cell in smoke mode. TEST_WORKERS pytest
# workers (pytest-xdist) share the files between them, one file per worker at a time (a
# notebook's cells must stay in one kernel); each uses one thread.
TEST_WORKERS ?= 2
test: install
	FEDLAB_SMOKE=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests notebooks $(NBVAL) \
		-n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest tests -m "not notebook" $(PYTEST_ARGS)

# The learned-quality tests for seed offsets 0-4 under 1 thread and the default thread
# count, with the worst margin of each check. Run it after changing a `quality` test.
test-robust: install
	$(BIN)/python .ci/test_robust.py $(PYTEST_ARGS)

# Re-execute every notebook at its teaching defaults and keep the outputs.
tutorials: install
	$(BIN)/fedlab tutorials --inplace

# Every lesson at its teaching defaults with its claim cells asserting: fails when a
# lesson's prose says something its own numbers no longer show. TUTORIALS_ARGS="--seed 1
# --threads 1" moves it to another seed and thread count.
TUTORIALS_ARGS ?=
tutorials-check: install
	$(BIN)/fedlab tutorials --check --out build/tutorials-check $(TUTORIALS_ARGS)

smoke: install
	$(BIN)/fedlab tutorials --smoke --out /tmp/fedlab-smoke

# The static site (README, the committed lessons with their outputs, the API reference)
# in site/; nothing is executed. Open it with: python -m http.server -d site 8000
site: install
	$(BIN)/fedlab site --out site

lint: install
	$(BIN)/ruff check .

benchmark: install
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache executed
