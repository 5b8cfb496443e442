# Two set-up commands, both self-contained on a fresh machine:
#   make book   -> create .venv if missing, install, execute notebooks with papermill, build the Jupyter Book
#   (make html renders the committed notebooks without executing them)
#   make test   -> create .venv if missing, install, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch + torchvision pair known to work together here (see README). Override e.g.
#   make test TORCH_SPEC="torch==2.9.1 torchvision==0.24.1"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PROFILE ?= cpu
# Output root of `make book`: empty = fmask's default (the repository for cpu, _build/<profile> for others,
# so `make book PROFILE=smoke` never overwrites the committed book). `make book OUT=.` forces the repository.
OUT ?=
STAMP := $(VENV)/.fmask-installed

.PHONY: install test book html bench bench-full clean-book help determinism reproduce

help:
	@echo "make html    # render the committed, executed notebooks into ./_build/html (seconds, no execution)"
	@echo "make book    # execute the chapters (PROFILE=$(PROFILE)) and build the book (cpu: ./_build/html, else _build/<profile>/_build/html)"
	@echo "make test    # run the test suite"
	@echo "make determinism # run the chapters twice (fresh stores, PROFILE=smoke unless given) and compare the results"
	@echo "make reproduce   # run the cpu book once from an empty store and compare with the committed book/results (~95 min)"
	@echo "make bench       # quick speed benchmark of the mask learner (benchmarks/bench_learn.py --quick)"
	@echo "make bench-full  # the full benchmark (benchmarks/bench_learn.py)"

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
	$(BIN)/fmask book --profile $(PROFILE) $(if $(OUT),--out $(OUT),) $(if $(ONLY),--only $(ONLY),)

html: $(STAMP)
	$(BIN)/python -c "from fmask.book import build_book; build_book('.', profile='cpu')"

determinism: $(STAMP)
	$(BIN)/fmask check-determinism --profile $(if $(filter command line,$(origin PROFILE)),$(PROFILE),smoke) $(if $(ONLY),--only $(ONLY),)

reproduce: $(STAMP)
	$(BIN)/fmask check-determinism --profile cpu --against book/results $(if $(ONLY),--only $(ONLY),)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_learn.py --quick

bench-full: $(STAMP)
	$(BIN)/python benchmarks/bench_learn.py

clean-book:
	rm -rf _build
