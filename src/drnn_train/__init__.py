"""The trainer: data sets, delta-GRU with quantisation-aware training, export, evaluation.

Python API (torch is imported by the submodules that need it, not here):

* ``drnn_train.datasets.load_dataset(name_or_path) -> Dataset``
* ``drnn_train.train.train_model(out, dataset, progress=True, **TrainConfig fields)
  -> (checkpoint path, metrics)``; :class:`drnn_train.config.TrainConfig` (torch-free)
* ``drnn_train.export.bundle_from_checkpoint(load_checkpoint(path)) -> (ModelBundle, saturated)``;
  the import of PyTorch GRU state dicts and checkpoints as people save them (``export.py``)
* ``drnn_train.evaluate.evaluate_bundle(bundle, dataset, shape=None) -> dict``
* ``drnn_train.model.exact_run(bundle, x_codes, lengths)``: the hardware-exact mode in torch

The command-line side (``drnn train``, ``export``, ``evaluate``) and the threshold sweep
(``python -m drnn.sweep``) live in the application package :mod:`drnn`.
"""
