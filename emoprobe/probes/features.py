"""Feature sets: what the grid probes, read from the embedding stores with the facts of each.

A feature set is one store's features for one pooling. The BASE sets are each store's default
pooling, random controls excepted: they are the members of every fusion. A store's other poolings
(for a non-layered store) and the random controls are probed as single sets only. Sets are joined to
the clips table by clip key, never by row order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import numpy as np
import pandas as pd

from ..store.store import EmbeddingStore, available_stores

WEIGHT_KINDS = ("pretrained", "random control", "hand-crafted", "third-party features")
RANDOM_CONTROL = "random control"
ROLES = ("base", "extra pooling", "random control", "variant")  # what a set is in the grid (grid.prepare)
FALLBACK_POOLINGS = ("functionals", "mean")  # default pooling of stores whose meta.json names none


@dataclass
class FeatureSet:
    """One store's features for one pooling: X is (clips, dim), or (clips, layers, dim) when layered.

    name is the readable label ("audio/whisper-tiny.en-ct2", "audio/logmel:meanstd"); the facts
    beside it are what results and feature_sets.csv carry in their own columns.
    """

    name: str
    keys: list[str]
    X: np.ndarray
    store: str = ""  # "modality/name" of the store
    modality: str = ""
    encoder: str = ""
    pooling: str = ""
    weights: str = ""  # one of WEIGHT_KINDS
    objective: str = ""
    default_pooling: bool = True  # the store's default pooling (False: one of its extra poolings)
    dim: int = field(init=False)

    def __post_init__(self):
        self.store = self.store or self.name.split(":")[0]  # sets made by hand (tests) name their store
        self.modality = self.modality or self.store.split("/")[0]
        self.dim = self.X.shape[-1]

    @property
    def layered(self) -> bool:
        return self.X.ndim == 3

    @property
    def n_layers(self) -> int:
        return self.X.shape[1] if self.layered else 1

    @property
    def is_random_control(self) -> bool:
        return self.weights == RANDOM_CONTROL

    def role(self, is_base: bool) -> str:
        """Its role in the grid (ROLES): a fusion member, another pooling, a random control or a variant."""
        base, extra_pooling, random_control, variant = ROLES
        return (base if is_base else extra_pooling if not self.default_pooling
                else random_control if self.is_random_control else variant)


LEGACY_KINDS = {"openSMILE": "hand-crafted", "torchaudio": "hand-crafted", "OpenFace": "third-party features"}


def weights_kind(meta: dict) -> str:
    """The kind of weights (WEIGHT_KINDS) a store's meta.json declares. Some encoders write a
    description instead of a kind, and stores made before the field existed say only `random_init`
    and a model id: a random twin (or a description that says random) is a random control; a
    legacy store is classed by its model id as the findings used to; anything else is pretrained."""
    weights = meta.get("weights")
    if weights in WEIGHT_KINDS:
        return weights
    if meta.get("twin_of") or meta.get("random_init") or str(weights or "").lower().startswith("random"):
        return RANDOM_CONTROL
    model_id = str(meta.get("model_id", ""))
    return next((kind for prefix, kind in LEGACY_KINDS.items() if not weights and model_id.startswith(prefix)),
                "pretrained")


def default_pooling(meta: dict) -> str:
    poolings = list(meta["poolings"])
    declared = meta.get("default_pooling")
    if declared in poolings:
        return declared
    return next((p for p in FALLBACK_POOLINGS if p in poolings), poolings[0])


def load_feature_set(store: EmbeddingStore, pooling: str | None = None) -> FeatureSet:
    """A store's features for one pooling (default: the store's default pooling)."""
    meta = store.meta()
    default = default_pooling(meta)
    pooling = pooling or default
    keys, X = store.load(pooling)
    store_id = f"{meta.get('modality', store.modality)}/{meta.get('name', store.name)}"
    return FeatureSet(name=store_id + ("" if pooling == default else f":{pooling}"), keys=keys, X=X,
                      store=store_id, modality=meta.get("modality", store.modality),
                      encoder=meta.get("encoder") or meta.get("model_id") or store.name, pooling=pooling,
                      weights=weights_kind(meta), objective=meta.get("objective") or "",
                      default_pooling=pooling == default)


def selected(store: EmbeddingStore, patterns: list[str] | None) -> bool:
    """Whether a store matches one of the patterns (all do when there are none): shell-style, on its
    'modality/name' or its name, so 'egemaps' is that store alone, 'egemaps*' also egemaps-first1s,
    'face/*' every face store."""
    return not patterns or any(fnmatchcase(store.id, p) or fnmatchcase(store.name, p) for p in patterns)


def is_base_set(meta: dict) -> bool:
    """Whether a store is a fusion member: its meta's `base_set` fact (False for random twins,
    variants such as a 30 s context, first-seconds cuts and reference copies); stores written
    before the fact existed count unless they are random controls."""
    return bool(meta.get("base_set", weights_kind(meta) != RANDOM_CONTROL))


def discover_feature_sets(root=None, include: list[str] | None = None, extra_poolings: bool = True,
                          log=print) -> tuple[list[FeatureSet], list[FeatureSet]]:
    """(base, extra) over every complete store (optionally only those `selected` by `include`).
    base: default poolings of the base sets (is_base_set); extra: the default pooling of every other
    store, and the other poolings of non-layered stores (layered ones already get a probe per layer).
    First-seconds cuts belong to the clip-duration experiment and join only when `include` names them."""
    base, extra = [], []
    for store in available_stores(root, log=log):
        meta = store.meta()
        if not selected(store, include) or (meta.get("first_seconds") and not include):
            continue
        main = load_feature_set(store)
        (base if is_base_set(meta) else extra).append(main)
        if extra_poolings and not main.layered:
            extra += [load_feature_set(store, p) for p in store.meta()["poolings"] if p != main.pooling]
    return base, extra


def join(sets: list[FeatureSet], clips: pd.DataFrame) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Rows of `clips` present in every set, and each set's rows aligned to them BY CLIP KEY."""
    common = set(clips.key)
    for fs in sets:
        common &= set(fs.keys)
    rows = clips[clips.key.isin(common)].reset_index(drop=True)
    aligned = []
    for fs in sets:
        index = {k: i for i, k in enumerate(fs.keys)}
        aligned.append(np.asarray(fs.X[[index[k] for k in rows.key]]))
    return rows, aligned
