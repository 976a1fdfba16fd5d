# Two entry points, each creates or refreshes its own virtual environment.
#   make demo   the main job: collect -> train -> plan on the default reacher config
#   make test   the default (fast) test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export MUJOCO_GL ?= egl

.PHONY: demo test test-slow bench-quick bench-full bench-collect bench-train bench-pixels clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) train.py
	$(PY) plan.py

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench-quick: $(STAMP)
	$(PY) benchmarks/identifiability.py --quick

bench-full: $(STAMP)
	$(PY) benchmarks/identifiability.py --full

bench-collect: $(STAMP)
	$(PY) benchmarks/collect.py

bench-train: $(STAMP)
	$(PY) benchmarks/train_throughput.py

bench-pixels: $(STAMP)
	$(PY) benchmarks/pixel_identifiability.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
