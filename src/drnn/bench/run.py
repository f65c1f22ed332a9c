"""``drnn bench``'s orchestration: run a model on its test set at each threshold on an engine,
cross-check against the golden model, and gather every figure into the bench dict (bench.json).

The definitions of the figures are in :mod:`drnn.bench.metrics`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import (CHANNELS, FORMULA, CoreShape, beat_lags, cycle_bound,
                                 frame_interval, frame_latency)
from drnn_hw.errors import UserError
from drnn_hw.golden import GoldenResult
from drnn_train.evaluate import regression_errors

from . import peer_model
from .metrics import (DEFINITIONS, REFERENCE_DESIGN, cycle_breakdown,
                      cycle_stats, dense_ops_per_step, head_accuracy, head_regression,
                      mxv_utilisation, sparsity, speedup, sweep_codes,
                      useful_macs)
from .torch_ref import torch_dense_accuracy, torch_dense_regression, torch_gru_latency

__all__ = ["summarise", "run_bench", "write_json", "PEER_NA"]

#: Why an LSTM's bench rows have no peer figure (``peer`` None).
PEER_NA = ("n/a: EdgeDRNN publishes the schedule of a delta-GRU only (3 gates, its own "
           "activation phase); a model of an LSTM on it would be a schedule nobody built")

# -- one threshold point ----------------------------------------------------------------------

def _layer_nnz(result, bundle: ModelBundle) -> list:
    """[(nnz_dx, nnz_dh) per valid step] for each layer (one layer: the result's own)."""
    if bundle.num_layers == 1 or result.layer_nnz_dx is None:
        return [(result.flat("nnz_dx"), result.flat("nnz_dh"))]
    dx, dh = result.flat("layer_nnz_dx"), result.flat("layer_nnz_dh")
    return [(dx[:, l], dh[:, l]) for l in range(bundle.num_layers)]


def _per_layer_sum(fn, bundle: ModelBundle, per_layer):
    """Σ over the layers of ``fn(layer, nnz_dx, nnz_dh)``: a stacked model's figure on the
    golden model's schedule, layers in sequence on one core (EdgeDRNN's, for the peer)."""
    return sum(fn(ly, dx, dh) for ly, (dx, dh) in zip(bundle.layers, per_layer))


def summarise(result, bundle: ModelBundle, labels, shape: CoreShape, clock_mhz: float,
              base_cycles=None, torch_us: float | None = None, idle=None) -> dict:
    """Everything the bench reports for one engine result (a GoldenResult) at one threshold.

    ``labels``: the test labels (N,), or a regression model's targets ((N, T, O) per step or
    (N, O)): the row then has ``accuracy`` None and ``rmse``, ``rmse_per_output``, ``nrmse``.

    A stacked bundle: sparsity over all layers' inputs (hidden states), MACs, cycle bound,
    dense operations, breakdown and the peer's cycles summed over the layers (layers in
    sequence on one core), thresholds those of layer 0, and ``layers`` per layer (thresholds,
    sparsity, mean cycles of the layer's pass).

    ``result``'s cycles are those of frames back to back (each sequence's later steps scanned
    while the AP finished the step before, issue #10's step overlap); ``idle``: the golden
    model's result of the same run with every step finding the core idle (prescan 0), for
    the latency of one frame at a time (by default ``result``, when nothing in it was
    prescanned)."""
    f = bundle.formats
    cyc = result.flat("cycles")
    ndx, ndh = result.flat("nnz_dx"), result.flat("nnz_dh")
    per = _layer_nnz(result, bundle)
    I = sum(ly.input_size for ly in bundle.layers)
    H = sum(ly.hidden_size for ly in bundle.layers)
    stats = cycle_stats(cyc)
    cell = bundle.cell
    kept = _kept(bundle, shape) if shape.weight_format == "compressed" else \
        [None] * bundle.num_layers
    # A compressed core multiplies only its stored (value, row) pairs: P·kept per gate row set
    # of a kept column (P as built) instead of H.
    P_built = min(shape.rows, max(ly.hidden_size for ly in bundle.layers))
    macs = sum(useful_macs(dx, dh, ly.hidden_size if k is None else min(P_built * k,
                                                                        ly.hidden_size), cell)
               for ly, (dx, dh), k in zip(bundle.layers, per, kept))
    gru = cell == "gru"
    if gru:
        peer_pe = peer_model.peer_pe_for(shape)
        peer = _per_layer_sum(lambda ly, dx, dh: peer_model.peer_step_cycles(
            dx, dh, ly.input_size, ly.hidden_size, peer_pe), bundle, per)
        peer_pub = _per_layer_sum(lambda ly, dx, dh: peer_model.peer_step_cycles(
            dx, dh, ly.input_size, ly.hidden_size, peer_model.PUBLISHED_PE), bundle, per)
    bound = sum(cycle_bound(dx + dh, ly.hidden_size, shape, k)
                for ly, (dx, dh), k in zip(bundle.layers, per, kept))
    dense_ops = _per_layer_sum(lambda ly, dx, dh: dense_ops_per_step(
        ly.input_size, ly.hidden_size, cell), bundle, per)
    parts = [cycle_breakdown(dx + dh, cyc, ly.hidden_size, shape, cell, k)
             for ly, (dx, dh), k in zip(bundle.layers, per, kept)]
    breakdown = {k: sum(p[k] for p in parts) for k in ("ap_fixed", "mxv_issue", "mxv_drain")}
    breakdown["total"] = float(np.mean(cyc))
    breakdown["scan_wait"] = breakdown["total"] - breakdown["ap_fixed"] - \
        breakdown["mxv_issue"] - breakdown["mxv_drain"]
    breakdown = {k: breakdown[k] for k in ("ap_fixed", "mxv_issue", "mxv_drain", "scan_wait",
                                           "total")}
    lat_mean_us = stats["mean"] / clock_mhz
    # The host's view (frames back to back; one frame at a time), from each step's cycles by
    # the relations of the cycle model that the co-simulation tests check in Verilator.
    hidden = [ly.hidden_size for ly in bundle.layers]
    if idle is None:
        if result.prescan is not None and result.prescan.any():
            raise ValueError("summarise: a result of prescanned steps needs idle")
        idle = result
    idle_pass = idle.flat("layer_cycles") if bundle.num_layers > 1 else None
    lags = beat_lags(hidden, shape.rows, shape.scan, shape.out_layers, idle_pass)
    interval = frame_interval(cyc, bundle.num_layers, shape.step_overlap)
    frame_lat = frame_latency(idle.flat("cycles"), lags)
    first = bundle.layers[0]
    reg = head_regression(bundle, result.h, result.lengths, labels)
    row = {
        "theta_x": first.theta_x * f.act.lsb, "theta_h": first.theta_h * f.act.lsb,
        "theta_x_code": int(first.theta_x), "theta_h_code": int(first.theta_h),
        "trained": False,
        "accuracy": head_accuracy(bundle, result.h, result.lengths, labels),
        **({} if reg is None else {k: reg[k] for k in ("rmse", "rmse_per_output", "nrmse")}),
        "sparsity_dx": sparsity(ndx, I), "sparsity_dh": sparsity(ndh, H),
        "nnz_dx_mean": float(ndx.mean()), "nnz_dh_mean": float(ndh.mean()),
        "steps": int(cyc.size),
        "cycles": stats,
        "latency_us": {k: v / clock_mhz for k, v in stats.items() if k != "total"},
        "throughput_cycles": float(np.mean(interval)),
        "frame_latency_cycles": float(np.mean(frame_lat)),
        "frame_latency_us": float(np.mean(frame_lat)) / clock_mhz,
        "speedup_vs_theta0": None if base_cycles is None else speedup(base_cycles, cyc),
        "useful_macs": macs,
        "mxv_utilisation": mxv_utilisation(macs, shape, cyc, cell),
        "bound_cycles_mean": float(np.mean(bound)),
        "bound_efficiency": float(np.sum(bound)) / float(np.sum(interval)),
        "effective_gops": dense_ops / (stats["mean"] / (clock_mhz * 1e6)) / 1e9,
        "ops_per_multiplier_cycle": dense_ops / (shape.multipliers_for(cell) * stats["mean"]),
        "breakdown": breakdown,
        "peer": {"pe": peer_pe, "cycles_mean": float(peer.mean()),
                 "ratio_to_ours": float(peer.sum()) / float(cyc.sum())} if gru else None,
        "peer_published": {"pe": peer_model.PUBLISHED_PE, "cycles_mean": float(peer_pub.mean()),
                           "ratio_to_ours": float(peer_pub.sum()) / float(cyc.sum())}
        if gru else None,
        **({} if gru else {"peer_na": PEER_NA}),
        "torch_ratio": None if torch_us is None else torch_us / lat_mean_us,
    }
    if shape.weights == "axi":
        # Weights in DRAM: every kept delta's column is read (Σ_l nnz_l · column bytes_l);
        # a dense update would read every column of every layer once.
        from drnn_hw.dram import column_bytes, dense_bytes
        per_step = sum((dx + dh) * c for (dx, dh), c in zip(per, column_bytes(bundle, shape)))
        dense = dense_bytes(bundle, shape)
        row["dram"] = {"bytes_per_step_mean": float(np.mean(per_step)),
                       "dense_bytes_per_step": dense,
                       "fraction_of_dense": float(np.mean(per_step)) / dense,
                       "bytes_per_cycle_mean": float(np.sum(per_step)) / float(np.sum(cyc))}
    if bundle.num_layers > 1:
        # Each layer's pass (golden: the cycle model; verilator: the LAYER_CYCLES registers).
        layer_cycles = (result.flat("layer_cycles") if result.layer_cycles is not None
                        else None)
        row["layers"] = [{"theta_x": ly.theta_x * f.act.lsb, "theta_h": ly.theta_h * f.act.lsb,
                          "sparsity_dx": sparsity(dx, ly.input_size),
                          "sparsity_dh": sparsity(dh, ly.hidden_size),
                          "cycles_mean": (None if layer_cycles is None
                                          else float(layer_cycles[:, l].mean()))}
                         for l, (ly, (dx, dh)) in enumerate(zip(bundle.layers, per))]
    return row


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
              limit: int | None = None, accuracy_drop: float = 0.03,
              nrmse_rise: float = 0.1, golden_run=None,
              torch_threads: int = 1, torch_repeats: int = 20, progress: bool = True,
              log=print, dram_latency: int | None = None) -> dict:
    """Measure ``bundle`` on ``dataset``'s test set at each threshold; returns the bench dict.

    ``thetas``: list of (Θx code, Θh code); None sweeps :func:`sweep_codes` (same Θ for x and h)
    until accuracy falls more than ``accuracy_drop`` below Θ = 0 (a regression model: until
    its nrmse, RMSE / target std, rises more than ``nrmse_rise`` above Θ = 0's; that point
    included), plus the bundle's trained thresholds. Θ = 0 is always measured (the speed-up baseline).
    ``dram_latency``: a core with its weights in DRAM: the memory's read latency the engine
    runs at (cycles), reported with the stated bandwidth (the bus width per cycle).
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
    if bundle.is_regression:
        from drnn_train.evaluate import check_targets

        check_targets(bundle, dataset)
        if labels.ndim == 3:        # per-step targets, trimmed like x
            labels = labels[:, :T]
    I, H = bundle.input_size, bundle.hidden_size

    log(f"timing torch nn.{'LSTM' if bundle.cell == 'lstm' else 'GRU'} (batch 1, {torch_threads} thread(s), {torch_repeats} repeats) ...")
    torch_info = torch_gru_latency(bundle, T, repeats=torch_repeats, threads=torch_threads)
    torch_info["dense_float_accuracy"] = torch_dense_accuracy(bundle, codes, lengths, labels)
    if bundle.is_regression:
        torch_info["dense_float_rmse"] = torch_dense_regression(bundle, codes, lengths, labels)

    # A stacked bundle's sweep sets every layer to the same Θ; its trained row runs the bundle
    # as it is (per-layer thresholds), labelled with layer 0's.
    trained = (int(bundle.layers[0].theta_x), int(bundle.layers[0].theta_h))
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
    base_cycles = dense_base = None
    acc0 = nrmse0 = None
    stopped = False
    # disable=None: no bar when stderr is not a terminal (a redirected log stays readable)
    bar = tqdm(todo, desc=f"bench ({engine_name})", unit="Θ",
               disable=None if progress else True)
    for tx, th in bar:
        if stopped and (tx, th) != trained:
            continue
        bar.set_postfix_str(f"Θx={tx * bundle.formats.act.lsb:g} Θh={th * bundle.formats.act.lsb:g}")
        b = bundle if (tx, th) == trained else bundle.with_thresholds(tx, th)
        res = engine_run(b, codes, lengths=lengths, shape=shape)
        ref = None if golden_run is None else golden_run(b, codes, lengths=lengths, shape=shape)
        from drnn_hw.golden import run as golden_model
        idle = golden_model(b, codes, lengths=lengths, shape=shape, prescan=0,
                            **({} if dram_latency is None else {"dram_latency": dram_latency}))
        row = summarise(res, b, labels, shape, clock_mhz,
                        base_cycles=base_cycles, torch_us=torch_info["per_step_us"], idle=idle)
        if shape.weight_format == "compressed":
            gold = res if res.layer_h is not None else ref
            if gold is None:
                from drnn_hw.golden import run as golden_model
                gold = golden_model(b, codes, lengths=lengths, shape=shape)
            sp = spatial_contributions(b, codes, lengths, shape, gold, res.flat("cycles"),
                                       dense_base, dram_latency)
            dense = sp.pop("_dense_cycles")
            dense_base = dense if dense_base is None else dense_base   # row 0 is Θ = 0
            row["spatial"] = sp
        if base_cycles is None:
            base_cycles = res.flat("cycles")
            row["speedup_vs_theta0"] = 1.0
            acc0 = row["accuracy"]
            nrmse0 = row.get("nrmse")
        row["trained"] = (tx, th) == trained
        if ref is not None:
            cmp = _compare(res, ref)
            cmp.update(theta_x_code=tx, theta_h_code=th)
            cross.append(cmp)
        rows.append(row)
        results[(tx, th)] = res
        if auto and acc0 is not None and row["accuracy"] is not None and tx == th and \
                row["accuracy"] < acc0 - accuracy_drop:
            stopped = True
        if auto and nrmse0 is not None and tx == th and row["nrmse"] > nrmse0 + nrmse_rise:
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
        one = GoldenResult(h=res.h[seq:seq + 1], nnz_dx=res.nnz_dx[seq:seq + 1],
                           nnz_dh=res.nnz_dh[seq:seq + 1], cycles=res.cycles[seq:seq + 1],
                           lengths=np.array([L]),
                           layer_nnz_dx=None if res.layer_nnz_dx is None
                           else res.layer_nnz_dx[seq:seq + 1],
                           layer_nnz_dh=None if res.layer_nnz_dh is None
                           else res.layer_nnz_dh[seq:seq + 1])
        kept = _kept(bundle, shape) if shape.weight_format == "compressed" else \
            [None] * bundle.num_layers
        bound = sum(cycle_bound(dx + dh, ly.hidden_size, shape, k)
                    for ly, (dx, dh), k in zip(bundle.layers, _layer_nnz(one, bundle), kept))
        trace["series"].append({
            "theta_x": row["theta_x"], "theta_h": row["theta_h"],
            "cycles": res.cycles[seq, :L].tolist(),
            "nnz_dx": res.nnz_dx[seq, :L].tolist(), "nnz_dh": res.nnz_dh[seq, :L].tolist(),
            "bound": np.asarray(bound).tolist(),
        })

    compressed = shape.weight_format == "compressed"
    model_name = "drnn_hw.spatial.spatial_step_cycles" if compressed else \
        "drnn_hw.cycle_model.step_cycles"
    cycles_source = (f"cycle model ({model_name})" if engine_name == "golden"
                     else f"measured: the core's cycle counter in {engine_name} simulation")
    if compressed:
        from drnn_hw.spatial import SPATIAL_FORMULA
    return {
        "schema": "drnn-bench/1",
        "command": None,
        # A regression model's fields (a classifier's bench.json is what it always was).
        **({"task": "regression", "outputs": list(bundle.outputs),
            "per_step_targets": bool(labels.ndim == 3),
            # the test targets' std per output (what nrmse divides by), from the same counted
            # values: the errors of the targets against themselves carry it
            "target_std": regression_errors(labels, labels, lengths)["target_std"]}
           if bundle.is_regression else {}),
        "model": {"name": bundle.name, "source": bundle.source, "input_size": I,
                  "hidden_size": H,
                  "cell": bundle.cell,
                  "weights": sum(CHANNELS[bundle.cell] * ly.hidden_size
                                 * (ly.input_size + ly.hidden_size) for ly in bundle.layers),
                  "dense_ops_per_step": sum(dense_ops_per_step(ly.input_size, ly.hidden_size,
                                                               bundle.cell)
                                            for ly in bundle.layers),
                  **({"layers": [{"input_size": ly.input_size, "hidden_size": ly.hidden_size,
                                  "theta_x_code": ly.theta_x, "theta_h_code": ly.theta_h}
                                 for ly in bundle.layers]} if bundle.num_layers > 1 else {}),
                  "trained_theta_x_code": trained[0], "trained_theta_h_code": trained[1],
                  "formats": bundle.formats.to_dict()},
        "dataset": {"name": dataset.name, "split": "test", "sequences": int(n),
                    "steps": int(lengths.sum()), "max_length": T,
                    "limited": limit is not None and n < dataset.x_test.shape[0]},
        "core": {**shape.to_dict(), "multipliers": shape.multipliers_for(bundle.cell),
                 "blocks": shape.blocks(H),
                 "cycle_model": SPATIAL_FORMULA if compressed else FORMULA,
                 **({"kept": [int(k) for k in _kept(bundle, shape)]} if compressed else {})},
        "engine": engine_name,
        "cycles_source": cycles_source,
        "thresholds_note": "same weights at every row; thresholds applied at run time with "
                           "bundle.with_thresholds (the THETA_X/THETA_H registers), not retrained",
        "clock": {"mhz": clock_mhz, "source": clock_source},
        **({"dram": {"latency_cycles": dram_latency, "bus_bits": shape.bus_bits,
                     "bandwidth_bytes_per_cycle": shape.bus_bits // 8,
                     "bandwidth_gb_per_s": shape.bus_bits // 8 * clock_mhz / 1000,
                     "memory": "fixed read latency, no back-pressure, one beat per cycle "
                               "(the cycle model's memory terms)"}}
           if shape.weights == "axi" else {}),
        "definitions": DEFINITIONS,
        "reference_design": REFERENCE_DESIGN,
        "peer_model": {"formula": peer_model.FORMULA, "assumptions": peer_model.ASSUMPTIONS}
        if bundle.cell == "gru" else {"na": PEER_NA},
        "torch": torch_info,
        "rows": rows,
        "trace": trace,
        "cross_check": cross if golden_run is not None else None,
        "plots": [],
    }


def spatial_contributions(bundle, codes, lengths, shape: CoreShape, gold, cycles,
                          dense_base=None, dram_latency: int | None = None) -> dict:
    """A compressed-weight core's speed-up split into its two sparsities (Spartus's
    spatio-temporal product), on the same sequences at the row's thresholds.

    ``gold``: the golden model's result (its per-layer h gives every step's kept deltas,
    :func:`drnn_hw.spatial.delta_masks`); ``cycles``: the engine's cycles of the valid steps;
    ``dense_base``: the dense core's cycles at Θ = 0 (the first row's ``_dense_cycles``; None
    on the first row, which is Θ = 0). The dense core's cycles are the cycle model's
    (:func:`drnn_hw.cycle_model.cycles_for_masks`, which its RTL meets on every step).
    Returns ``weight_sparsity``, ``dense_core_cycles_mean``, ``temporal_speedup`` = Σ dense(Θ
    = 0) / Σ dense(Θ), ``spatial_speedup`` = Σ dense(Θ) / Σ cycles, ``speedup_vs_dense_theta0``
    = their product = Σ dense(Θ = 0) / Σ cycles, and ``_dense_cycles`` (the caller's next
    ``dense_base``).

    A compressed core in DRAM (``shape.weights == "axi"``): the dense core is the dense AXI
    core on the same memory (its block-word image, read latency ``dram_latency``, default
    :data:`drnn_hw.dram.DEFAULT_LATENCY`), so the spatial factor is what the pair-word image
    saves in traffic and issue cycles."""
    from dataclasses import replace

    from drnn_hw.spatial import bundle_spatial_cycles, delta_masks, weight_sparsity
    masks = delta_masks(codes, gold.layer_h, lengths,
                        [(ly.theta_x, ly.theta_h) for ly in bundle.layers])
    dense_shape = replace(shape, weight_format="dense")
    fetches = None
    if shape.weights == "axi":
        from drnn_hw.dram import DEFAULT_LATENCY, column_fetch
        fetches = column_fetch(bundle, dense_shape,
                               DEFAULT_LATENCY if dram_latency is None else dram_latency)
    valid = np.arange(codes.shape[1])[None, :] < np.asarray(lengths)[:, None]
    dense = bundle_spatial_cycles(bundle, masks, dense_shape, dense=True,
                                  fetches=fetches)[valid]
    base = dense if dense_base is None else dense_base
    cyc = float(np.sum(cycles))
    return {"weight_sparsity": weight_sparsity(bundle),
            "dense_core_cycles_mean": float(np.mean(dense)),
            "temporal_speedup": float(np.sum(base)) / float(np.sum(dense)),
            "spatial_speedup": float(np.sum(dense)) / cyc,
            "speedup_vs_dense_theta0": float(np.sum(base)) / cyc,
            "_dense_cycles": dense}


def _kept(bundle, shape):
    """Each layer's (value, row) pairs per slice on a compressed core (the P it builds)."""
    from dataclasses import replace

    from drnn_hw.spatial import layer_kept
    P = min(shape.rows, max(ly.hidden_size for ly in bundle.layers))
    return [layer_kept(ly, replace(shape, rows=P)) for ly in bundle.layers]


def write_json(path, bench: dict) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(bench, indent=1) + "\n")
    return p
