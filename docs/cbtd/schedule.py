"""The CBTD schedule measured: `SEED=S python docs/cbtd/schedule.py SPEC...`.

Pre-trains one float GRU (JapaneseVowels, the default recipe, seed S), then for each SPEC (a
JSON object of TrainConfig fields) runs the pruning phase and the delta + QAT fine-tuning from
it and prints pruned-float / QAT / hardware-exact accuracy, weight and temporal sparsity. The
README's comparison ran

    SEED=0 python docs/cbtd/schedule.py '{"spatial_sparsity":0.75}' \\
        '{"spatial_sparsity":0.75,"targeted_dropout":1.0}' \\
        '{"spatial_sparsity":0.75,"anneal":0.0,"targeted_dropout":1.0}'

(annealed targeted dropout at α = 0.5, the default; annealed magnitude pruning, α = 1; one-shot
pruning, no annealing) and the same with SEED=1; outputs in schedule_seed0.txt, _seed1.txt.
"""
import json
import os
import sys
import time
from dataclasses import replace

from drnn_train.datasets import load_dataset
from drnn_train.train import TrainConfig, train

ds = load_dataset("japanese-vowels")
base = TrainConfig(seed=int(os.environ.get("SEED", "0")))
t = time.time()
ck, _ = train(replace(base, finetune_epochs=0, theta_x=0.0, theta_h=0.0), ds, progress=False)
fs = ck["float_state"]
print("float", ck["metrics"]["float_accuracy"], time.time() - t, flush=True)
for spec in sys.argv[1:]:
    kw = json.loads(spec)
    t = time.time()
    _, m = train(replace(base, **kw), ds, progress=False, init_state=fs)
    print(spec, {k: m.get(k) for k in ("pruned_float_accuracy", "qat_accuracy",
                                       "exact_accuracy", "weight_sparsity", "sparsity_dx",
                                       "sparsity_dh", "kept_per_slice")},
          round(time.time() - t), flush=True)
