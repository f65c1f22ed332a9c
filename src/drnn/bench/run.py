"""``drnn bench``'s orchestration: run a model on its test set at each threshold on an engine,
cross-check against the golden model, and gather every figure into the bench dict (bench.json).

The definitions of the figures are in :mod:`drnn.bench.metrics`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import FORMULA, CoreShape, cycle_bound
from drnn_hw.errors import UserError

from . import peer_model
from .metrics import (DEFINITIONS, REFERENCE_DESIGN, bound_efficiency, cycle_breakdown,
                      cycle_stats, dense_ops_per_step, effective_ops_per_s, head_accuracy,
                      mxv_utilisation, ops_per_multiplier_cycle, sparsity, speedup, sweep_codes,
                      useful_macs)
from .torch_ref import torch_dense_accuracy, torch_gru_latency

__all__ = ["summarise", "run_bench", "write_json"]

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
