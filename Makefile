# Two commands do all set-up on a fresh machine:
#   make verify   -- run `udl verify` at its default profile (ci)
#   make test     -- run the whole test suite
# Both create and fill the virtual environment .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU wheel of torch lies on this machine's disk; installing it first keeps
# pip from pulling a multi-GB CUDA build for the `torch>=2.1` requirement.
TORCH  ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test,dask]"
	touch $@

.PHONY: venv verify test bench report
venv: $(VENV)/.installed

verify: $(VENV)/.installed
	$(VENV)/bin/udl verify $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest -q $(ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_gradients.py

report: $(VENV)/.installed
	$(VENV)/bin/udl verify --out reports/reference --no-cache --keep-going --vector none $(ARGS)
