# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench bitstream clean

install: $(STAMP)

# torch is installed first and pinned so pip takes the local CPU wheel, never a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/python -m drnn_hw.demo --out build/demo

test: install
	$(BIN)/python -m pytest -m "not bitstream" tests

bench: install
	$(BIN)/drnn bench build/demo/model --out build/bench

bitstream: install
	$(BIN)/python -m pytest -m bitstream tests

clean:
	rm -rf build $(VENV)
