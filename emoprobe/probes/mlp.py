"""The small MLP probe: one hidden layer, every seed trained side by side in one batch.

Inputs are the same training-rotated coordinates as the linear probe's, cut to their MLP_MAX_DIM
leading principal components (the coordinates come sorted by training variance): the first layer's
matrix products are nearly all of the MLP's cost, and the trailing components of a 1199-d set carry a
few per cent of its variance. Full-batch AdamW; the step kept is the one with the best UA on held-out
TRAINING actors (early stopping without touching the test actors).
"""

from __future__ import annotations

import numpy as np
import torch

from .linear import balanced_accuracy
from . import solver
from .solver import Rotated

MLP_HIDDEN = 256  # one hidden layer of 256 ReLU units: the "small MLP"
MLP_MAX_DIM = 256  # inputs: at most this many leading principal components of the training rows
MLP_DROPOUT = 0.5  # strong regularisation: 1200 training clips
MLP_WEIGHT_DECAY = 1e-2  # AdamW decoupled weight decay; fixed, not tuned
MLP_LR = 3e-3
MLP_STEPS = 80  # full-batch steps; the best step is chosen on held-out training actors
MLP_EVAL_EVERY = 5  # steps between validation checks
MLP_VAL_EVERY = 5  # every 5th training actor (4 of 20) is the MLP's early-stopping set
SEEDS = (0, 1, 2)  # MLP seeds; the linear probe (L-BFGS) is deterministic, so it runs once (seed 0)


def mlp_probe(block: Rotated, y: np.ndarray, n_classes: int, speakers: np.ndarray, train: np.ndarray,
              test: np.ndarray, seeds=SEEDS) -> np.ndarray:
    """Test predictions (seeds, n_test), class indices, of a one-hidden-layer MLP per seed."""
    X = torch.from_numpy(np.ascontiguousarray(block.X[:, :MLP_MAX_DIM]))
    val_speakers = np.unique(speakers[train])[::MLP_VAL_EVERY]
    is_val = np.isin(speakers[train], val_speakers)
    fit, val = train[~is_val], train[is_val]
    S, D, H = len(seeds), X.shape[1], MLP_HIDDEN
    params = []
    for seed in seeds:  # each seed: its own initialisation (PyTorch's default Linear init)
        torch.manual_seed(seed)
        first, last = torch.nn.Linear(D, H), torch.nn.Linear(H, n_classes)
        params.append([first.weight.T, first.bias, last.weight.T, last.bias])
    W1, b1, W2, b2 = (torch.stack([p[i].detach() for p in params]).requires_grad_() for i in range(4))
    opt = torch.optim.AdamW([W1, b1, W2, b2], lr=MLP_LR, weight_decay=MLP_WEIGHT_DECAY)
    target = torch.as_tensor(y[fit], dtype=torch.long).repeat(S)
    generator = torch.Generator().manual_seed(seeds[0])
    X_fit, X_check = X[fit], X[np.concatenate([val, test])]

    keep_scale = np.float32(1 / (1 - MLP_DROPOUT))  # inverted dropout: kept units scaled up

    def forward(inputs, train_mode=False):
        # fused bias-and-product kernels, and the dropout mask scaled once: fewer passes over the
        # (seeds, rows, hidden) activations, which cost more than the arithmetic for narrow inputs
        h = torch.relu(torch.baddbmm(b1[:, None], inputs.expand(S, -1, -1), W1))
        if train_mode:
            h = h * ((torch.rand(h.shape, generator=generator) > MLP_DROPOUT) * keep_scale)
        return torch.baddbmm(b2[:, None], h, W2)

    # the arithmetic (solver.FLOPS): per step, the first layer forward and its weights' gradient, the
    # second forward and both its gradients; per check, the forward on the validation and test rows
    n_checks = MLP_STEPS // MLP_EVAL_EVERY
    solver.FLOPS[0] += 2.0 * S * H * (MLP_STEPS * len(fit) * (2 * D + 3 * n_classes)
                                      + n_checks * len(X_check) * (D + n_classes))
    best_ua, best_pred = np.full(S, -1.0), np.zeros((S, len(test)), dtype=int)
    for step in range(MLP_STEPS):
        opt.zero_grad()
        logits = forward(X_fit, train_mode=True)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, n_classes), target, reduction="sum") / len(fit)
        loss.backward()
        opt.step()
        if step % MLP_EVAL_EVERY == MLP_EVAL_EVERY - 1:
            with torch.no_grad():
                pred = forward(X_check).argmax(-1).numpy()
            ua = balanced_accuracy(y[val], pred[:, :len(val)])
            improved = ua > best_ua
            best_ua[improved], best_pred[improved] = ua[improved], pred[improved, len(val):]
    return best_pred
