# Two set-up commands, both self-contained on a fresh machine:
#   make book   -> create .venv if missing, install, execute notebooks with papermill, build the Jupyter Book
#   make test   -> create .venv if missing, install, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch + torchvision pair known to work together here (see README). Override e.g.
#   make test TORCH_SPEC="torch==2.9.1 torchvision==0.24.1"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PROFILE ?= cpu
STAMP := $(VENV)/.fmask-installed

.PHONY: install test book bench clean-book help

help:
	@echo "make book    # execute notebooks (PROFILE=$(PROFILE)) and build the book into _build/html"
	@echo "make test    # run the test suite"
	@echo "make bench   # run the speed benchmarks (prints a table)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

book: $(STAMP)
	$(BIN)/fmask book --profile $(PROFILE)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_learn.py

clean-book:
	rm -rf _build
