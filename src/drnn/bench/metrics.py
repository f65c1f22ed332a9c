"""The bench's arithmetic: every figure ``drnn bench`` reports, as pure functions.

The bench runs one model on the test set of its data set at several run-time thresholds (the
same weights every time, thresholds set with :meth:`ModelBundle.with_thresholds`, as the
THETA_X/THETA_H registers would), on an engine (Verilator: cycles *measured* by the core's own
counter; golden: cycles from :mod:`~drnn_hw.cycle_model`), and derives everything below from
the per-step counts the engine returns. Pure functions, except :func:`torch_gru_latency` (a
timing measurement) and :func:`run_bench` (which calls the engine).

Definitions (also written into bench.json under ``definitions``):

``accuracy``
    The head (float ``head_w · h + head_b``, argmax) on the dequantised hidden state the engine
    produced at each sequence's last valid step, against the test labels: hardware-exact.
    None for a regression model.
``rmse``, ``rmse_per_output``, ``nrmse`` (regression models only)
    The head's outputs (target units) on the engine's h at every valid step (per-step targets)
    or at each sequence's last valid step, against the test targets: root mean square error
    over all outputs, per output, and ``sqrt(mean_o (rmse_o / std_o)²)`` with ``std_o`` the
    test targets' standard deviation (unit-free; 1 = no better than predicting their mean).
``sparsity_dx``, ``sparsity_dh``
    Fraction of zero deltas: ``1 − Σ nnz_dx / (I · steps)`` (and with H for Δh).
``cycles``
    Per-step cycles (mean, p50, p99, max over all valid steps of all sequences; percentiles by
    linear interpolation, NumPy's default).
``latency_us``
    ``cycles / clock_MHz``; the clock is the Fmax of an ECP5 build report or a stated value,
    and ``clock.source`` says which.
``throughput_cycles``
    Mean cycles between two output frames when the input frames come back to back:
    :func:`drnn_hw.cycle_model.frame_interval` of each step's cycles, which are those of frames
    back to back (``cycles``): every step after a sequence's first scans its x while the AP
    finishes the step before (issue #10's step overlap), and counts from the cycle after
    that step's commit, so the interval is its cycles.
``frame_latency_cycles``, ``frame_latency_us``
    Mean cycles (µs at the clock) from the last beat of x_t in to the last beat of h_t out,
    one frame at a time: :func:`drnn_hw.cycle_model.frame_latency`, ``cycles + 1 +
    output_tail`` on the cycles of a step that finds the core idle (nothing scanned ahead):
    a beat leaves as soon as the AP has written its units, so the tail is at most WH cycles
    (``cycles + WH + 1`` before issue #10's output streaming). Both relations are checked
    against Verilator timestamps by the co-simulation tests.
``speedup_vs_theta0``
    ``Σ cycles(Θ=0) / Σ cycles(Θ)`` over the same sequences and steps.
``useful_macs``
    Each kept Δ column costs ``3·H`` useful multiply-accumulates (the r, z and n rows of its
    weight column; a Δx column feeds M_r, M_z, M_nx, a Δh column M_r, M_z, M_nh). So
    ``useful = 3·H · Σ (nnz_dx + nnz_dh)``. The activation pipeline's two products per hidden
    unit (r·M_nh, z·(h−n)), which reuse the multipliers, are *not* counted. An LSTM: ``4·H``
    (rows i, f, g, o; its AP's three products per unit not counted either), and ``4·P·K``
    multipliers below.
``mxv_utilisation``
    ``useful_macs / (3·P·K · Σ cycles)``: the share of all multiplier-cycles of the step that did
    a useful MxV multiply-accumulate (rows padded up to a multiple of P count as idle).
``bound_efficiency``
    ``Σ cycle_bound(nnz) / Σ throughput cycles`` with :func:`drnn_hw.cycle_model.cycle_bound`
    (MxV fully busy, AP at P·K per cycle): 1.0 means the schedule is as good as the bound
    allows.
``dense_ops_per_step``
    ``2 · 3H(I+H)``: one multiply and one add per weight, what a dense GRU step does (an LSTM:
    ``2 · 4H(I+H)``).
``effective_gops``
    ``dense_ops_per_step / mean latency``: dense-equivalent throughput at batch 1.
``ops_per_multiplier_cycle``
    ``dense_ops_per_step / (3·P·K · mean cycles)``: the same normalised per multiplier per
    cycle, comparable across sizes and clocks. DeltaRNN (FPGA 2018): 1.2 TOp/s on 768
    multipliers at 125 MHz = 12.5.
``peer``
    EdgeDRNN's published schedule (:mod:`drnn.bench.peer_model`) on the same kept deltas with the
    same number of multipliers; ``ratio_to_ours = Σ peer cycles / Σ our cycles`` (> 1: ours is
    faster). A model of the peer, not a measurement. None for an LSTM (``peer_na`` says why:
    EdgeDRNN publishes a GRU's schedule only).
``torch_ratio``
    PyTorch ``nn.GRU`` (an LSTM bundle: ``nn.LSTM``) per-step latency at batch 1 on this CPU (measured in the same run) divided
    by the core's mean per-step latency at the reported clock (> 1: the core is faster).
``breakdown``
    Mean per-step cycles split along the cycle model: the fixed pipeline part
    (``SCAN_LATENCY + ceil(H/P) + AP_LATENCY``), MxV issue (``ceil(nnz/K) · ceil(H/P)``), MxV
    drain (``mxv_drain(ceil(H/P))`` when a delta was kept) and scan wait (the rest: the MxV waiting for the
    scan): which of scan, scheduling and AP the time goes to.
"""

