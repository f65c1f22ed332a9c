"""Benchmark measurements and their arithmetic (``drnn bench``).

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
``sparsity_dx``, ``sparsity_dh``
    Fraction of zero deltas: ``1 − Σ nnz_dx / (I · steps)`` (and with H for Δh).
``cycles``
    Per-step cycles (mean, p50, p99, max over all valid steps of all sequences; percentiles by
    linear interpolation, NumPy's default).
``latency_us``
    ``cycles / clock_MHz``; the clock is the Fmax of an ECP5 build report or a stated value,
    and ``clock.source`` says which.
``speedup_vs_theta0``
    ``Σ cycles(Θ=0) / Σ cycles(Θ)`` over the same sequences and steps.
``useful_macs``
    Each kept Δ column costs ``3·H`` useful multiply-accumulates (the r, z and n rows of its
    weight column; a Δx column feeds M_r, M_z, M_nx, a Δh column M_r, M_z, M_nh). So
    ``useful = 3·H · Σ (nnz_dx + nnz_dh)``. The activation pipeline's two products per hidden
    unit (r·M_nh, z·(h−n)), which reuse the multipliers, are *not* counted.
``mxv_utilisation``
    ``useful_macs / (3·P·K · Σ cycles)``: the share of all multiplier-cycles of the step that did
    a useful MxV multiply-accumulate (rows padded up to a multiple of P count as idle).
``bound_efficiency``
    ``Σ cycle_bound(nnz) / Σ cycles`` with :func:`drnn_hw.cycle_model.cycle_bound` (MxV fully
    busy, AP at P·K per cycle): 1.0 means the schedule is as good as the bound allows.
``dense_ops_per_step``
    ``2 · 3H(I+H)``: one multiply and one add per weight, what a dense GRU step does.
``effective_gops``
    ``dense_ops_per_step / mean latency``: dense-equivalent throughput at batch 1.
``ops_per_multiplier_cycle``
    ``dense_ops_per_step / (3·P·K · mean cycles)``: the same normalised per multiplier per
    cycle, comparable across sizes and clocks. DeltaRNN (FPGA 2018): 1.2 TOp/s on 768
    multipliers at 125 MHz = 12.5.
``peer``
    EdgeDRNN's published schedule (:mod:`drnn_hw.peer_model`) on the same kept deltas with the
    same number of multipliers; ``ratio_to_ours = Σ peer cycles / Σ our cycles`` (> 1: ours is
    faster). A model of the peer, not a measurement.
``torch_ratio``
    PyTorch ``nn.GRU`` per-step latency at batch 1 on this CPU (measured in the same run) divided
    by the core's mean per-step latency at the reported clock (> 1: the core is faster).
``breakdown``
    Mean per-step cycles split along the cycle model: the fixed pipeline part
    (``SCAN_LATENCY + ceil(H/P) + AP_LATENCY``), MxV issue (``ceil(nnz/K) · ceil(H/P)``), MxV
    drain (``mxv_drain(ceil(H/P))`` when a delta was kept) and scan wait (the rest: the MxV waiting for the
    scan): which of scan, scheduling and AP the time goes to.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np

from . import peer_model
from .bundle import ModelBundle
from .cycle_model import AP_LATENCY, FORMULA, SCAN_LATENCY, CoreShape, cycle_bound, mxv_drain
from .errors import UserError
from .io import read_json_object
from .numerics import dequantize, quantize

__all__ = [
    "REFERENCE_DESIGN", "DEFINITIONS", "JSON_KEYS", "ROW_KEYS",
    "cycle_stats", "sparsity", "useful_macs", "mxv_utilisation", "bound_efficiency",
    "dense_ops_per_step", "effective_ops_per_s", "ops_per_multiplier_cycle", "speedup",
    "cycle_breakdown", "head_accuracy", "last_hidden", "parse_thetas", "sweep_codes",
    "clock_from_build_report", "torch_gru_latency", "torch_dense_accuracy", "summarise",
    "run_bench", "write_json",
]

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
    "sparsity_dx": "fraction of zero input deltas: 1 - sum(nnz_dx) / (I * steps)",
    "sparsity_dh": "fraction of zero hidden deltas: 1 - sum(nnz_dh) / (H * steps)",
    "cycles": "cycles per step over all valid steps (mean, p50, p99, max; linear percentiles)",
    "latency_us": "cycles / clock_mhz (clock.source says where the clock comes from)",
    "speedup_vs_theta0": "sum cycles at theta 0 / sum cycles at this theta, same sequences",
    "useful_macs": "3*H per kept delta column (r, z, n rows): 3*H*sum(nnz_dx + nnz_dh); the "
                   "activation pipeline's products are not counted",
    "mxv_utilisation": "useful_macs / (3*P*K * sum cycles)",
    "bound_efficiency": "sum cycle_model.cycle_bound(nnz) / sum cycles (1.0 = at the bound)",
    "dense_ops_per_step": "2 * 3H(I+H): a multiply and an add per weight",
    "effective_gops": "dense_ops_per_step / mean latency per step, in 1e9 op/s",
    "ops_per_multiplier_cycle": "dense_ops_per_step / (3*P*K * mean cycles per step); "
                                "DeltaRNN: 1.2 TOp/s / (768 * 125 MHz) = 12.5",
    "peer": "EdgeDRNN published schedule (drnn_hw.peer_model) on the same kept deltas, same "
            "multipliers; ratio_to_ours = sum peer cycles / sum our cycles; a model, not a "
            "measurement",
    "torch_ratio": "torch nn.GRU per-step latency at batch 1 on this CPU / core mean latency "
                   "per step at the reported clock",
    "breakdown": "mean cycles per step: ap_fixed = SCAN_LATENCY + ceil(H/P) + AP_LATENCY, "
                 "mxv_issue = ceil(nnz/K)*ceil(H/P), mxv_drain = max(MXV_WRITE - ceil(H/P), 0) "
                 "on steps with a kept delta, "
                 "scan_wait = the rest (the MxV waiting for the scan)",
}

#: Top-level keys of bench.json (tests check them).
JSON_KEYS = ("schema", "command", "model", "dataset", "core", "engine", "cycles_source",
             "thresholds_note", "clock", "definitions", "reference_design", "peer_model",
             "torch", "rows", "trace", "cross_check", "plots")
#: Keys of every entry of ``rows``.
ROW_KEYS = ("theta_x", "theta_h", "theta_x_code", "theta_h_code", "trained", "accuracy",
            "sparsity_dx", "sparsity_dh", "nnz_dx_mean", "nnz_dh_mean", "steps", "cycles",
            "latency_us", "speedup_vs_theta0", "useful_macs", "mxv_utilisation",
            "bound_cycles_mean", "bound_efficiency", "effective_gops",
            "ops_per_multiplier_cycle", "breakdown", "peer", "peer_published", "torch_ratio")


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


def useful_macs(nnz_dx, nnz_dh, hidden: int) -> int:
    """``3·H`` multiply-accumulates per kept delta column (rows r, z, n)."""
    return 3 * hidden * int(np.sum(nnz_dx) + np.sum(nnz_dh))


def mxv_utilisation(macs: int, shape: CoreShape, total_cycles) -> float:
    return float(macs) / (shape.multipliers * float(np.sum(total_cycles)))


def bound_efficiency(nnz_per_step, hidden: int, shape: CoreShape, cycles_per_step) -> float:
    """``Σ cycle_bound / Σ measured cycles`` over the steps."""
    bound = cycle_bound(np.asarray(nnz_per_step, dtype=np.int64), hidden, shape)
    return float(np.sum(bound)) / float(np.sum(cycles_per_step))


def dense_ops_per_step(input_size: int, hidden_size: int) -> int:
    """``2 · 3H(I+H)``: one multiply and one add per weight of a dense GRU step."""
    return 2 * 3 * hidden_size * (input_size + hidden_size)


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


def cycle_breakdown(nnz_per_step, cycles_per_step, hidden: int, shape: CoreShape) -> dict:
    """Mean cycles per step split along the cycle model's terms.

    ``cycles = SCAN_LATENCY + A0 + ceil(H/P) + AP_LATENCY`` with
    ``A0 = max(S, D + mxv_drain(NB))``: ``ap_fixed`` is ``SCAN_LATENCY + ceil(H/P) + AP_LATENCY``,
    ``mxv_issue`` is ``ceil(nnz/K) · ceil(H/P)`` (MxV busy), ``mxv_drain`` is ``mxv_drain(NB)``
    on steps with a kept delta, and ``scan_wait`` the rest: cycles
    in which the MxV waited for the scan (a scan-bound step, or deltas arriving late).
    """
    nnz = np.asarray(nnz_per_step, dtype=np.int64)
    cyc = np.asarray(cycles_per_step, dtype=np.float64)
    nb = shape.blocks(hidden)
    ap = float(SCAN_LATENCY + nb + AP_LATENCY)
    mxv = float(np.mean(-(-nnz // shape.lanes) * nb))
    drain = float(np.mean(np.where(nnz > 0, mxv_drain(nb), 0)))
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
    """Accuracy of the bundle's head on the hidden-state codes at each sequence's last step."""
    if not bundle.has_head:
        return None
    hl = dequantize(last_hidden(h_codes, lengths), bundle.formats.act)
    logits = hl @ np.asarray(bundle.head_w, dtype=np.float64).T + np.asarray(bundle.head_b)
    pred = np.argmax(logits, axis=1)
    return float(np.mean(pred == np.asarray(labels)))


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


def clock_from_build_report(path, shape: CoreShape | None = None,
                            bundle: ModelBundle | None = None) -> tuple[float, str]:
    """The achieved Fmax (MHz) from a ``drnn build`` report.json, and a label saying where from.

    ``drnn build --board ulx3s-85f`` writes ``clock.achieved_fmax_mhz`` (nextpnr's Fmax of the
    core clock), ``clock.pll_mhz`` and ``clock.timing_met``; other reports may carry the Fmax
    under any key containing ``fmax`` (a number, or a mapping of clock domain -> number, of which
    the slowest counts), searched breadth-first. The label notes when the report was built for
    a different core shape or model size than the one benchmarked."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: build report not found")
    data = read_json_object(p)
    found = None
    clock = data.get("clock")
    if isinstance(clock, dict) and isinstance(clock.get("achieved_fmax_mhz"), (int, float)) \
            and clock["achieved_fmax_mhz"] > 0:
        found = float(clock["achieved_fmax_mhz"]), "clock.achieved_fmax_mhz"
    queue = [("", data)]
    while queue and found is None:
        prefix, node = queue.pop(0)
        if isinstance(node, dict):
            for k, v in node.items():
                key = f"{prefix}.{k}" if prefix else str(k)
                if "fmax" in str(k).lower():
                    vals = list(v.values()) if isinstance(v, dict) else [v]
                    vals = [x for x in vals if isinstance(x, (int, float)) and not
                            isinstance(x, bool) and x > 0]
                    if vals:
                        found = float(min(vals)), key
                        break
                queue.append((key, v))
        elif isinstance(node, list):
            queue.extend((f"{prefix}[{i}]", v) for i, v in enumerate(node))
    if found is None:
        raise UserError(f"{p}: no Fmax found (expected clock.achieved_fmax_mhz or a key "
                        "containing 'fmax' with a value in MHz)")
    mhz, key = found
    notes = []
    if isinstance(clock, dict) and "pll_mhz" in clock:
        notes.append(f"the board build clocks the core at {clock['pll_mhz']:g} MHz, timing "
                     f"{'met' if clock.get('timing_met') else 'NOT met'}")
    core = data.get("core")
    if shape is not None and isinstance(core, dict) and \
            any(core.get(k) != v for k, v in shape.to_dict().items()):
        notes.append(f"WARNING: built for core {core}, benchmarked {shape.to_dict()}")
    model = data.get("model")
    if bundle is not None and isinstance(model, dict) and \
            (model.get("input_size"), model.get("hidden_size")) != \
            (bundle.input_size, bundle.hidden_size):
        notes.append(f"WARNING: built for I={model.get('input_size')} "
                     f"H={model.get('hidden_size')}, benchmarked I={bundle.input_size} "
                     f"H={bundle.hidden_size}")
    label = f"Fmax of the ECP5 build {p} ({key})" + (f"; {'; '.join(notes)}" if notes else "")
    return mhz, label


