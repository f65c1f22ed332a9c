"""Measure Verilator simulation speed and build time of a core; writes a JSON file.

    python -m drnn_sim.speed --out speed.json [--input 12 --hidden 64] [--steps 2000]

Runs ``random_bundle(I, H)`` on JapaneseVowels-like random-walk inputs (dense at Θ = 0 and
sparse at Θ > 0), in the default core shape unless told otherwise. Reports simulated clock
cycles per second of wall time (the testbench's own loop, excluding simulator start-up), the
build time of the core (from the build cache's record: the time the compile took when it was
built) and the machine load, since other jobs share the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from drnn_hw.bundle import random_bundle
from drnn_hw.cycle_model import CoreShape

from .check import sparse_walk
from .cosim import simulate


def measure(input_size=12, hidden=64, shape=None, sequences=20, steps=100, seed=0) -> dict:
    shape = shape or CoreShape()
    bundle = random_bundle(input_size, hidden, seed=seed)
    x = sparse_walk(np.random.default_rng(seed), sequences, steps, input_size,
                    bundle.formats.act)
    act = bundle.formats.act
    out = {"core": {"input_size": input_size, "hidden_size": hidden, **shape.to_dict()},
           "steps": sequences * steps, "runs": {}}
    for label, theta in (("theta_0", (0, 0)),
                         ("theta_0.1_0.05", (round(0.1 * 2 ** act.frac),
                                             round(0.05 * 2 ** act.frac)))):
        t0 = time.monotonic()
        r = simulate(bundle, shape, x, theta_x=theta[0], theta_h=theta[1])
        out["runs"][label] = {**r.perf, "total_seconds": round(time.monotonic() - t0, 2),
                              "mean_cycles_per_step": float(r.cycles.mean())}
    out["load_average"] = os.getloadavg()
    out["cpu_count"] = os.cpu_count()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--input", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--sequences", type=int, default=20)
    ap.add_argument("--steps", type=int, default=100)
    a = ap.parse_args(argv)
    res = measure(a.input, a.hidden, sequences=a.sequences, steps=a.steps)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    for label, run in res["runs"].items():
        print(f"{label}: {run['sim_cycles']} cycles in {run['wall_seconds']} s = "
              f"{run['cycles_per_second']} cycles/s wall, {run['cycles_per_cpu_second']} "
              f"cycles/s of simulator CPU time ({run['mean_cycles_per_step']:.1f} cycles/step); "
              f"build {run['build_seconds']} s")


if __name__ == "__main__":
    main()
