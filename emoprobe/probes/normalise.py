"""What a probe may know about the speaker: the normalisation applied to a feature set before it.

Most of the variance in a clip's features is WHO speaks, not how they feel. Each normalisation is
one function, registered by name (`@normalisation`), applied per outer fold before the probe's own
z-scoring (which always uses the training rows' statistics):

- global: nothing more (the speaker-independent protocol: no clip of a test speaker is used);
- speaker: each speaker's clips z-scored with that speaker's own mean and standard deviation. A
  training speaker's come from its clips; a TEST speaker's from its own UNLABELLED clips (the
  `reference` rows: all of them by default, or k of them for the enrolment curve). TRANSDUCTIVE: it
  assumes several clips of a new speaker are at hand at test time. A speaker with few reference
  clips gets a standard deviation shrunk toward the training speakers' pooled one (SHRINK_CLIPS);
- speaker-subspace: INDUCTIVE, no clip of a test speaker. On the training rows (z-scored), each
  training speaker's mean offset from its emotions' means gives the directions along which speakers
  differ within an emotion (the principal directions of the offsets). Along each, with s the
  offsets' variance and w the variance that is left within a speaker and an emotion, features are
  scaled by sqrt(w / (w + s)): a direction mostly made of who speaks shrinks toward nothing, one where
  speakers barely differ stays; the rest of the space is untouched (the within-class covariance
  normalisation of speaker verification, turned against the speaker; no constant to tune).

Every function sees the training rows' labels only; a test label never reaches one (tested by
perturbing them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SHRINK_CLIPS = 2.0  # a speaker's variance: (n var_n + SHRINK_CLIPS pooled var) / (n + SHRINK_CLIPS)
MIN_STD = 1e-8  # a column constant for a speaker (and the pool) is centred, not scaled


@dataclass(frozen=True)
class Normalisation:
    name: str
    transform: Callable
    transductive: bool  # uses unlabelled clips of the test speakers
    description: str


NORMALISATIONS: dict[str, Normalisation] = {}
DEFAULT = ("global", "speaker", "speaker-subspace")  # what the grid runs, in this order


def normalisation(name: str, transductive: bool, description: str):
    """Register a normalisation: f(X, speakers, train, y, reference) -> X' of X's shape. X (clips,
    dim) or (clips, layers, dim); train: the rows a probe is fitted on (their labels y[train] may be
    used, no other); reference: the rows whose features may stand for their speaker (bool per row)."""
    def register(f):
        NORMALISATIONS[name] = Normalisation(name, f, transductive, description)
        return f
    return register


def check(names) -> list[str]:
    unknown = [n for n in names if n not in NORMALISATIONS]
    if unknown:
        raise ValueError(f"unknown normalisation {unknown[0]!r}: one of {', '.join(NORMALISATIONS)}")
    return list(names)


def apply(name: str, X: np.ndarray, speakers: np.ndarray, train: np.ndarray, y: np.ndarray,
          reference: np.ndarray | None = None) -> np.ndarray:
    """X under normalisation `name` (float32). Only y[train] is read; reference defaults to every row."""
    reference = np.ones(len(X), dtype=bool) if reference is None else np.asarray(reference, dtype=bool)
    y_train = np.full(len(X), -1)
    y_train[train] = y[train]  # the only labels a normalisation gets
    out = NORMALISATIONS[name].transform(np.asarray(X, dtype=np.float64), np.asarray(speakers), np.asarray(train),
                                         y_train, reference)
    return out.astype(np.float32)


def per_layer(f):
    """Apply a (clips, dim) normalisation to every layer of a (clips, layers, dim) set."""
    def wrapped(X, *args):
        if X.ndim == 2:
            return f(X, *args)
        return np.stack([f(X[:, layer], *args) for layer in range(X.shape[1])], 1)
    wrapped.__doc__ = f.__doc__
    return wrapped


@normalisation("global", transductive=False,
               description="features z-scored with the training speakers' statistics only (speaker-independent)")
def global_(X, speakers, train, y, reference):
    return X


@normalisation("speaker", transductive=True,
               description="each speaker z-scored with its own clips' statistics, a test speaker's from its unlabelled clips")
@per_layer
def speaker(X, speakers, train, y, reference):
    """Per-speaker z-scoring from each speaker's reference rows, the variance shrunk toward the
    training speakers' pooled within-speaker variance when a speaker has few reference rows."""
    out = np.empty_like(X)
    train_speakers = np.unique(speakers[train])
    centred = np.concatenate([X[(speakers == s) & reference] - X[(speakers == s) & reference].mean(0)
                              for s in train_speakers])
    pooled = centred.var(0)  # within-speaker variance of the training speakers
    for s in np.unique(speakers):
        ref = X[(speakers == s) & reference]
        if not len(ref):
            raise ValueError(f"speaker {s!r} has no reference clip to normalise with")
        n = len(ref)
        var = (n * ref.var(0) + SHRINK_CLIPS * pooled) / (n + SHRINK_CLIPS)
        std = np.sqrt(var)
        out[speakers == s] = (X[speakers == s] - ref.mean(0)) / np.where(std > MIN_STD, std, 1.0)
    return out


@normalisation("speaker-subspace", transductive=False,
               description="the directions that separate training speakers within an emotion shrunk; no clip of a "
               "test speaker used")
@per_layer
def speaker_subspace(X, speakers, train, y, reference):
    """Shrink the directions the training speakers' within-emotion offsets span, each by how much of
    it is speaker (see the module)."""
    Xt = X[train]
    mean, std = Xt.mean(0), Xt.std(0)
    Z = (X - mean) / np.where(std > MIN_STD, std, 1.0)
    Zt, yt, st = Z[train], y[train], speakers[train]
    residual = Zt - np.stack([Zt[yt == c].mean(0) for c in np.unique(yt)])[np.searchsorted(np.unique(yt), yt)]
    offsets = np.stack([residual[st == s].mean(0) for s in np.unique(st)])  # (speakers, dim)
    # the offsets' principal directions V (rows) and variances e; w: what is left along each of them
    # once a clip's emotion mean and its speaker's offset are taken away
    _, sv, Vt = np.linalg.svd(offsets - offsets.mean(0), full_matrices=False)
    e = sv ** 2 / len(offsets)
    within = residual - offsets[np.searchsorted(np.unique(st), st)]
    w = (within @ Vt.T).var(0)
    shrink = np.sqrt(w / np.maximum(w + e, MIN_STD)) - 1
    return Z + ((Z @ Vt.T) * shrink) @ Vt