# -- PyTorch reference --------------------------------------------------------------------------

def _torch_gru(bundle: ModelBundle):
    """``nn.GRU`` in float64 with the bundle's quantised weights (biases folded as in M)."""
    import torch

    f = bundle.formats
    I, H = bundle.input_size, bundle.hidden_size
    gru = torch.nn.GRU(I, H, batch_first=True, dtype=torch.float64)
    bias = dequantize(bundle.bias, f.acc)          # rows: M_r, M_z, M_nx, M_nh at reset
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(dequantize(bundle.w_x, f.weight).reshape(3 * H, I)))
        gru.weight_hh_l0.copy_(torch.from_numpy(dequantize(bundle.w_h, f.weight).reshape(3 * H, H)))
        gru.bias_ih_l0.copy_(torch.from_numpy(np.concatenate([bias[0], bias[1], bias[2]])))
        gru.bias_hh_l0.copy_(torch.from_numpy(np.concatenate([np.zeros(2 * H), bias[3]])))
    return gru.eval()


def torch_dense_accuracy(bundle: ModelBundle, x_codes, lengths, labels) -> float | None:
    """Float64 ``nn.GRU`` (Θ = 0, exact σ/tanh) with the bundle's quantised weights, same head."""
    if not bundle.has_head:
        return None
    import torch

    gru = _torch_gru(bundle)
    x = torch.from_numpy(dequantize(x_codes, bundle.formats.act))
    with torch.inference_mode():
        h, _ = gru(x)
    hl = last_hidden(h.numpy(), lengths)
    logits = hl @ np.asarray(bundle.head_w, dtype=np.float64).T + np.asarray(bundle.head_b)
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))


