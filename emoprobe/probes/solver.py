"""Batched multinomial logistic regression: the one solver behind every linear probe and stacker.

The objective is sklearn's LogisticRegression's (C * sum of cross-entropies + ||W||^2 / 2, intercept
unpenalised), so C means the same thing; each problem's objective is divided by C * n for
conditioning, which moves no minimiser. Many problems are solved at once (every layer x inner split
x C), by L-BFGS with a line search and a convergence test PER PROBLEM: a problem that has converged
stops costing anything, and no problem's step is held back by another's.

Speed comes from the coordinates, not from a looser fit. Features are z-scored with the training
rows' statistics and then rotated onto the eigenvectors of the training rows' scatter matrix
(`rotate`, `eigen_coordinates`). An orthogonal change of basis moves neither the L2 penalty nor the
predictions, but in that basis the columns are uncorrelated on the fitted rows, so a diagonal
preconditioner (each column's current curvature) is close to the true Hessian: tens of iterations
instead of hundreds. When a set is wider than the fitted rows, only their span is kept (the optimal
weights lie in it: representer theorem), which makes 6373-d ComParE a <= 1199-d problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

MAX_ITER = 200  # L-BFGS iterations per problem at most (a cap: problems stop on REL_TOL far earlier)
REL_TOL = 1e-4  # stop when the next step would lower the objective by less than this share of it
HISTORY = 10  # L-BFGS curvature pairs kept per problem
LINE_SEARCH_STEPS = 12  # backtracking shrinks (by 4) before a step is taken as it is
EIGEN_RTOL = 1e-6  # directions with a smaller share of the largest eigenvalue carry no information
EIGH_FLOPS_PER_N3 = 9.0  # a symmetric eigendecomposition with eigenvectors: about 9 n^3 flops (LAPACK syevd)
FLOPS = [0.0]  # the arithmetic this process's probes did (matrix products and eigendecompositions): the floor


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b, counted in FLOPS."""
    FLOPS[0] += 2.0 * a.shape[-2] * a.shape[-1] * b.shape[-1] * max(1, a.shape[:-2].numel())
    return a @ b


