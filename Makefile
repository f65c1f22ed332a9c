# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system-deps demo test large bench bitstream ulx3s stacked ulx3s-stacked clean

install: system-deps $(STAMP)

# openFPGALoader (used by `drnn flash`) loads libusb and libftdi from the system at run time.
# Best effort: nothing else needs them, so a machine without apt or root only gets a warning.
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && ! ldconfig -p | grep -q libftdi1.so.2; then \
	  (apt-get update -qq && apt-get install -y -qq libusb-1.0-0 libftdi1-2 >/dev/null) \
	  || echo "warning: could not install libusb-1.0-0/libftdi1-2 (only drnn flash needs them)"; \
	fi

# torch is installed first and pinned so pip takes the local CPU wheel, never a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/python -m drnn.demo --out build/demo

# One pytest worker per core of the 2-core machines this runs on (each file's tests stay on one
# worker, so a module's fixtures are built once; Verilator builds are cached under a lock).
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not bitstream and not large" tests

# A model too large for on-chip weights (2 layers of 512), from DRAM in Verilator (~11 minutes).
large: install
	$(BIN)/python -m pytest -m large tests

# Latencies at the clock `make ulx3s` reached, when that build exists (else a stated 100 MHz).
bench: install
	$(BIN)/drnn bench build/demo/model --out build/bench \
	  $(if $(wildcard build/ulx3s/report.json),--build-report build/ulx3s/report.json)

# The ULX3S-85F build of the demo model (about 15 min here): bitstream, utilisation, Fmax.
ulx3s: install
	$(BIN)/drnn build --board ulx3s-85f build/demo/model --out build/ulx3s

# The stacked-layer figures of the README: a 2-layer JapaneseVowels model and a 2-layer model of
# the synthetic pendulum (regression), trained, exported and benched in Verilator (measured
# cycles, per-layer sparsity); about 10 min here.
S := build/stacked
stacked: install
	$(BIN)/drnn train --dataset japanese-vowels --layers 2 --hidden 64 --quiet --out $(S)/jv-l2.pt
	$(BIN)/drnn export $(S)/jv-l2.pt --out $(S)/jv-l2
	$(BIN)/drnn bench $(S)/jv-l2 --engine verilator --thetas 0,0.5 --quiet --out $(S)/jv-l2-bench
	$(BIN)/drnn train --dataset pendulum --layers 2 --hidden 64 --theta-x 0.1 --theta-h 0.1 \
	  --quiet --out $(S)/pendulum-l2.pt
	$(BIN)/drnn export $(S)/pendulum-l2.pt --out $(S)/pendulum-l2
	$(BIN)/drnn bench $(S)/pendulum-l2 --engine verilator --thetas 0,0.1 --quiet \
	  --out $(S)/pendulum-l2-bench

# The ULX3S-85F build of the 2-layer JapaneseVowels model (after `make stacked`; about 25 min), on a
# P = 8 core: the default P = 16 core of two layers does not route on the LFE5U-85F (README,
# "Boards"), and its bench above is of that P = 16 core, so it does not take this build's clock.
# 70 MHz: a clock this core meets (70.57 MHz on issue #10's twenty-seventh round's code; README,
# "Boards").
ulx3s-stacked: install
	$(BIN)/drnn build --board ulx3s-85f $(S)/jv-l2 --rows 8 --freq 70 --out $(S)/ulx3s

# The bitstream test (a full ULX3S build of the default core), not part of `make test`.
bitstream: install
	$(BIN)/python -m pytest -m bitstream tests

clean:
	rm -rf build $(VENV)