def torch_gru_latency(bundle: ModelBundle, steps: int, repeats: int = 20, warmup: int = 3,
                      threads: int = 1) -> dict:
    """Per-step latency of ``nn.GRU`` (float32, batch 1) on this CPU, streaming step by step.

    Method: ``torch.set_num_threads(threads)`` (restored after), ``inference_mode``; one run is
    ``steps`` calls ``gru(x[:, t:t+1], h)`` carrying h (streaming, as the core is used), timed
    with ``perf_counter_ns``; ``warmup`` runs discarded, then the median over ``repeats`` runs of
    (run time / steps). Also the same for one call over the whole sequence (``gru(x)``), which
    needs the whole input in advance. Dense: the time does not depend on the data.
    """
    import torch

    I, H = bundle.input_size, bundle.hidden_size
    steps = max(1, int(steps))
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gru = _torch_gru(bundle).float()
        x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, steps, I))).float()

        def streaming():
            h = torch.zeros(1, 1, H)
            for t in range(steps):
                _, h = gru(x[:, t:t + 1], h)

        def whole():
            gru(x)

        res = {}
        with torch.inference_mode():
            for name, fn in (("streaming", streaming), ("sequence_call", whole)):
                for _ in range(warmup):
                    fn()
                per_step = []
                for _ in range(repeats):
                    t0 = time.perf_counter_ns()
                    fn()
                    per_step.append((time.perf_counter_ns() - t0) / steps / 1e3)
                res[name] = per_step
        return {
            "load_average_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(),
            "per_step_us": statistics.median(res["streaming"]),
            "per_step_us_min": min(res["streaming"]),
            "per_step_us_sequence_call": statistics.median(res["sequence_call"]),
            "threads": threads, "repeats": repeats, "warmup": warmup, "steps": steps,
            "dtype": "float32", "torch_version": torch.__version__,
            "method": "nn.GRU batch 1, one call per step carrying h, inference_mode, "
                      f"torch.set_num_threads({threads}); median over repeats of run time / "
                      "steps after warm-up (per_step_us_sequence_call: one call per sequence)",
        }
    finally:
        torch.set_num_threads(prev_threads)


