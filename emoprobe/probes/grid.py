"""The probe grid: every feature set, every layer, every fusion of the base sets by every method.

Per outer fold (speaker-disjoint; EmoBox's six for RAVDESS), on the training speakers only:
1. every single set: a linear probe per layer and on all layers concatenated (C by inner CV); a
   layered set's headline is the candidate with the best inner-CV UA ('inner-best',
   linear.layer_blocks); the MLP on every base set and random control;
2. every fusion of base sets (each at its inner-best block) by every registered method
   (fusion.METHODS: select, early, late, stack) and by `auto` (the method with the best inner-CV UA), for every
   coalition `shapley.coalitions` asks for (all of them up to shapley.MAX_EXACT_PLAYERS base sets);
3. "best single set (inner CV)": the base set with the best inner-CV UA, the reference a fusion must
   beat, chosen without test labels;
4. the MLP on the early fusion of all base sets;
5. select and late fusion on EVERY subset of the base sets, for exact Shapley values of those
   methods however many base sets the others sample (shapley.every_subset: no fit of their own).
The work is cut into parts, each one feature set in one fold or FUSION_CHUNK fusions in one fold,
run in parallel processes behind one progress bar; a finished part is kept on disk under the digest
of its inputs (parts.Parts), so a killed grid re-run resumes and ends with the uninterrupted result.
Results carry explicit columns (declared in emoprobe/results.py); the `features` label is for reading only, and
feature_sets() says which stores make up each label.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace
from functools import reduce

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

from .. import timing
from .. import results as results_schema  # the declared columns of results files (emoprobe/results.py)
from ..data import folds as folds_mod
from . import fusion, linear, mlp, normalise, parts, shapley, solver
from .features import FeatureSet, join
from .fusion import System
from .linear import INNER_FOLDS, candidate, inner_splits, layer_blocks, linear_probe
from .mlp import SEEDS, mlp_probe
from .solver import Rotated

BEST_SINGLE = "best single set (inner CV)"
FUSION_SEPARATOR = " + "  # in readable labels only
FUSION_CHUNK = 32  # fusions per part: what a kill can lose, and the grain of the parallel work
EVERY_SUBSET_PART = "fusions, every subset (select, late)"  # its seconds in the grid's timing


def targets(clips: pd.DataFrame) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(class index per clip, class names, speaker per clip) from a clips table's `label`
    (categorical: its categories are the classes, in order) and `speaker` (emoprobe.data.clips)."""
    label = clips.label.astype("category")
    return label.cat.codes.to_numpy(), [str(c) for c in label.cat.categories], clips.speaker.to_numpy()


def scores(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """UA (headline), WA, macro-F1 over the classes present in y_true, and recall per class (nan for
    a class absent from the test rows). y: class indices."""
    present = np.unique(y_true)
    recalls = dict(zip(present, recall_score(y_true, y_pred, labels=present, average=None, zero_division=0)))
    return {"ua": balanced_accuracy_score(y_true, y_pred), "wa": accuracy_score(y_true, y_pred),
            "macro_f1": f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0),
            **{f"{shapley.RECALL}{name}": recalls.get(i, np.nan) for i, name in enumerate(classes)}}


@dataclass
class Prepared:
    """A feature set joined to the clips table: its rows (clip indices, sorted) and X aligned to them."""

    fs: FeatureSet
    role: str
    rows: np.ndarray
    X: np.ndarray
    normalisation: str = "global"  # applied per fold before the probe (normalise.NORMALISATIONS)


@dataclass
class Member:
    """A base set in one fold, as fusions use it: its inner-best block (a layer or linear.CONCAT) and tuned probe."""

    prepared: Prepared
    layer: int | str | None
    block: Rotated
    logp: np.ndarray  # (rows, K): OOF log-probabilities on training rows, the full fit's on test rows
    pair_logp: np.ndarray  # (S, S, rows, K): the pair models (LinearFit.pair_logp), for nested stacking
    system: System


