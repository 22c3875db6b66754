# fedlab workbench. `make lab` to learn, `make test` to check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JUPYTER_ARGS ?=
PYTEST_ARGS ?=
NBVAL := --nbval-lax --nbval-sanitize-with .ci/nbval-sanitize.cfg

.PHONY: install lab test test-unit test-notebooks tutorials smoke lint benchmark clean

install: $(STAMP)

# Re-installs only when the pins or the package metadata change.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

lab: install
	$(BIN)/jupyter lab --notebook-dir=notebooks $(JUPYTER_ARGS)

# The whole suite: unit tests, papermill smoke runs of every notebook (tests/),
# and nbval on the committed notebooks.
test: install
	FEDLAB_SMOKE=1 $(BIN)/python -m pytest tests notebooks $(NBVAL) $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest tests -m "not notebook" $(PYTEST_ARGS)

# Re-execute every notebook at its teaching defaults and keep the outputs.
tutorials: install
	$(BIN)/fedlab tutorials --inplace

smoke: install
	$(BIN)/fedlab tutorials --smoke --out /tmp/fedlab-smoke

lint: install
	$(BIN)/ruff check .

benchmark: install
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache executed
