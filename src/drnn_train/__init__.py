"""The trainer: data sets, delta-GRU with quantisation-aware training, export, evaluation.

Python API (torch is imported by the submodules that need it, not here):

* ``drnn_train.datasets.load_dataset(name_or_path) -> Dataset``
* ``drnn_train.train.train_model(out, dataset, progress=True, **TrainConfig fields)
  -> (checkpoint path, metrics)``
* ``drnn_train.export.bundle_from_checkpoint(load_checkpoint(path)) -> (ModelBundle, saturated)``
* ``drnn_train.evaluate.evaluate_bundle(bundle, dataset, shape=None) -> dict``
* ``drnn_train.model.exact_run(bundle, x_codes, lengths)``: the hardware-exact mode in torch
* ``python -m drnn_train.sweep``: the threshold / weight-precision sweep for the README
"""
