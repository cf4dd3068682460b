PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.afd_mm_installed
DET_STAMP := $(VENV)/.afd_mm_det_installed

.PHONY: install install-det test lint demo

$(STAMP): setup.cfg setup.py
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[tests]'
	touch $(STAMP)

install: $(STAMP)

# Detection (mmdet 3.3.0): builds mmcv 2.1.0 with its ops from the pinned
# sdist (C++20) once, ~10 min on 2 cores, cached in ~/.cache/afd_mm/wheels;
# a reinstall from the cache takes seconds. `make test` runs it, so the
# detection tests run on every CI run; `make install` does not.
$(DET_STAMP): $(STAMP) tools/install_det.py
	$(BIN)/python tools/install_det.py
	touch $(DET_STAMP)

install-det: $(DET_STAMP)

test: $(STAMP) $(DET_STAMP)
	AFD_MM_REQUIRE_DET=1 $(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check afd_mm tools tests configs

# The whole job on Fashion-MNIST (installs the Debian package
# dataset-fashion-mnist when its files are absent and we are root):
# teacher, students alone / KD / AFD, results table, link heatmap.
# About 9 min on 2 CPU cores (README); `make demo FAST=1` is a ~1 min smoke run.
demo: $(STAMP)
	FAST=$(FAST) $(BIN)/python tools/demo.py
