"""Verilator runs of the board top-levels, on drnn_sim's runner (cached builds, cocotb).

:func:`board_verilog` writes the Verilog of a board-level component; :func:`run_board` runs the
host driver against the ULX3S board logic over the simulated UART
(:mod:`drnn_boards.ulx3s_bench`); :func:`run_board_loads` loads models one after the other into
a run-time core on that board logic and runs each (:mod:`drnn_boards.ulx3s_load_bench`);
:func:`run_axi_bench` runs the AXI benches of the Arty Z7
wrapper (:mod:`drnn_boards.axi_bench`), :func:`run_axi_loads` loads models into a run-time
core through it (:mod:`drnn_boards.axi_load_bench`).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np

from drnn_sim import runner

__all__ = ["board_verilog", "run_board", "run_board_loads", "run_axi_bench", "run_axi_loads",
           "BoardSimResult"]


def board_verilog(component, name: str) -> Path:
    """Verilog of ``component`` (clock ``clk``, reset ``rst``) in the cache, keyed by content."""
    from amaranth.back import verilog

    text = verilog.convert(component, name=name, emit_src=False)
    key = hashlib.sha256(text.encode()).hexdigest()[:20]
    out = runner.cache_dir() / "boards" / f"{name}-{key}.v"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(out)
    return out


class BoardSimResult(dict):
    """h, nnz_dx, nnz_dh, cycles (N, T), ident, errors, after_errors, sim_ns."""

    def __getattr__(self, key):
        return self[key]


def run_board(bundle, shape, x_codes, lengths=None, *, divisor: int = 8,
              idle_timeout: int | None = None, error_cases: bool = True,
              h0=None) -> BoardSimResult:
    """Host driver -> simulated UART -> ULX3S board logic in Verilator -> back (``h0``: every
    layer's initial state, (N, H_l) codes each, loaded by the host over H0)."""
    from drnn_hw.golden import check_lengths

    from .ulx3s import DeltaRNNBoard

    x = np.asarray(x_codes, np.int64)
    N, T, _ = x.shape
    lengths = check_lengths(lengths, N, T)
    idle_timeout = idle_timeout or 30 * 10 * divisor       # 30 character times
    board = DeltaRNNBoard(bundle, shape, divisor=divisor, idle_timeout=idle_timeout)
    src = board_verilog(board, "drnn_board")
    build_dir = runner.build([src], "drnn_board")
    with tempfile.TemporaryDirectory(prefix="drnn-board-") as tmp:
        work = Path(tmp)
        bundle.save(work / "model")
        np.savez(work / "in.npz", model_dir=str(work / "model"), x=x, lengths=lengths,
                 divisor=divisor, idle_timeout=idle_timeout, error_cases=int(error_cases),
                 **({f"h0_{l}": np.asarray(h, np.int64) for l, h in enumerate(h0)}
                    if h0 is not None else {}))
        runner.run_test(build_dir, "drnn_board", "drnn_boards.ulx3s_bench", work / "run",
                        env={"DRNN_BOARD_IN": str(work / "in.npz"),
                             "DRNN_BOARD_OUT": str(work / "out.npz")})
        with np.load(work / "out.npz") as z:
            return BoardSimResult({k: z[k] for k in z.files})


def run_board_loads(core_bundle, shape, maxima, runs, *, refuse=None,
                    divisor: int = 8) -> dict:
    """The host driver loads each model of ``runs`` (``(bundle, x codes (N, T, I), lengths)``
    triples) into one run-time core (``maxima``, generated from ``core_bundle``) on the
    Verilated ULX3S board logic over the simulated UART, and runs it; ``refuse``: a bundle
    beyond the maxima offered last. Returns :mod:`drnn_boards.ulx3s_load_bench`'s outputs."""
    from .ulx3s import DeltaRNNBoard

    idle_timeout = 30 * 10 * divisor
    board = DeltaRNNBoard(core_bundle, shape, divisor=divisor, idle_timeout=idle_timeout,
                          maxima=maxima)
    src = board_verilog(board, "drnn_board")
    build_dir = runner.build([src], "drnn_board")
    with tempfile.TemporaryDirectory(prefix="drnn-board-") as tmp:
        work = Path(tmp)
        cfg = {"divisor": divisor, "idle_timeout": idle_timeout, "runs": len(runs)}
        for k, (bundle, x, lengths) in enumerate(runs):
            bundle.save(work / f"model{k}")
            x = np.asarray(x, np.int64)
            cfg.update({f"model_dir_{k}": str(work / f"model{k}"), f"x_{k}": x,
                        f"lengths_{k}": np.full(x.shape[0], x.shape[1]) if lengths is None
                        else np.asarray(lengths, np.int64)})
        if refuse is not None:
            refuse.save(work / "refuse")
            cfg["refuse_dir"] = str(work / "refuse")
        np.savez(work / "in.npz", **cfg)
        runner.run_test(build_dir, "drnn_board", "drnn_boards.ulx3s_load_bench", work / "run",
                        env={"DRNN_BOARD_IN": str(work / "in.npz"),
                             "DRNN_BOARD_OUT": str(work / "out.npz")})
        with np.load(work / "out.npz") as z:
            return {k: z[k] for k in z.files}


def run_axi_bench(bundle, shape, x_codes, *, seed: int = 1) -> dict:
    """The AXI4-Lite / AXI4-Stream benches of the Arty Z7 wrapper (see axi_bench)."""
    from .arty_z7 import DeltaRNNAXI

    x = np.asarray(x_codes, np.int64)
    wrapper = DeltaRNNAXI(bundle, shape)
    src = board_verilog(wrapper, "drnn_axi")
    build_dir = runner.build([src], "drnn_axi")
    with tempfile.TemporaryDirectory(prefix="drnn-axi-") as tmp:
        work = Path(tmp)
        np.savez(work / "in.npz", x=x, act_bits=bundle.formats.act_bits,
                 input_size=bundle.input_size, hidden_size=bundle.hidden_size,
                 scan=shape.scan, theta_x=bundle.theta_x, theta_h=bundle.theta_h,
                 tdata_bits=wrapper.tdata_bits)
        runner.run_test(build_dir, "drnn_axi", "drnn_boards.axi_bench", work / "run",
                        env={"DRNN_AXI_IN": str(work / "in.npz"),
                             "DRNN_AXI_OUT": str(work / "out.npz")}, seed=seed)
        result = {}
        for f in ("out.npz", "out.npz.lite.npz"):
            with np.load(work / f) as z:
                result.update({k: z[k] for k in z.files})
        return result


def run_axi_loads(core_bundle, shape, maxima, runs, *, seed: int = 1) -> dict:
    """Load each model of ``runs`` (``(bundle, x codes (T, I))`` pairs) into one run-time core
    (``maxima``, generated from ``core_bundle``) through the Arty Z7 wrapper's AXI4-Lite slave
    and stream its sequence (see :mod:`drnn_boards.axi_load_bench`)."""
    from .arty_z7 import DeltaRNNAXI

    wrapper = DeltaRNNAXI(core_bundle, shape, maxima=maxima)
    src = board_verilog(wrapper, "drnn_axi")
    build_dir = runner.build([src], "drnn_axi")
    with tempfile.TemporaryDirectory(prefix="drnn-axi-") as tmp:
        work = Path(tmp)
        cfg = {"runs": len(runs), "tdata_bits": wrapper.tdata_bits}
        for k, (bundle, x) in enumerate(runs):
            bundle.save(work / f"model{k}")
            cfg.update({f"model_dir_{k}": str(work / f"model{k}"),
                        f"x_{k}": np.asarray(x, np.int64)})
        np.savez(work / "in.npz", **cfg)
        runner.run_test(build_dir, "drnn_axi", "drnn_boards.axi_load_bench", work / "run",
                        env={"DRNN_AXI_IN": str(work / "in.npz"),
                             "DRNN_AXI_OUT": str(work / "out.npz")}, seed=seed)
        with np.load(work / "out.npz") as z:
            return {k: z[k] for k in z.files}