from __future__ import annotations

import math

import numpy as np

from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import (CHANNELS, SCAN_LATENCY, CoreShape, ap_latency, cycle_bound,
                                 mxv_drain)
from drnn_hw.errors import UserError
from drnn_hw.numerics import dequantize, quantize

__all__ = ["REFERENCE_DESIGN", "DEFINITIONS", "cycle_stats", "sparsity", "useful_macs",
           "mxv_utilisation", "bound_efficiency", "dense_ops_per_step", "effective_ops_per_s",
           "ops_per_multiplier_cycle", "speedup", "cycle_breakdown", "last_hidden",
           "head_accuracy", "head_regression", "parse_thetas", "sweep_codes"]

#: DeltaRNN (FPGA 2018, BRIEF §2) as published.
REFERENCE_DESIGN = {
    "name": "DeltaRNN (FPGA 2018)",
    "effective_ops_per_s": 1.2e12,
    "multipliers": 768,
    "clock_mhz": 125.0,
    "ops_per_multiplier_cycle": 1.2e12 / (768 * 125e6),
}

DEFINITIONS = {
    "accuracy": "head (argmax of head_w.h + head_b) on the engine's h at each sequence's last "
                "valid step, against the test labels (hardware-exact)",
    "rmse": "regression: root mean square error of the head (target units) on the engine's h "
            "at every valid step (per-step targets) or the last valid step, over all outputs; "
            "rmse_per_output per output",
    "nrmse": "regression: sqrt(mean over outputs of (rmse_o / std_o)^2), std_o the test "
             "targets' standard deviation (1 = no better than predicting their mean)",
    "sparsity_dx": "fraction of zero input deltas: 1 - sum(nnz_dx) / (I * steps)",
    "sparsity_dh": "fraction of zero hidden deltas: 1 - sum(nnz_dh) / (H * steps)",
    "cycles": "cycles per step over all valid steps, input frames back to back (each step "
              "after a sequence's first scanned during the AP of the one before), counted "
              "from the cycle after the previous commit (mean, p50, p99, max; linear "
              "percentiles)",
    "latency_us": "cycles / clock_mhz (clock.source says where the clock comes from)",
    "throughput_cycles": "mean cycles between output frames, input frames back to back "
                         "(cycle_model.frame_interval of each step's cycles)",
    "frame_latency_cycles": "mean cycles from x_t's last beat in to h_t's last beat out, one "
                            "frame at a time (cycle_model.frame_latency: cycles + 1 + "
                            "output_tail, on the cycles of steps that find the core idle)",
    "frame_latency_us": "frame_latency_cycles / clock_mhz",
    "speedup_vs_theta0": "sum cycles at theta 0 / sum cycles at this theta, same sequences",
    "useful_macs": "3*H per kept delta column (r, z, n rows): 3*H*sum(nnz_dx + nnz_dh); the "
                   "activation pipeline's products are not counted; a compressed-weight "
                   "core: P*kept instead of H (the stored (value, row) pairs)",
    "mxv_utilisation": "useful_macs / (3*P*K * sum cycles)",
    "bound_efficiency": "sum cycle_model.cycle_bound(nnz) / sum throughput cycles (1.0 = at "
                        "the bound); a compressed-weight core: cycle_bound(nnz, kept=kept)",
    "spatial": "compressed-weight core only: weight_sparsity (zero weight codes), "
               "dense_core_cycles_mean (the dense core's cycle model on the same kept deltas), "
               "temporal_speedup = sum dense(theta 0) / sum dense(theta), spatial_speedup = "
               "sum dense(theta) / sum cycles, speedup_vs_dense_theta0 = their product",
    "dense_ops_per_step": "2 * 3H(I+H): a multiply and an add per weight",
    "effective_gops": "dense_ops_per_step / mean latency per step, in 1e9 op/s",
    "ops_per_multiplier_cycle": "dense_ops_per_step / (3*P*K * mean cycles per step); "
                                "DeltaRNN: 1.2 TOp/s / (768 * 125 MHz) = 12.5",
    "peer": "EdgeDRNN published schedule (drnn.bench.peer_model) on the same kept deltas, same "
            "multipliers; ratio_to_ours = sum peer cycles / sum our cycles; a model, not a "
            "measurement",
    "torch_ratio": "torch nn.GRU per-step latency at batch 1 on this CPU / core mean latency "
                   "per step at the reported clock",
    "breakdown": "mean cycles per step: ap_fixed = SCAN_LATENCY + ceil(H/P) + AP_LATENCY, "
                 "mxv_issue = ceil(nnz/K)*ceil(H/P), mxv_drain = max(MXV_WRITE - 1 - ceil(H/P), 0) "
                 "on steps with a kept delta, "
                 "scan_wait = the rest (the MxV waiting for the scan)",
}



