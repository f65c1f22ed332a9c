"""Column-balanced targeted dropout (CBTD): training a delta-RNN to the core's sparse pattern.

Source: Column-Balanced Targeted Dropout of Spartus (C. Gao, T. Delbruck, S.-C. Liu, "Spartus:
A 9.9 TOp/s FPGA-based LSTM accelerator exploiting spatio-temporal sparsity", IEEE TNNLS,
2022), which builds on targeted dropout (A. N. Gomez et al., "Learning sparse networks using
targeted dropout", 2019). The pattern is :mod:`drnn_hw.balance`'s: for every weight matrix
(each gate's W_x and W_h, every layer; PyTorch's ``w_ih`` (G·H, I) and ``w_hh`` (G·H, H) cut
into G gate blocks of H rows), every column, every slice of rows r ≡ p (mod P), the ``kept``
largest magnitudes stay and the rest are zero.

The schedule (:func:`drnn_train.train.train` runs it between the float pre-training and the
delta + QAT fine-tuning; the reasons below):

1. **Annealed targeted dropout** (float, no thresholds). Over the first ``anneal`` fraction of
   this phase's optimiser steps the target sparsity rises linearly from 0 to γ, then stays at
   γ. Before every step the *targeted* weights are, per slice, all but the
   ``kept_per_slice(γ_t)`` largest of the current weights; each targeted weight is dropped
   (multiplied by 0 in that forward pass) with probability α (``rate``), the others are used
   as they are. Targeted weights that matter get gradients on the steps they are not dropped
   and can grow out of the target set; the ones that do not are learnt to be unnecessary.
2. **Fixed mask.** At the end of phase 1 the mask is the column-balanced top-``kept`` of the
   weights at γ (:func:`drnn_hw.balance.balanced_mask`); pruned weights are set to 0.
3. **Fine-tuning with the mask fixed**: the existing delta + QAT phase (thresholds and fake
   quantisation in the forward pass), the mask applied in every forward pass (before the fake
   quantisation, so a pruned weight is exactly 0 in the exported bundle) and the pruned raw
   weights reset to 0 after every optimiser step.

Why this schedule: pruning all at once at γ = 0.75 removes three of four weights of every
slice in one step, and the float network has never been trained to do without any of them;
annealing removes them a few at a time while the rest adapt, and the stochastic dropout of the
targeted set (instead of zeroing it) lets a weight that was targeted early come back. The mask
is then fixed before the thresholds and the quantisation come in, so the fine-tuning does not
move the pattern the hardware is built for (measured: README, "Spatial sparsity (CBTD)").
"""

from __future__ import annotations

import math

import numpy as np
import torch

from drnn_hw.balance import BalanceUnit, balanced_mask, kept_per_slice

__all__ = ["ColumnBalancedDropout", "layer_masks"]


def layer_masks(w: torch.Tensor, hidden: int, rows: int, kept: int) -> torch.Tensor:
    """The column-balanced keep mask of a PyTorch-layout weight ``w`` (G·H, C) as float64
    0/1 (G·H, C): each of the G gate blocks of ``hidden`` rows masked on its own
    (:func:`drnn_hw.balance.balanced_mask`)."""
    a = w.detach().cpu().double().numpy()
    G = a.shape[0] // hidden
    m = np.concatenate([balanced_mask(a[g * hidden:(g + 1) * hidden], rows, kept)
                        for g in range(G)])
    return torch.as_tensor(m, dtype=torch.float64)


class ColumnBalancedDropout:
    """The CBTD schedule for the layers of a :class:`~drnn_train.model.DeltaRNNClassifier`.

    ``gamma``: target sparsity in [0, 1); ``rows``: the balance unit P (the core's rows);
    ``rate``: α, the probability a targeted weight is dropped in a step; ``anneal``: the
    fraction of ``total_steps`` over which γ rises from 0 (then held); ``seed`` seeds the
    dropout draws. Sets each layer's ``weight_mask`` (used by its ``gate_params``).
    Raises ValueError for γ outside [0, 1), P < 1, α or ``anneal`` outside [0, 1].
    """

    def __init__(self, model, gamma: float, rows: int, total_steps: int, rate: float = 0.5,
                 anneal: float = 0.75, seed: int = 0):
        kept_per_slice(gamma, 1, 1)                 # validates γ
        if rows < 1:
            raise ValueError(f"balance rows P must be ≥ 1, got {rows}")
        for name, v in (("targeted dropout rate", rate), ("anneal fraction", anneal)):
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {v}")
        self.model, self.gamma, self.rows, self.rate = model, float(gamma), int(rows), rate
        self.ramp = max(1, math.ceil(anneal * total_steps))
        self.gen = torch.Generator().manual_seed(seed)
        self.fixed = False

    def gamma_at(self, step: int) -> float:
        """γ_t: linear from 0 at step 0 to γ at the end of the ramp, then γ."""
        return self.gamma * min(1.0, step / self.ramp)

    def before_step(self, step: int) -> None:
        """Draw this step's dropout masks (targeted set at γ_t, each dropped with prob. α)."""
        g_t = self.gamma_at(step)
        for layer in self.model.grus:
            H = layer.hidden_size
            kept = kept_per_slice(g_t, H, self.rows)
            masks = []
            for w in (layer.w_ih, layer.w_hh):
                keep = layer_masks(w, H, self.rows, kept)
                drop = torch.rand(w.shape, generator=self.gen, dtype=torch.float64) < self.rate
                masks.append(torch.where((keep == 0) & drop, 0.0, 1.0).to(torch.float64))
            layer.weight_mask = tuple(masks)

    def fix(self) -> list[BalanceUnit]:
        """Fix the masks at γ from the current weights, zero the pruned weights; returns each
        layer's :class:`~drnn_hw.balance.BalanceUnit`."""
        units = []
        for layer in self.model.grus:
            H = layer.hidden_size
            unit = BalanceUnit.for_layer(self.gamma, H, self.rows)
            layer.weight_mask = tuple(layer_masks(w, H, self.rows, unit.kept)
                                      for w in (layer.w_ih, layer.w_hh))
            units.append(unit)
        self.fixed = True
        self.after_step()
        return units

    def after_step(self) -> None:
        """With the mask fixed: pruned raw weights back to exactly 0 (the optimiser's moments
        could move them; the forward pass masks them anyway)."""
        if not self.fixed:
            return
        with torch.no_grad():
            for layer in self.model.grus:
                for w, m in zip((layer.w_ih, layer.w_hh), layer.weight_mask):
                    w.mul_(m)
