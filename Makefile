PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.afd_mm_installed

.PHONY: install test lint demo

$(STAMP): setup.cfg setup.py
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[tests]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check afd_mm tools tests configs

# The whole job on Fashion-MNIST (installs the Debian package
# dataset-fashion-mnist when its files are absent and we are root):
# teacher, students alone / KD / AFD, results table, link heatmap.
# 7-8 min on 2 CPU cores (README); `make demo FAST=1` is a ~1 min smoke run.
demo: $(STAMP)
	FAST=$(FAST) $(BIN)/python tools/demo.py