# -- arithmetic ------------------------------------------------------------------------------

def cycle_stats(cycles) -> dict:
    """mean, p50, p99, max and total of per-step cycles (or latencies)."""
    c = np.asarray(cycles, dtype=np.float64)
    if c.size == 0:
        raise ValueError("no steps to summarise")
    return {"mean": float(c.mean()), "p50": float(np.percentile(c, 50)),
            "p99": float(np.percentile(c, 99)), "max": float(c.max()), "total": float(c.sum())}


def sparsity(nnz, width: int) -> float:
    """Fraction of zero deltas among ``width`` candidates per step, over the given steps."""
    nnz = np.asarray(nnz, dtype=np.int64)
    if nnz.size == 0:
        raise ValueError("no steps")
    return 1.0 - float(nnz.sum()) / (width * nnz.size)


def useful_macs(nnz_dx, nnz_dh, hidden: int, cell: str = "gru") -> int:
    """``G·H`` multiply-accumulates per kept delta column (G = 3 rows r, z, n of a GRU; 4 rows
    i, f, g, o of an LSTM). A compressed-weight core passes ``hidden`` = ``min(P·kept, H)``,
    the products of the (value, row) pairs it stores per gate and column."""
    return CHANNELS[cell] * hidden * int(np.sum(nnz_dx) + np.sum(nnz_dh))


def mxv_utilisation(macs: int, shape: CoreShape, total_cycles, cell: str = "gru") -> float:
    return float(macs) / (shape.multipliers_for(cell) * float(np.sum(total_cycles)))


def bound_efficiency(nnz_per_step, hidden: int, shape: CoreShape, cycles_per_step) -> float:
    """``Σ cycle_bound / Σ measured cycles`` over the steps."""
    bound = cycle_bound(np.asarray(nnz_per_step, dtype=np.int64), hidden, shape)
    return float(np.sum(bound)) / float(np.sum(cycles_per_step))


def dense_ops_per_step(input_size: int, hidden_size: int, cell: str = "gru") -> int:
    """``2 · G·H(I+H)``: one multiply and one add per weight of a dense step (G = 3 gates of a
    GRU, 4 of an LSTM)."""
    return 2 * CHANNELS[cell] * hidden_size * (input_size + hidden_size)


def effective_ops_per_s(input_size: int, hidden_size: int, mean_cycles: float,
                        clock_mhz: float) -> float:
    """Dense-equivalent operations per second at the given mean cycles per step and clock."""
    latency_s = mean_cycles / (clock_mhz * 1e6)
    return dense_ops_per_step(input_size, hidden_size) / latency_s


def ops_per_multiplier_cycle(input_size: int, hidden_size: int, mean_cycles: float,
                             multipliers: int) -> float:
    return dense_ops_per_step(input_size, hidden_size) / (multipliers * mean_cycles)


def speedup(base_total_cycles, total_cycles) -> float:
    return float(np.sum(base_total_cycles)) / float(np.sum(total_cycles))