# -- one threshold point ----------------------------------------------------------------------

def summarise(result, bundle: ModelBundle, labels, shape: CoreShape, clock_mhz: float,
              base_cycles=None, torch_us: float | None = None) -> dict:
    """Everything the bench reports for one engine result (a GoldenResult) at one threshold."""
    f = bundle.formats
    I, H = bundle.input_size, bundle.hidden_size
    cyc = result.flat("cycles")
    ndx, ndh = result.flat("nnz_dx"), result.flat("nnz_dh")
    nnz = ndx + ndh
    stats = cycle_stats(cyc)
    macs = useful_macs(ndx, ndh, H)
    peer_pe = peer_model.peer_pe_for(shape)
    peer = peer_model.peer_step_cycles(ndx, ndh, I, H, peer_pe)
    peer_pub = peer_model.peer_step_cycles(ndx, ndh, I, H, peer_model.PUBLISHED_PE)
    lat_mean_us = stats["mean"] / clock_mhz
    return {
        "theta_x": bundle.theta_x * f.act.lsb, "theta_h": bundle.theta_h * f.act.lsb,
        "theta_x_code": int(bundle.theta_x), "theta_h_code": int(bundle.theta_h),
        "trained": False,
        "accuracy": head_accuracy(bundle, result.h, result.lengths, labels),
        "sparsity_dx": sparsity(ndx, I), "sparsity_dh": sparsity(ndh, H),
        "nnz_dx_mean": float(ndx.mean()), "nnz_dh_mean": float(ndh.mean()),
        "steps": int(cyc.size),
        "cycles": stats,
        "latency_us": {k: v / clock_mhz for k, v in stats.items() if k != "total"},
        "speedup_vs_theta0": None if base_cycles is None else speedup(base_cycles, cyc),
        "useful_macs": macs,
        "mxv_utilisation": mxv_utilisation(macs, shape, cyc),
        "bound_cycles_mean": float(np.mean(cycle_bound(nnz, H, shape))),
        "bound_efficiency": bound_efficiency(nnz, H, shape, cyc),
        "effective_gops": effective_ops_per_s(I, H, stats["mean"], clock_mhz) / 1e9,
        "ops_per_multiplier_cycle": ops_per_multiplier_cycle(I, H, stats["mean"],
                                                              shape.multipliers),
        "breakdown": cycle_breakdown(nnz, cyc, H, shape),
        "peer": {"pe": peer_pe, "cycles_mean": float(peer.mean()),
                 "ratio_to_ours": float(peer.sum()) / float(cyc.sum())},
        "peer_published": {"pe": peer_model.PUBLISHED_PE, "cycles_mean": float(peer_pub.mean()),
                           "ratio_to_ours": float(peer_pub.sum()) / float(cyc.sum())},
        "torch_ratio": None if torch_us is None else torch_us / lat_mean_us,
    }