def eigh(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.linalg.eigh, counted in FLOPS. LAPACK's float32 solver can fail to converge on a matrix with
    many repeated eigenvalues (e.g. a stacker's inputs when classes are absent: constant columns); such
    a matrix is decomposed in float64 instead, and only then."""
    FLOPS[0] += EIGH_FLOPS_PER_N3 * a.shape[-1] ** 3
    try:
        return torch.linalg.eigh(a)
    except torch.linalg.LinAlgError:
        if a.dtype == torch.float64:
            raise
        e, vectors = torch.linalg.eigh(a.double())
        return e.to(a.dtype), vectors.to(a.dtype)


@dataclass
class Rotated:
    """A feature block in training-eigenvector coordinates: X (clips, r), and its total variance on
    the training rows (the trace of their covariance: after z-scoring, the number of non-constant
    columns), by which early fusion scales it."""

    X: np.ndarray
    variance: float


def standardise(X: np.ndarray, train: np.ndarray) -> torch.Tensor:
    """z-score with the TRAINING rows' mean and std (computed in float64: some openSMILE columns are
    large and nearly constant), returned as float32; constant columns become zero."""
    return standardiser(X, train)(X)


def standardiser(X: np.ndarray, train: np.ndarray) -> Callable[[np.ndarray], torch.Tensor]:
    """The z-scoring `standardise` applies, fitted on X's training rows, for any rows of X's columns."""
    X = torch.as_tensor(np.asarray(X, dtype=np.float64))
    mean, std = X[train].mean(0), X[train].std(0, correction=0)
    scale = torch.where(std > 1e-8, std, torch.ones_like(std))
    return lambda rows: ((torch.as_tensor(np.asarray(rows, dtype=np.float64)) - mean) / scale).float()


def rotate(X: np.ndarray, train: np.ndarray) -> Rotated:
    """Standardise X (clips, dim) on the training rows, then express every row in `eigen_coordinates`
    of the training rows. Test rows are only ever projected, never used to fit anything."""
    return rotation(X, train)[0]


def rotation(X: np.ndarray, train: np.ndarray) -> tuple[Rotated, Callable[[np.ndarray], np.ndarray]]:
    """`rotate(X, train)` and the map it applied (z-scoring, then projection), for other rows of the
    same columns: a stacker's nested inputs go through the map fitted on its own inputs."""
    z = standardiser(X, train)
    coords, e, projection = eigen_coordinates(z(X), train)
    return Rotated(coords.numpy(), float(e.sum()) / len(train)), lambda rows: (z(rows) @ projection).numpy()


def eigen_coordinates(X: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coordinates of every row of X (n, dim) in which the columns are uncorrelated on `rows`
    (principal components, largest first, numerically null ones dropped), their eigenvalues (sums of
    squares on `rows`), and the projection M (dim, r) with coordinates = X @ M: it also takes weights
    in these coordinates back to X's columns (M @ W) and new rows into the coordinates.

    Exact for an L2-penalised linear model fitted on `rows`: an orthogonal rotation moves neither the
    penalty nor a prediction, and the weights lie in the span of the fitted rows (representer
    theorem). So a set wider than its fitted rows shrinks to their number of dimensions, via their
    Gram matrix: if Z_r Z_r^T = U diag(e) U^T, the coordinates of a row z are z Z_r^T U / sqrt(e).
    """
    Xr = X[rows]
    if X.shape[1] <= len(rows):
        e, Q = descending(*eigh(matmul(Xr.T, Xr)))
        return X @ Q, e, Q
    coords, e, B = gram_basis(matmul(X, Xr.T), rows)
    return coords, e, Xr.T @ B


def gram_coordinates(gram: torch.Tensor, train: np.ndarray) -> torch.Tensor:
    """Coordinates of every row from its Gram matrix with the training rows (n, n_train), uncorrelated
    on the training rows: those eigen_coordinates would give the features behind the Gram matrix (up
    to an orthogonal rotation), without the features. Early fusion sums its members' Gram matrices."""
    return gram_basis(gram, train)[0]


def gram_basis(gram: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(coordinates gram @ B, eigenvalues e, B = U / sqrt(e)) from the eigenvectors U of gram[rows].
    The rows' own coordinates are U sqrt(e) (= gram[rows] @ B): only the other rows need the product."""
    e, U = descending(*eigh(gram[rows]))
    B = U / e.sqrt()
    coords = torch.empty(len(gram), len(e))
    others = np.setdiff1d(np.arange(len(gram)), rows)
    coords[rows] = U * e.sqrt()
    coords[others] = matmul(gram[others], B)
    return coords, e, B


def descending(e: torch.Tensor, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """eigh's output largest first, without the directions whose eigenvalue is numerically zero."""
    if not e.numel():  # nothing to decompose (a block with no column left)
        return e, vectors
    keep = torch.flip(torch.nonzero(e > e.max() * EIGEN_RTOL)[:, 0], [0])
    return e[keep], vectors[:, keep]


def fit_softmax(X: torch.Tensor, Y: torch.Tensor, rows: torch.Tensor, C: torch.Tensor,
                start: tuple[torch.Tensor, torch.Tensor] | None = None, max_iter: int = MAX_ITER,
                rel_tol: float = REL_TOL) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve G x P multinomial logistic regressions at once.

    X (G, n, r): a design matrix per group (a layer, an inner split...), whose columns should be
    uncorrelated on the fitted rows (see `rotate`); Y (G, n, K) one-hot labels; rows (G, n): 1 for
    the rows a group fits, 0 for padding; C (G, P): each problem's inverse penalty; start: a warm
    start (W, b) shaped as the result. Returns W (G, P, r, K) and intercepts b (G, P, K).

    L-BFGS whose initial inverse Hessian is diagonal: each column's current curvature (its squared
    values weighted by p(1 - p), averaged over classes, plus the penalty), rescaled by the usual
    s'y / y'Hy factor. A problem stops when the decrease its next step predicts is below rel_tol of
    its objective, or when no step decreases it.
    """
    G, n, r = X.shape
    P, K = C.shape[1], Y.shape[2]
    n_fit = rows.sum(1)
    # The batch: tensors of the groups and problems still being optimised (both axes shrink as pairs
    # converge: a converged group costs nothing, however slow the others are). Per-row tensors are laid
    # out (group, problem, class, row): the products then have the few problems x classes as rows,
    # (P K, r) x (r, n) and (P K, n) x (n, r), which run 1.3x (40 rows) to 3x (8 rows) faster than
    # the same products with them as columns (measured on this machine's BLAS, one thread).
    batch = {"X": X, "Y": Y.transpose(1, 2)[:, None],  # (G, 1, K, n)
             "row_weight": (rows / n_fit[:, None])[:, None, None],  # (G, 1, 1, n): mean cross-entropy per problem
             "penalty": 1.0 / (2 * C * n_fit[:, None]),  # (G, P): sklearn's ||W||^2 / 2 after dividing by C n
             "X_T": X.transpose(1, 2).contiguous(),  # (G, r, n)
             "X_sq": X.square()}  # for the diagonal curvature

    def evaluate(W, b):
        """Objective, gradients and diagonal curvature of the problems in the batch."""
        g, p_ = W.shape[:2]
        X_, Y_, row_weight, penalty = batch["X"], batch["Y"], batch["row_weight"], batch["penalty"]
        FLOPS[0] += 2.0 * g * n * r * p_ * (2 * K + 1)  # logits, gradient and curvature products
        W_rows = W.transpose(2, 3).reshape(g, p_ * K, r)
        logits = torch.bmm(W_rows, batch["X_T"]).reshape(g, p_, K, n)
        logp = log_softmax(logits + b[..., None], dim=2)
        f = -(logp * Y_ * row_weight).sum((2, 3)) + penalty * W.square().sum((2, 3))
        prob = logp.exp()
        residual = (prob - Y_) * row_weight  # (g, P, K, n)
        gW = torch.bmm(residual.reshape(g, p_ * K, n), X_).reshape(g, p_, K, r).transpose(2, 3)
        curvature = prob * (1 - prob) * row_weight
        hW = torch.bmm(curvature.mean(2), batch["X_sq"])[..., None] + 2 * penalty[..., None, None]
        return f, gW + 2 * penalty[..., None, None] * W, residual.sum(3), hW, curvature.sum(3) + 1e-8

    def dot(a, c, a_b, c_b):
        return (a * c).sum((2, 3)) + (a_b * c_b).sum(2)

    W_out, b_out = (torch.zeros(G, P, r, K), torch.zeros(G, P, K)) if start is None else (start[0].clone(),
                                                                                           start[1].clone())
    W, b = W_out.clone(), b_out.clone()  # the batch's
    groups, problems = torch.arange(G), torch.arange(P)  # the batch's rows and columns in the result
    active = torch.ones(G, P, dtype=torch.bool)  # (group, problem) pairs of the batch still being optimised
    f, gW, gb, hW, hb = evaluate(W, b)
    history = []  # (sW, sb, yW, yb, rho) of the batch, oldest first
    for _ in range(max_iter):
        # Two-loop recursion, per problem (every scalar here is (groups, problems) of the batch).
        qW, qb = gW.clone(), gb.clone()
        alphas = []
        for sW, sb, yW, yb, rho in reversed(history):
            a = rho * dot(sW, qW, sb, qb)
            alphas.append(a)
            qW, qb = qW - a[..., None, None] * yW, qb - a[..., None] * yb
        qW, qb = qW / hW, qb / hb
        if history:
            sW, sb, yW, yb, rho = history[-1]
            yHy = dot(yW, yW / hW, yb, yb / hb)
            gamma = torch.where(rho > 0, 1 / (rho * yHy).clamp_min(1e-30), torch.ones_like(yHy))
            qW, qb = qW * gamma[..., None, None], qb * gamma[..., None]
        for (sW, sb, yW, yb, rho), a in zip(history, reversed(alphas)):
            beta = rho * dot(yW, qW, yb, qb)
            qW, qb = qW + (a - beta)[..., None, None] * sW, qb + (a - beta)[..., None] * sb
        slope = -dot(gW, qW, gb, qb)
        # Backtracking (Armijo) per problem from the quasi-Newton step; converged pairs stay put.
        step = active.float()
        for _ in range(LINE_SEARCH_STEPS):
            W_new, b_new = W - step[..., None, None] * qW, b - step[..., None] * qb
            new = evaluate(W_new, b_new)
            accepted = (new[0] <= f + 1e-4 * step * slope) | ~active
            if accepted.all():
                break
            step = torch.where(accepted, step, step / 4)
        sW, sb, yW, yb = W_new - W, b_new - b, new[1] - gW, new[2] - gb
        sy = dot(sW, yW, sb, yb)
        rho = torch.where(sy > 0, 1 / sy.clamp_min(1e-30), torch.zeros_like(sy))  # a pair without curvature is skipped
        history = [*history[-(HISTORY - 1):], (sW, sb, yW, yb, rho)]
        W, b = W_new, b_new
        active &= (-slope > rel_tol * f) & (new[0] < f)
        f, gW, gb, hW, hb = new
        keep_g, keep_p = active.any(1), active.any(0)
        if not (keep_g.all() and keep_p.all()):
            W_out[groups[:, None], problems], b_out[groups[:, None], problems] = W, b
            if not keep_p.any():
                return W_out, b_out
            gi, pi = torch.nonzero(keep_g)[:, 0], torch.nonzero(keep_p)[:, 0]
            groups, problems = groups[gi], problems[pi]
            pairs = lambda t: t[gi][:, pi]  # noqa: E731
            W, b, active, f, gW, gb, hW, hb = map(pairs, (W, b, active, f, gW, gb, hW, hb))
            history = [tuple(map(pairs, pair)) for pair in history]
            batch["penalty"] = pairs(batch["penalty"])
            if not keep_g.all():
                for name in ("X", "Y", "row_weight", "X_T", "X_sq"):
                    batch[name] = batch[name][gi]
    W_out[groups[:, None], problems], b_out[groups[:, None], problems] = W, b
    return W_out, b_out


def log_softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log_softmax over one axis; written out because torch's kernel is ~4x slower for few classes."""
    shifted = logits - logits.amax(dim, keepdim=True)
    return shifted - shifted.exp().sum(dim, keepdim=True).log()


def log_proba(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Class log-probabilities (G, P, n, K) of rows X (G, n, r) under W (G, P, r, K), b (G, P, K)."""
    return log_softmax(torch.einsum("gnr,gprk->gpnk", X, W) + b[:, :, None])


def one_hot(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """(..., K) float32 one-hot rows of class indices y."""
    return torch.as_tensor(y[..., None] == np.arange(n_classes), dtype=torch.float32)