def cycle_breakdown(nnz_per_step, cycles_per_step, hidden: int, shape: CoreShape,
                    cell: str = "gru", kept: int | None = None) -> dict:
    """Mean cycles per step split along the cycle model's terms.

    ``cycles = SCAN_LATENCY + A0 + ceil(H/P) + AP_LATENCY`` with
    ``A0 = max(S, D + mxv_drain(NB))``: ``ap_fixed`` is ``SCAN_LATENCY + ceil(H/P) + AP_LATENCY``,
    ``mxv_issue`` is ``ceil(nnz/K) · ceil(H/P)`` (MxV busy), ``mxv_drain`` is ``mxv_drain(NB)``
    on steps with a kept delta, and ``scan_wait`` the rest: cycles
    in which the MxV waited for the scan (a scan-bound step, or deltas arriving late).
    A compressed-weight core (``kept`` pairs per slice, :mod:`drnn_hw.spatial`): ``mxv_issue``
    is ``ceil(nnz/K) · kept`` and ``mxv_drain`` is ``mxv_drain(1)``.
    """
    nnz = np.asarray(nnz_per_step, dtype=np.int64)
    cyc = np.asarray(cycles_per_step, dtype=np.float64)
    nb = shape.blocks(hidden)
    ap = float(SCAN_LATENCY + nb + ap_latency(cell))
    per_group = nb if kept is None else kept
    mxv = float(np.mean(-(-nnz // shape.columns) * per_group))
    drain = float(np.mean(np.where(nnz > 0, mxv_drain(nb if kept is None else 1), 0)))
    mean = float(cyc.mean())
    return {"ap_fixed": ap, "mxv_issue": mxv, "mxv_drain": drain,
            "scan_wait": mean - ap - mxv - drain, "total": mean}


def last_hidden(h, lengths) -> np.ndarray:
    """(N, H) hidden state at each sequence's last valid step (zeros for empty sequences)."""
    h = np.asarray(h)
    lengths = np.asarray(lengths, dtype=np.int64)
    idx = np.clip(lengths - 1, 0, h.shape[1] - 1)
    out = h[np.arange(h.shape[0]), idx]
    return np.where((lengths > 0)[:, None], out, 0)


def head_accuracy(bundle: ModelBundle, h_codes, lengths, labels) -> float | None:
    """Accuracy of the bundle's head on the hidden-state codes at each sequence's last step;
    None without a head or for a regression model (:func:`head_regression`)."""
    if not bundle.has_head or bundle.is_regression:
        return None
    hl = dequantize(last_hidden(h_codes, lengths), bundle.formats.act)
    logits = hl @ np.asarray(bundle.head_w, dtype=np.float64).T + np.asarray(bundle.head_b)
    pred = np.argmax(logits, axis=1)
    return float(np.mean(pred == np.asarray(labels)))


def head_regression(bundle: ModelBundle, h_codes, lengths, targets) -> dict | None:
    """A regression bundle's errors on the hidden-state codes: ``rmse``, ``rmse_per_output``,
    ``nrmse``, ``target_std`` (:func:`drnn_train.evaluate.regression_errors`, target units).
    ``targets``: (N, T, O) per step, compared at every valid step, or (N, O) at the last one.
    None for a classifier."""
    if not bundle.is_regression:
        return None
    from drnn_train.evaluate import head_outputs, regression_errors

    targets = np.asarray(targets, np.float64)
    per_step = targets.ndim == 3
    h = np.asarray(h_codes)
    if per_step:
        h = h[:, :targets.shape[1]]
    return regression_errors(head_outputs(bundle, h, lengths, per_step), targets, lengths)


def parse_thetas(text: str, bundle: ModelBundle) -> list[tuple[int, int]]:
    """``"0,0.05,0.1"`` (same Θ for x and h) or ``"0.05/0.1"`` pairs (Θx/Θh), in real units,
    to activation-format codes (round half up). One-line UserError on anything else."""
    fmt = bundle.formats.act
    if text is None or not str(text).strip():
        raise UserError("--thetas: expected a comma-separated list of thresholds, got nothing")
    out = []
    for item in str(text).split(","):
        item = item.strip()
        parts = item.split("/")
        if not item or len(parts) > 2:
            raise UserError(f"--thetas: {item!r} is not a threshold (use e.g. 0,0.05 or 0.05/0.1)")
        codes = []
        for p in parts:
            try:
                v = float(p)
            except ValueError:
                raise UserError(f"--thetas: {p!r} is not a number") from None
            if not math.isfinite(v) or v < 0:
                raise UserError(f"--thetas: thresholds must be finite and ≥ 0, got {p}")
            if v > fmt.max * fmt.lsb:
                raise UserError(f"--thetas: {p} exceeds the largest activation value "
                                f"{fmt.max * fmt.lsb:g} ({fmt})")
            codes.append(int(quantize(v, fmt)))
        pair = (codes[0], codes[-1])
        if pair not in out:
            out.append(pair)
    return out


def sweep_codes(bundle: ModelBundle) -> list[int]:
    """Default sweep: 0, then doubling from 1/64 (or 1 LSB if coarser) up to 1.0.

    Below 1/64 a threshold changes almost nothing for inputs normalised to unit variance, and
    every point costs a full simulation of the test set."""
    a = bundle.formats.act_frac
    return [0] + [1 << k for k in range(max(0, a - 6), a + 1)]


