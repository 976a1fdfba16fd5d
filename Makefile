# Two entry points, each creates or refreshes its own virtual environment.
#   make demo   the main job: collect -> train -> plan on the default reacher config
#   make test   the default (fast) test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export MUJOCO_GL ?= egl

.PHONY: demo test test-slow coverage bench-quick bench-full bench-collect bench-train bench-pixels clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) train.py
	$(PY) plan.py

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow -n 0

coverage: $(STAMP)
	$(PY) -m pytest -q --cov=worldmodel --cov=envs --cov=planners --cov=callbacks \
		--cov=configs --cov=benchmarks --cov-report=term:skip-covered

bench-quick: $(STAMP)
	$(PY) -m benchmarks.identifiability --quick

bench-full: $(STAMP)
	$(PY) -m benchmarks.identifiability --full

bench-collect: $(STAMP)
	$(PY) -m benchmarks.collect

bench-train: $(STAMP)
	$(PY) -m benchmarks.train_throughput

bench-pixels: $(STAMP)
	$(PY) -m benchmarks.pixel_identifiability

clean:
	rm -rf $(VENV) outputs .pytest_cache