def _compare(a, b) -> dict:
    """Step-by-step agreement of two engine results on the valid steps."""
    valid = np.arange(a.h.shape[1])[None, :] < np.asarray(a.lengths)[:, None]
    h_bad = int(np.count_nonzero(np.any(a.h != b.h, axis=2)[valid]))
    nnz_bad = int(np.count_nonzero(((a.nnz_dx != b.nnz_dx) | (a.nnz_dh != b.nnz_dh))[valid]))
    cyc_bad = int(np.count_nonzero((a.cycles != b.cycles)[valid]))
    return {"steps": int(valid.sum()), "h_mismatch_steps": h_bad, "nnz_mismatch_steps": nnz_bad,
            "cycles_vs_model_mismatch_steps": cyc_bad}


# -- the whole bench --------------------------------------------------------------------------

def run_bench(bundle: ModelBundle, dataset, shape: CoreShape, engine_run, *, engine_name: str,
              thetas=None, clock_mhz: float = 100.0, clock_source: str = "stated",
              limit: int | None = None, accuracy_drop: float = 0.03, golden_run=None,
              torch_threads: int = 1, torch_repeats: int = 20, progress: bool = True,
              log=print) -> dict:
    """Measure ``bundle`` on ``dataset``'s test set at each threshold; returns the bench dict.

    ``thetas``: list of (Θx code, Θh code); None sweeps :func:`sweep_codes` (same Θ for x and h)
    until accuracy falls more than ``accuracy_drop`` below Θ = 0 (that point included), plus the
    bundle's trained thresholds. Θ = 0 is always measured (the speed-up baseline).
    ``golden_run``: when the engine is not the golden model, the golden model's run, to check
    bit-exactness and the cycle model on every step.
    """
    from tqdm import tqdm

    if dataset.x_test.shape[2] != bundle.input_size:
        raise UserError(f"data set {dataset.name!r} has {dataset.x_test.shape[2]} input "
                        f"features, the model expects {bundle.input_size}")
    n = dataset.x_test.shape[0] if limit is None else min(int(limit), dataset.x_test.shape[0])
    if n < 1:
        raise UserError(f"--limit must be ≥ 1, got {limit}")
    lengths = np.asarray(dataset.len_test[:n], dtype=np.int64)
    T = int(lengths.max())
    x = dataset.x_test[:n, :T]
    codes = bundle.quantize_input(x, where=f"data set {dataset.name} (test)")
    labels = np.asarray(dataset.y_test[:n])
    I, H = bundle.input_size, bundle.hidden_size

    log(f"timing torch nn.GRU (batch 1, {torch_threads} thread(s), {torch_repeats} repeats) ...")
    torch_info = torch_gru_latency(bundle, T, repeats=torch_repeats, threads=torch_threads)
    torch_info["dense_float_accuracy"] = torch_dense_accuracy(bundle, codes, lengths, labels)

    trained = (int(bundle.theta_x), int(bundle.theta_h))
    auto = thetas is None
    if auto:
        todo = [(c, c) for c in sweep_codes(bundle)]
        if trained != (0, 0) and trained not in todo:
            todo.append(trained)
    else:
        todo = list(thetas)
        if (0, 0) not in todo:
            todo.insert(0, (0, 0))
    # Θ = 0 first (baseline), then in increasing order.
    todo = [(0, 0)] + sorted((t for t in todo if t != (0, 0)), key=lambda t: (max(t), t))

    rows, results, cross = [], {}, []
    base_cycles = None
    acc0 = None
    stopped = False
    bar = tqdm(todo, desc=f"bench ({engine_name})", unit="Θ", disable=not progress)
    for tx, th in bar:
        if stopped and (tx, th) != trained:
            continue
        bar.set_postfix_str(f"Θx={tx * bundle.formats.act.lsb:g} Θh={th * bundle.formats.act.lsb:g}")
        b = bundle.with_thresholds(tx, th)
        res = engine_run(b, codes, lengths=lengths, shape=shape)
        row = summarise(res, b, labels, shape, clock_mhz,
                        base_cycles=base_cycles, torch_us=torch_info["per_step_us"])
        if base_cycles is None:
            base_cycles = res.flat("cycles")
            row["speedup_vs_theta0"] = 1.0
            acc0 = row["accuracy"]
        row["trained"] = (tx, th) == trained
        if golden_run is not None:
            ref = golden_run(b, codes, lengths=lengths, shape=shape)
            cmp = _compare(res, ref)
            cmp.update(theta_x_code=tx, theta_h_code=th)
            cross.append(cmp)
        rows.append(row)
        results[(tx, th)] = res
        if auto and acc0 is not None and row["accuracy"] is not None and tx == th and \
                row["accuracy"] < acc0 - accuracy_drop:
            stopped = True
    bar.close()

    # Per-step cycle trace of one sequence (the longest, first of them) at up to four thresholds:
    # Θ = 0, the largest, two in between, and the trained one.
    seq = int(np.argmax(lengths))
    L = int(lengths[seq])
    trace = {"sequence": seq, "length": L, "series": []}
    picks = sorted(set(np.linspace(0, len(rows) - 1, min(4, len(rows))).round().astype(int))
                   | {k for k, r in enumerate(rows) if r["trained"]})
    for row in (rows[k] for k in picks):
        res = results[(row["theta_x_code"], row["theta_h_code"])]
        nnz = res.nnz_dx[seq, :L] + res.nnz_dh[seq, :L]
        trace["series"].append({
            "theta_x": row["theta_x"], "theta_h": row["theta_h"],
            "cycles": res.cycles[seq, :L].tolist(),
            "nnz_dx": res.nnz_dx[seq, :L].tolist(), "nnz_dh": res.nnz_dh[seq, :L].tolist(),
            "bound": cycle_bound(nnz, H, shape).tolist(),
        })

    cycles_source = ("cycle model (drnn_hw.cycle_model.step_cycles)" if engine_name == "golden"
                     else f"measured: the core's cycle counter in {engine_name} simulation")
    return {
        "schema": "drnn-bench/1",
        "command": None,
        "model": {"name": bundle.name, "source": bundle.source, "input_size": I,
                  "hidden_size": H, "weights": 3 * H * (I + H),
                  "dense_ops_per_step": dense_ops_per_step(I, H),
                  "trained_theta_x_code": trained[0], "trained_theta_h_code": trained[1],
                  "formats": bundle.formats.to_dict()},
        "dataset": {"name": dataset.name, "split": "test", "sequences": int(n),
                    "steps": int(lengths.sum()), "max_length": T,
                    "limited": limit is not None and n < dataset.x_test.shape[0]},
        "core": {**shape.to_dict(), "multipliers": shape.multipliers,
                 "blocks": shape.blocks(H), "cycle_model": FORMULA},
        "engine": engine_name,
        "cycles_source": cycles_source,
        "thresholds_note": "same weights at every row; thresholds applied at run time with "
                           "bundle.with_thresholds (the THETA_X/THETA_H registers), not retrained",
        "clock": {"mhz": clock_mhz, "source": clock_source},
        "definitions": DEFINITIONS,
        "reference_design": REFERENCE_DESIGN,
        "peer_model": {"formula": peer_model.FORMULA, "assumptions": peer_model.ASSUMPTIONS},
        "torch": torch_info,
        "rows": rows,
        "trace": trace,
        "cross_check": cross if golden_run is not None else None,
        "plots": [],
    }


def write_json(path, bench: dict) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(bench, indent=1) + "\n")
    return p