class FoldRun:
    """Everything the grid does in one outer fold (run in a worker process)."""

    def __init__(self, fold, test_speakers, y, classes, speakers, keys, seeds, probes, enrolment, log):
        self.fold, self.y, self.classes, self.speakers, self.keys = fold, y, classes, speakers, keys
        self.seeds, self.probes, self.log = seeds, probes, log
        # (per clip: may it stand for its speaker (normalise's `reference`), for training speakers too?); None: all
        self.enrolment = enrolment
        self.test_speakers = test_speakers
        self.split_of = inner_split_of(speakers, test_speakers)
        self.rows, self.predictions, self.seconds = [], [], {}
        self.members = {}  # features label -> the set names it is made of (for feature_sets.csv)

    def local(self, rows: np.ndarray):
        """(train, test, inner split of each training row) within `rows`, or None when the rows
        cannot be trained and tested on (no test clip, or an empty inner split)."""
        speakers = self.speakers[rows]
        train, test = folds_mod.split(speakers, self.test_speakers)
        split = np.array([self.split_of.get(s, -1) for s in speakers[train]])
        if not len(test) or len(set(split)) < INNER_FOLDS or (split < 0).any():
            return None
        return train, test, split

    @staticmethod
    def clock() -> tuple[float, float]:
        """(seconds, flops done so far in this process: solver.FLOPS), for `timed`."""
        return time.perf_counter(), solver.FLOPS[0]

    def timed(self, part: str, start: tuple[float, float]) -> None:
        """Add the seconds and the arithmetic since `start` (a `clock()`) to a part of the grid."""
        seconds, flops = self.clock()
        spent = self.seconds.setdefault(part, {"seconds": 0.0, "flops": 0.0})
        spent["seconds"] += seconds - start[0]
        spent["flops"] += flops - start[1]

    def emit(self, label: dict, rows: np.ndarray, test: np.ndarray, system_pred: np.ndarray, n_train: int,
             seed: int = 0, extra: dict | None = None, prediction: bool = True) -> None:
        """One results row (and, for a headline row, its per-clip predictions)."""
        label = dict(label)
        self.members[label["features"]] = label.pop("members")
        y_true = self.y[rows[test]]
        row = {**label, "fold": self.fold, "seed": seed, "n_train": n_train, "n_test": len(test),
               **scores(y_true, system_pred, self.classes), **(extra or {})}
        self.rows.append(row)
        if prediction:
            self.predictions.append(pd.DataFrame({
                "features": label["features"], "normalisation": label["normalisation"], "probe": label["probe"], "fusion": label["fusion"],
                "candidate": label["candidate"], "fold": self.fold, "seed": seed, "key": self.keys[rows[test]],
                "speaker": self.speakers[rows[test]], "y_true": y_true, "y_pred": system_pred}))

    # -- 1. single sets ------------------------------------------------------------------------
    def single(self, p: Prepared) -> Member | None:
        where = self.local(p.rows)
        if where is None:
            self.log(f"  {p.fs.name} {self.fold}: skipped, cannot train and test on its clips")
            return None
        train, test, split = where
        y = self.y[p.rows]
        started = self.clock()
        reference = None
        if self.enrolment is not None:  # test speakers: their enrolment clips; training speakers: all, or theirs
            enrolled, training_too = self.enrolment
            reference = enrolled[p.rows] if training_too else np.ones(len(p.rows), dtype=bool)
            reference[test] = enrolled[p.rows[test]]
        X = normalise.apply(p.normalisation, p.X, self.speakers[p.rows], train, y, reference)
        blocks, names = layer_blocks(X, train)
        fit = linear_probe(blocks, y, len(self.classes), train, test, split, nested=p.role == "base")
        best = fit.best_layer
        label = describe([p], "linear", "none")
        for i, name in enumerate(names):
            self.emit({**label, **candidate(name)}, p.rows, test, fit.pred[i], len(train),
                      extra={"inner_ua": fit.best_inner_ua[i], "C": fit.C[i]}, prediction=not p.fs.layered)
        if p.fs.layered:
            self.emit(label, p.rows, test, fit.pred[best], len(train),
                      extra={"inner_ua": fit.best_inner_ua[best], "C": fit.C[best], **candidate(names[best], "chosen_")})
        self.timed("single sets, linear", started)
        if "mlp" in self.probes and p.role in ("base", "random control"):
            self.mlp([p], blocks[best], train, test, p.rows, "none",
                     candidate(names[best], "chosen_") if p.fs.layered else {})
        system = System.from_linear(fit, best)
        logp = np.empty((len(p.rows), len(self.classes)), dtype=np.float32)
        logp[train], logp[test] = system.oof_logp, system.test_logp
        return Member(p, names[best] if p.fs.layered else None, blocks[best], logp, fit.pair_logp, system)

    def mlp(self, sets, block, train, test, rows, fusion_method, extra) -> None:
        started = self.clock()
        pred = mlp_probe(block, self.y[rows], len(self.classes), self.speakers[rows], train, test, self.seeds)
        label = describe(sets, "mlp", fusion_method)
        for seed, seed_pred in zip(self.seeds, pred):
            self.emit(label, rows, test, seed_pred, len(train), seed, extra)
        self.timed("MLP", started)

    # -- 2.-4. fusions ---------------------------------------------------------------------------
    def fusions(self, members: list[Member], subsets: list[tuple[int, ...]]) -> None:
        """Every fusion method on each subset (indices into members) of two or more members, and
        the MLP on the early fusion of all of them."""
        by_rows = {}  # subsets over the same clips share one batched stacker fit
        for subset in (s for s in subsets if len(s) > 1):
            group = [members[i] for i in subset]
            rows = reduce(np.intersect1d, [m.prepared.rows for m in group])
            by_rows.setdefault(rows.tobytes(), (rows, []))[1].append(group)
        for rows, groups in by_rows.values():
            where = self.local(rows)
            if where is None:
                self.log(f"  {len(groups)} fusion(s) {self.fold}: skipped, cannot train and test on their clips")
                continue
            train, test, split = where
            y, n_classes = self.y[rows], len(self.classes)
            parts = [[self.restrict(m, rows, train, test) for m in group] for group in groups]
            grams = fusion.MemberGrams(train)
            blocks = [[block for block, _ in part] for part in parts]
            inputs = fusion.Fusions(blocks, [[system for _, system in part] for part in parts],
                                    [grams.of([m.prepared.fs.name for m in g], b) for g, b in zip(groups, blocks)],
                                    y, n_classes, train, test, split)
            by_method = {}
            for name, method in fusion.METHODS.items():
                started = self.clock()
                by_method[name] = method.fit(inputs)
                self.timed(method.part, started)
            for i, group in enumerate(groups):
                candidates = {name: systems[i] for name, systems in by_method.items()}
                label = describe([m.prepared for m in group], "linear", "")
                for method, system in [*candidates.items(), ("auto", fusion.auto(candidates))]:
                    chosen = {"chosen_method": system.method} if method == "auto" else {}
                    if system.member is not None:
                        chosen["chosen_set"] = group[system.member].prepared.fs.name
                    if system.scaling:
                        chosen["early_scaling"] = system.scaling
                    self.emit({**label, "fusion": method}, rows, test, system.pred, len(train),
                              extra={"inner_ua": system.inner_ua, "C": system.C, **chosen})
            everything = [i for i, group in enumerate(groups) if len(group) == len(members)]
            if "mlp" in self.probes and everything:
                system = by_method["early"][everything[0]]  # the scaling early fusion chose, its coordinates
                self.mlp([m.prepared for m in members], system.features, train, test, rows, "early",
                         {"early_scaling": system.scaling})

    @staticmethod
    def restrict(m: Member, rows: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[Rotated, System]:
        """A member's block and probe on a fusion's rows (a subset of its own, usually all of them)."""
        at = np.searchsorted(m.prepared.rows, rows)
        logp = m.logp[at]
        return (Rotated(m.block.X[at], m.block.variance),
                System(m.system.inner_ua, logp[train], logp[test], m.system.C, pair_logp=m.pair_logp[:, :, at[train]]))

    def best_single(self, members: list[Member]) -> None:
        """The base set inner CV prefers (fusion.select over all of them), on its own rows."""
        best = members[fusion.select([m.system for m in members]).member]
        train, test, _ = self.local(best.prepared.rows)
        # one label in every fold, whichever set each fold chose (chosen_set and chosen_candidate say which)
        label = {**describe([m.prepared for m in members], "linear", "none"), "features": BEST_SINGLE,
                 "members": [], "n_members": 1, "candidate": "inner-best"}
        chosen = candidate(best.layer, "chosen_") if best.layer is not None else {}
        self.emit(label, best.prepared.rows, test, best.system.pred, len(train),
                  extra={"inner_ua": best.system.inner_ua, "C": best.system.C, "chosen_set": best.prepared.fs.name,
                         **chosen})

    def every_subset(self, members: list[Member]) -> pd.DataFrame:
        """Exact Shapley values of select and late fusion over every subset of the members
        (shapley.every_subset), on the test clips every member has."""
        tested = [m.prepared.rows[self.local(m.prepared.rows)[1]] for m in members]
        common = reduce(np.intersect1d, tested)
        logp = np.stack([m.logp[np.searchsorted(m.prepared.rows, common)] for m in members])
        table = shapley.every_subset(logp, np.array([m.system.inner_ua for m in members]), self.y[common],
                                     self.classes, [m.prepared.fs.store for m in members],
                                     [m.prepared.fs.modality for m in members])
        return table.assign(normalisation=members[0].prepared.normalisation)


def describe(sets: list[Prepared], probe: str, fusion_method: str) -> dict:
    """The explicit columns that say what a row is."""
    fs = [p.fs for p in sets]
    return {"features": FUSION_SEPARATOR.join(f.name for f in fs), "normalisation": sets[0].normalisation,
            "members": [f.name for f in fs],
            "n_members": len(fs), "modalities": "+".join(sorted({f.modality for f in fs})),
            "weights": "+".join(sorted({f.weights for f in fs})),
            "pooling": fs[0].pooling if len(fs) == 1 else "default", "probe": probe, "fusion": fusion_method,
            # a fusion's members are at their inner-best candidates: each member's own inner-best row of
            # the fold says which (chosen_candidate, chosen_layer)
            "candidate": "inner-best" if any(f.layered for f in fs) else "all", "layer": None}


@dataclass
class Part:
    """What one part of the grid produced: result rows, prediction frames, seconds per part of the
    grid, the members of each features label, log lines, and (a base set's single part) its Member."""

    rows: list
    predictions: list
    seconds: dict
    members: dict
    messages: list
    member: Member | None = None


def single_part(fold, test_speakers, context, p: Prepared) -> Part:
    """One feature set in one outer fold: its linear probes (and MLP), and its Member if a base set."""
    torch.set_num_threads(1)  # one process per part; tiny matrices gain nothing from more threads
    messages = []
    run = FoldRun(fold, test_speakers, *context, log=messages.append)
    member = run.single(p)
    if member is None or p.role != "base":
        member = None
    else:
        member.prepared = replace(member.prepared, X=None)  # fusions need its block, not its features
    return Part(run.rows, run.predictions, run.seconds, run.members, messages, member)


def fusion_part(fold, test_speakers, context, members: list[Member], subsets: list[tuple[int, ...]]) -> Part:
    """FUSION_CHUNK fusions (subsets: indices into members, every base set of the fold) in one outer fold."""
    torch.set_num_threads(1)
    messages = []
    run = FoldRun(fold, test_speakers, *context, log=messages.append)
    run.fusions(members, subsets)
    return Part(run.rows, run.predictions, run.seconds, run.members, messages)


def _made(store: parts.Parts, key: str, make, *args) -> tuple[str, Part]:
    """A part made and stored at once (in the worker, so that a kill loses no finished part)."""
    part = make(*args)
    store.put(key, part)
    return key, part


def inner_split_of(speakers: np.ndarray, test_speakers: list) -> dict:
    """Training speaker -> inner split, in one outer fold (the same for every set of the grid)."""
    train, _ = folds_mod.split(speakers, test_speakers)
    return dict(zip(speakers[train], inner_splits(speakers, train)))


def trainable(set_speakers: np.ndarray, speakers: np.ndarray, fold_speakers: dict[str, list]) -> bool:
    """Whether a set with clips of these speakers has, in every outer fold, test clips and training
    clips in every inner split (what FoldRun.local needs)."""
    for test_speakers in fold_speakers.values():
        split_of = inner_split_of(speakers, test_speakers)
        present = set(set_speakers)
        if not present & set(test_speakers) or len({split_of[s] for s in present if s in split_of}) < INNER_FOLDS:
            return False
    return True


def prepare(clips: pd.DataFrame, base: list[FeatureSet], extra: list[FeatureSet]) -> list[Prepared]:
    """Each set's rows in the clips table (joined by clip key) and X aligned to them, float32."""
    out = []
    for fs in [*base, *extra]:
        role = fs.role(is_base=any(fs is b for b in base))
        _, (X,) = join([fs], clips)
        facts = replace(fs, keys=[], X=fs.X[:0])  # the set's facts without its features (X holds them)
        out.append(Prepared(facts, role, np.flatnonzero(clips.key.isin(set(fs.keys))), X.astype(np.float32)))
    return out


def run_grid(clips: pd.DataFrame, base: list[FeatureSet], extra: list[FeatureSet] = (), scheme: str = "auto",
             seeds=SEEDS, probes=("linear", "mlp"), max_exact: int = shapley.MAX_EXACT_PLAYERS,
             n_permutations: int = shapley.N_PERMUTATIONS, n_jobs: int = 1, log=print, parts_dir=None,
             progress: bool = False, shard: tuple[int, int] | None = None,
             normalisations=("global",), enrolment: np.ndarray | None = None,
             enrol_training_speakers: bool = False, prune: bool = True
             ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict, pd.DataFrame | None] | None:
    """Train the whole grid: (results, one row per features x layer x probe x fusion x fold x seed;
    predictions, one row per test clip of every headline row; feature_sets, one row per features
    label x member; timing: per part of the grid, its seconds and flops summed over folds;
    every_subset: exact Shapley values of select and late fusion from every subset, per fold, as
    shapley_table's rows, or None past shapley.EVERY_SUBSET_MAX_PLAYERS base sets).

    base sets are fused (and sampled for Shapley values past max_exact of them); extra sets (other
    poolings, random controls) are probed alone. parts_dir: where finished parts are kept (a re-run
    with the same inputs reuses them; parts.Parts); progress: a progress bar over the parts.
    shard (i, n): only the parts of every n-th outer fold from the i-th are made and kept in parts_dir,
    nothing is assembled and None is returned (a job array: once every shard is done, a run without a
    shard finds all the parts and assembles the results). normalisations: the whole grid under each
    (normalise.NORMALISATIONS); fusions join members of one normalisation. enrolment (bool per clip):
    the only clips of a TEST speaker a transductive normalisation may use (its unlabelled enrolment);
    enrol_training_speakers: the training speakers' statistics come from their enrolment clips too
    (e.g. every speaker's calm clips), else from all their clips. prune: remove the parts in parts_dir
    that this run did not use (False: a run over some sets only keeps the others' parts).
    """
    from joblib import Parallel, delayed

    y, classes, speakers = targets(clips)
    keys = clips.key.to_numpy()
    fold_speakers = folds_mod.load_folds(clips, scheme)
    folds_mod.check_trainable(fold_speakers, speakers, INNER_FOLDS)
    all_folds = fold_speakers
    if shard is not None:
        if parts_dir is None:
            raise ValueError("a shard of the grid needs a parts folder to keep its parts in")
        fold_speakers = {fold: test for k, (fold, test) in enumerate(all_folds.items()) if k % shard[1] == shard[0]}
    prepared = []
    for p in prepare(clips, base, extra):
        if trainable(speakers[p.rows], speakers, all_folds):
            prepared.append(p)
        else:  # e.g. a face store made from the few videos at hand: said, and kept out of every fusion
            log(f"[grid] {p.fs.name} skipped: its {len(p.rows)} clip(s) cannot be trained and tested in every fold")
    base = [p.fs for p in prepared if p.role == "base"]
    prepared = [replace(p, normalisation=n) for n in normalise.check(normalisations) for p in prepared]
    modalities = sorted({fs.modality for fs in base})
    required = [tuple(i for i, fs in enumerate(base) if fs.modality in ms)
                for k in range(1, len(modalities) + 1) for ms in itertools.combinations(modalities, k)]
    subsets = shapley.coalitions(len(base), required, max_exact, n_permutations)
    if len(base) > max_exact:
        log(f"[grid] {len(base)} base sets > {max_exact}: {len(subsets)} sampled coalitions "
            f"({n_permutations} permutations) instead of {2 ** len(base) - 1}")
    for p in prepared[:len(prepared) // len(normalisations)]:
        log(f"[grid] {p.fs.name} ({p.role}): {len(p.rows)} clips, {p.fs.n_layers} layer(s) x {p.fs.dim} dims")

    # Every part's key: the digest of what decides its result (parts.py).
    context = (y, classes, speakers, keys, tuple(seeds), tuple(probes),
               None if enrolment is None else (np.asarray(enrolment, dtype=bool), enrol_training_speakers))
    common = parts.digest(parts.code_digest(), *context)
    set_digest = [parts.digest(p.X, p.rows, p.role, p.fs.name, p.fs.pooling, p.fs.modality, p.fs.weights,
                               p.normalisation) for p in prepared]
    fusions = [s for s in subsets if len(s) > 1]
    chunks = [fusions[i:i + FUSION_CHUNK] for i in range(0, len(fusions), FUSION_CHUNK)]
    base_index = {n: [i for i, p in enumerate(prepared) if p.role == "base" and p.normalisation == n]
                  for n in normalisations}  # per normalisation: the members of its fusions
    store = parts.Parts(parts_dir)
    n_fusion_parts = len(chunks) * sum(bool(index) for index in base_index.values())
    bar = timing.progress(len(fold_speakers) * (len(prepared) + n_fusion_parts), "grid",
                          quiet=not progress, unit="part")  # in a log file, a line every 30 s
    say = bar.write if progress else log

    def run(tasks):
        """(key, make, args) tasks, run in parallel; their parts in task order."""
        out = {key: store.get(key) for key, _, _ in tasks}
        bar.update(sum(part is not None for part in out.values()))
        todo = [(key, make, args) for key, make, args in tasks if out[key] is None]
        for key, part in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                delayed(_made)(store, key, make, *args) for key, make, args in todo):
            out[key] = part
            for line in part.messages:
                say(line)
            bar.update()
        return [out[key] for key, _, _ in tasks]

    single_tasks = [(parts.digest(common, "single", fold, test, set_digest[i]), single_part,
                     (fold, test, context, p)) for fold, test in fold_speakers.items() for i, p in enumerate(prepared)]
    singles = run(single_tasks)
    by_fold = {fold: singles[k * len(prepared):(k + 1) * len(prepared)] for k, fold in enumerate(fold_speakers)}
    fusion_tasks, done = [], []
    for fold, test in fold_speakers.items():
        for index in base_index.values():
            members = [by_fold[fold][i].member for i in index]
            if not index or any(m is None for m in members):
                if index:
                    say(f"  {fold}: {sum(m is None for m in members)} base set(s) untrainable, no fusions")
                continue
            fusion_tasks += [(parts.digest(common, "fusion", fold, test, [set_digest[i] for i in index], chunk),
                              fusion_part, (fold, test, context, members, chunk)) for chunk in chunks]
    fused = run(fusion_tasks)
    bar.close()
    if shard is not None:  # the other shards' parts are not this run's to prune
        say(f"[grid] shard {shard[0]}/{shard[1]}: the parts of {len(fold_speakers)} of {len(all_folds)} folds "
            f"are in {parts_dir}")
        return None
    if prune:
        store.prune()

    # Assembled in a fixed order (whatever order the parts finished in): per fold, its single sets,
    # its fusions, then the best single set by inner CV.
    fused_by_fold = {}
    for (_, _, (fold, *_)), part in zip(fusion_tasks, fused):
        fused_by_fold.setdefault(fold, []).append(part)
    every = []  # the power set of select and late fusion (shapley.every_subset), per fold and normalisation
    for fold, test in fold_speakers.items():
        done += by_fold[fold] + fused_by_fold.get(fold, [])
        for index in base_index.values():
            members = [by_fold[fold][i].member for i in index]
            if members and all(m is not None for m in members):
                best = FoldRun(fold, test, *context, log=say)
                best.best_single(members)
                done.append(Part(best.rows, best.predictions, {}, best.members, []))
                if len(members) <= shapley.EVERY_SUBSET_MAX_PLAYERS:
                    started = best.clock()
                    every.append(best.every_subset(members).assign(fold=fold))
                    best.timed(EVERY_SUBSET_PART, started)
                    done[-1].seconds = best.seconds
    results = pd.DataFrame([row for part in done for row in part.rows])
    # the declared columns, then each class's recall (train_probes writes those as long rows: recalls.parquet)
    results = results.reindex(columns=[*results_schema.FILES["probes.csv"].names, *(f"{shapley.RECALL}{c}" for c in classes)])
    predictions = pd.concat([p for part in done for p in part.predictions], ignore_index=True)
    for column in ("y_true", "y_pred"):
        predictions[column] = pd.Categorical.from_codes(predictions[column], categories=classes)
    seconds, members = {}, {}
    for part in done:
        members.update(part.members)
        for k, v in part.seconds.items():
            total = seconds.setdefault(k, {"seconds": 0.0, "flops": 0.0})
            total["seconds"] += v["seconds"]
            total["flops"] += v["flops"]
    every_subset = pd.concat(every, ignore_index=True) if every else None
    predictions = predictions[results_schema.FILES[results_schema.PREDICTIONS].names]  # the declared columns
    return results, predictions, feature_sets(prepared, members), seconds, every_subset


def settings(scheme: str, seeds, probes, max_exact: int, n_permutations: int,
             normalisations=normalise.DEFAULT) -> dict:
    """Every setting that decides the grid's numbers (results/settings.json), with the digest of the
    probe code that ran: the constants of each stage, as the grid's parts key them."""
    return {"fold_scheme": scheme, "probes": list(probes), "mlp_seeds": list(seeds),
            "normalisations": {n: {"transductive": normalise.NORMALISATIONS[n].transductive,
                                   "description": normalise.NORMALISATIONS[n].description} for n in normalisations},
            "speaker_variance_shrink_clips": normalise.SHRINK_CLIPS,
            "linear": {"c_grid": linear.C_GRID.tolist(), "inner_folds": linear.INNER_FOLDS,
                       "inner_rel_tol": linear.SELECTION_REL_TOL, "final_rel_tol": solver.REL_TOL,
                       "max_iter": solver.MAX_ITER, "layer_candidates": "each layer and all layers concatenated"},
            "fusion": {"methods": list(fusion.METHODS), "auto": "best inner-CV UA, first of ties",
                       "early_scalings": fusion.EARLY_SCALINGS, "early_c_grid": fusion.EARLY_C_GRID.tolist(),
                       "stack_c_grid": fusion.STACK_C_GRID.tolist(), "stack_log_prob_floor": float(fusion.LOG_PROB_FLOOR)},
            "mlp": {"hidden": mlp.MLP_HIDDEN, "max_dim": mlp.MLP_MAX_DIM, "dropout": mlp.MLP_DROPOUT,
                    "weight_decay": mlp.MLP_WEIGHT_DECAY, "lr": mlp.MLP_LR, "steps": mlp.MLP_STEPS,
                    "eval_every": mlp.MLP_EVAL_EVERY, "validation_actor_every": mlp.MLP_VAL_EVERY},
            "shapley": {"max_exact_players": max_exact, "permutations": n_permutations, "seed": shapley.SEED},
            "probe_code_digest": parts.code_digest()}


def feature_sets(prepared: list[Prepared], members: dict[str, list[str]]) -> pd.DataFrame:
    """feature_sets.csv: one row per features label x member, with the member's store, modality,
    encoder, pooling, weights, objective, layered: code finds a fusion's members by this join."""
    by_name = {p.fs.name: p for p in prepared}
    rows = []
    for features, names in members.items():
        for i, name in enumerate(names):
            p = by_name[name]
            rows.append({"features": features, "n_members": len(names), "member": i, "set": name,
                         "store": p.fs.store, "modality": p.fs.modality, "encoder": p.fs.encoder,
                         "pooling": p.fs.pooling, "weights": p.fs.weights, "objective": p.fs.objective,
                         "layered": p.fs.layered, "n_layers": p.fs.n_layers, "dim": p.fs.dim, "role": p.role})
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame, metrics=("ua", "wa", "macro_f1")) -> pd.DataFrame:
    """Mean and std over folds (and seeds) per features x candidate x layer x probe x fusion, best UA first."""
    keys = ["features", "normalisation", "n_members", "modalities", "weights", "pooling", "candidate", "layer", "probe",
            "fusion"]
    grouped = results.groupby(keys, sort=False, dropna=False)  # layer: empty but for single-layer rows
    table = grouped[list(metrics)].agg(["mean", "std"])
    table.columns = [f"{m}_{s}" for m, s in table.columns]
    table["n_folds"] = grouped.fold.nunique()
    table["n_seeds"] = grouped.seed.nunique()
    return table.reset_index().sort_values("ua_mean", ascending=False, ignore_index=True)


def read_predictions(path, **where) -> pd.DataFrame:
    """The per-clip predictions file (predictions.parquet), optionally filtered by column values,
    e.g. read_predictions(results / "predictions.parquet", features=..., probe="linear", fusion="auto")."""
    filters = [(column, "==", value) for column, value in where.items()] or None
    return pd.read_parquet(path, filters=filters)
