# Two commands: `make demo` and `make test`. Both create .venv if missing and install the pinned stack.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
# CPU-only torch wheels. `torch==2.13.0` resolves there to 2.13.0+cpu, a local version that pip ranks above
# PyPI's 2.13.0 (the CUDA build, which pulls several GB of nvidia-* wheels). Override for a mirror.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test lint format install clean fuzz

# Create the venv and install the pinned stack, torch first. A torch 2.13.0 wheel already on disk (pip's
# configured find-links) is used without touching any index; otherwise TORCH_INDEX is added to the configured
# indexes. --extra-index-url, not --index-url: pip merges all indexes and picks the highest version, +cpu; the
# user's own index (PyPI or a mirror) still serves everything else. The last call finds torch installed, so it
# never asks TORCH_INDEX (on a machine that cannot reach it, pip would retry it for every package).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-index --no-deps -c constraints.txt "torch==2.13.0" 2>/dev/null \
		|| $(PY) -m pip install --quiet -c constraints.txt --extra-index-url $(TORCH_INDEX) "torch==2.13.0"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	@touch $(STAMP)

# Create .venv (or `make install VENV=path`) with the pinned stack; TORCH_INDEX=url picks torch's index
install: $(STAMP)

# Regenerate the conda / Binder environment from constraints.txt (stdlib script, needs no venv)
environment.yml: constraints.txt scripts/make_environment.py
	$(PYTHON) scripts/make_environment.py

demo: $(STAMP)
	$(VENV)/bin/oa-kit demo --out $(DEMO_OUT) --overwrite

# every test, the public API's docstring Examples as doctests, and the notebook series' stored outputs (nbval, smoke)
test: $(STAMP) lint
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules tests oa_kit/api.py
	OA_KIT_NOTEBOOK_MODE=smoke $(PY) -m pytest -q -p no:cacheprovider --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/*.ipynb

# ruff (lint + format check) and the one-way layer contract (import-linter); configuration in pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# the parsers' fuzz tests at full strength: 10,000 new random examples per parser (make test runs 50, seeded)
FUZZ_EXAMPLES ?= 10000
fuzz: $(STAMP)
	OA_KIT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) OA_KIT_FUZZ_RANDOM=1 $(PY) -m pytest -q -p no:cacheprovider tests/bad_inputs/test_fuzz.py

clean:
	rm -rf $(VENV) $(DEMO_OUT)

# ------------------------------------------------------------------------------------------- notebook series
NOTEBOOK_MODE ?= full
WORKSHOP_MODE ?= smoke
.PHONY: lab notebooks workshop exercises

# JupyterLab on notebooks/ (jupytext pairs notebooks/src/*.py with the .ipynb; plotly renders in the browser);
# LAB_ARGS adds options, e.g. `make lab LAB_ARGS="--no-browser --allow-root"` in a container
LAB_ARGS ?=
lab: $(STAMP)
	cd notebooks && OA_KIT_NOTEBOOK_MODE=$(NOTEBOOK_MODE) ../$(VENV)/bin/jupyter lab --notebook-dir=. $(LAB_ARGS)

# Re-execute every notebook from its source and store the outputs (smoke mode: what nbval checks in CI)
notebooks: $(STAMP)
	$(PY) scripts/run_notebooks.py --mode smoke
	$(PY) scripts/make_exercises.py

# Exercise versions (solution cells stripped) in notebooks/exercises/ (jupytext .py: no outputs to store)
exercises: $(STAMP)
	$(PY) scripts/make_exercises.py

# Prepare the workshop data (synthetic cohorts of WORKSHOP_MODE under notebooks/data/) and the exercises
workshop: $(STAMP)
	cd notebooks && OA_KIT_NOTEBOOK_MODE=$(WORKSHOP_MODE) ../$(PY) -c "from oa_kit import workshop; print(workshop.prepare_data('$(WORKSHOP_MODE)'))"
	$(PY) scripts/make_exercises.py

# Serve the three dashboards (knee view, cohort explorer, model report) on http://127.0.0.1:$(DASHBOARD_PORT)/ with
# dashboards/voila.json; OA_KIT_DATA=folder picks the data folder (default: $(DEMO_OUT), the output of `make demo`);
# JUPYTER_PATH finds the page template (dashboards/jupyter: Voila's lab template without its CDN stylesheets)
DASHBOARD_PORT ?= 8866
.PHONY: dashboard
dashboard: $(STAMP)
	OA_KIT_DATA="$${OA_KIT_DATA:-$(abspath $(DEMO_OUT))}" JUPYTER_PATH="$(abspath dashboards/jupyter)" \
		$(PY) -m voila --Voila.config_file_paths=dashboards --port=$(DASHBOARD_PORT) dashboards
