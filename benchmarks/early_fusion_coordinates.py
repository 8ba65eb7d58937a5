"""Early fusion's coordinates: the grid's way against the members' own coordinates, on real stores.

    python benchmarks/early_fusion_coordinates.py --data-root ../shared/data/ravdess

The grid fits an early fusion in coordinates uncorrelated on each inner split's rows, from the
eigendecomposition of the members' summed Gram matrices (fusion.early): one eigendecomposition per
inner split and one for the final fit, the floor of the grid (results/benchmarks/grid_speed.json).
The alternative measured here has no eigendecomposition at all. It concatenates the members' own
blocks (each already uncorrelated on the training rows, scaled as fusion.early scales them) and
fits the same objective in them, so the minimiser is the same, but the problem is as wide as all
members together and its columns are correlated across members. Both run with the same inner CV on
one outer fold, for random subsets of the base sets given, timed in this process with one thread.
The grid's way is also split into where its time goes: eigendecompositions, the inner-CV fits (every
inner split x C at once), the final fit, and the rest (members' Gram matrices, once per fold as in the
grid, their sums, coordinates, scoring); and, for the widest fusion, the inner-CV fit's time in matrix
products (torch's bmm) against the elementwise work of L-BFGS (line search, two-loop recursion), from
torch's profiler.
Written to results/benchmarks/early_fusion_coordinates.json. Not a test: timings depend on the machine.
"""

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from emoprobe import cli, config
from emoprobe.data import clips as clip_table
from emoprobe.data import folds as folds_mod
from emoprobe.probes import discover_feature_sets, fusion, linear, solver
from emoprobe.probes.grid import FoldRun, prepare, targets
from emoprobe.probes.linear import balanced_accuracy, final_fit, inner_cv

SETS = ["egemaps", "compare", "whisper-tiny.en", "whisper-base", "dvector", "ge2e", "logmel", "mfcc",
        "speech-embedding", "openface-au-means"]  # the base sets this machine had when it was first run
FUSIONS = 12  # random subsets of 2-8 members
SEED = 0


def concatenated(blocks, y, n_classes, train, test, split):
    """Early fusion in the members' own coordinates: (inner-CV UA, C, test predictions, width)."""
    weights = fusion.scaling_weights(blocks, 1.0)
    Z = torch.from_numpy(np.concatenate([b.X * np.float32(np.sqrt(w)) for b, w in zip(blocks, weights)], 1))
    cv = inner_cv([[Z[train]] * (split.max() + 1)], y[train], n_classes, split, fusion.EARLY_C_GRID)
    C = fusion.EARLY_C_GRID[cv.best_C[0]]
    test_logp = final_fit(Z[None], y, n_classes, train, test, np.array([C]))[0]
    return float(cv.inner_ua[0].max()), float(C), test_logp.argmax(-1), Z.shape[1]


class Stopwatch:
    """Seconds spent in solver.eigh and in linear's fit_softmax (inner-CV and final fits apart), while
    fusion.early runs: both are swapped for timed wrappers and put back on exit."""

    def __init__(self):
        self.seconds = {"eigendecompositions": 0.0, "inner-CV fits": 0.0, "final fit": 0.0}

    def wrap(self, f, name):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            out = f(*args, **kwargs)
            key = name if name != "fits" else ("final fit" if args[3].shape[1] == 1 else "inner-CV fits")  # C: (G, P)
            self.seconds[key] += time.perf_counter() - started
            return out
        return timed

    def __enter__(self):
        self.saved = solver.eigh, linear.fit_softmax
        solver.eigh = self.wrap(solver.eigh, "eigendecompositions")
        linear.fit_softmax = self.wrap(linear.fit_softmax, "fits")
        return self

    def __exit__(self, *exc):
        solver.eigh, linear.fit_softmax = self.saved


def fit_split(blocks, y, n_classes, train, test, split) -> dict:
    """The inner-CV fit of one early fusion under torch's profiler: seconds in bmm and in the rest."""
    captured = []
    saved = linear.fit_softmax
    linear.fit_softmax = lambda *a, **k: captured.append((a, k)) or saved(*a, **k)
    try:
        fusion.early(blocks, y, n_classes, train, test, split)
    finally:
        linear.fit_softmax = saved
    args, kwargs = captured[0]  # the inner-CV fit comes first
    with torch.profiler.profile() as prof:
        solver.fit_softmax(*args, **kwargs)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    bmm = sum(e.self_cpu_time_total for e in events if e.key == "aten::bmm") / 1e6
    return {"shape": list(args[0].shape), "problems": int(args[3].shape[1]), "profiled_s": round(total, 3),
            "bmm_s": round(bmm, 3), "bmm_calls": int(sum(e.count for e in events if e.key == "aten::bmm"))}


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--sets", nargs="+", default=SETS, help="base sets (store names) to fuse")
    p.add_argument("--out", default=str(config.REPO / "results" / "benchmarks" / "early_fusion_coordinates.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    clips = clip_table.load(args.data_root, verbose=False)
    base, _ = discover_feature_sets(args.embeddings_dir, args.sets, extra_poolings=False, log=None)
    base = [b for b in base if b.store.split("/")[1] in args.sets]
    y, classes, speakers = targets(clips)
    fold, test_speakers = next(iter(folds_mod.load_folds(clips).items()))
    run = FoldRun(fold, test_speakers, y, classes, speakers, clips.key.to_numpy(), (0,), ("linear",), None, log=print)
    members = [run.single(p) for p in prepare(clips, base, [])]
    rows = members[0].prepared.rows
    train, test, split = run.local(rows)
    yy, K = y[rows], len(classes)
    rng = np.random.default_rng(SEED)
    out, grams = [], fusion.MemberGrams(train)
    for _ in range(FUSIONS):
        subset = sorted(rng.choice(len(members), min(len(members), int(rng.integers(2, 9))), replace=False))
        blocks = [members[i].block for i in subset]
        solver.FLOPS[0], started = 0.0, time.perf_counter()
        with Stopwatch() as watch:  # members' Gram matrices computed once per fold, as in the grid's parts
            grid_way, _ = fusion.early(blocks, yy, K, train, test, split,
                                       grams.of([members[i].prepared.fs.name for i in subset], blocks))
        grid_s, grid_gflop = time.perf_counter() - started, solver.FLOPS[0] / 1e9
        split_s = {**{k: round(v, 3) for k, v in watch.seconds.items()}, "rest": round(grid_s - sum(watch.seconds.values()), 3)}
        solver.FLOPS[0], started = 0.0, time.perf_counter()
        inner, C, pred, width = concatenated(blocks, yy, K, train, test, split)
        concat_s, concat_gflop = time.perf_counter() - started, solver.FLOPS[0] / 1e9
        out.append({"members": [members[i].prepared.fs.name for i in subset], "width": int(width),
                    "grid_s": round(grid_s, 3), "grid_split_s": split_s, "grid_gflop": round(grid_gflop, 1),
                    "concatenated_s": round(concat_s, 3), "concatenated_gflop": round(concat_gflop, 1),
                    "inner_ua": [round(grid_way.inner_ua, 4), round(inner, 4)], "C": [grid_way.C, C],
                    "test_ua": [round(float(balanced_accuracy(yy[test], grid_way.pred)), 4),
                                round(float(balanced_accuracy(yy[test], pred)), 4)]})
        print(f"{len(subset)} members, {width} columns: grid {grid_s:.2f} s ({grid_gflop:.0f} GFLOP), "
              f"concatenated {concat_s:.2f} s ({concat_gflop:.0f} GFLOP)", flush=True)
    totals = {k: round(sum(r["grid_split_s"][k] for r in out), 2) for k in out[0]["grid_split_s"]}
    widest = max(range(len(out)), key=lambda i: out[i]["width"])
    subset = [i for i, m in enumerate(members) if m.prepared.fs.name in out[widest]["members"]]
    inner_fit = {"members": out[widest]["members"], **fit_split([members[i].block for i in subset], yy, K, train, test, split)}
    report = {"fold": fold, "sets": [m.prepared.fs.name for m in members], "fusions": out,
              "grid_split_s": totals, "widest_inner_fit": inner_fit,
              "grid_s": round(sum(r["grid_s"] for r in out), 1),
              "concatenated_s": round(sum(r["concatenated_s"] for r in out), 1),
              "grid_gflop": round(sum(r["grid_gflop"] for r in out)),
              "concatenated_gflop": round(sum(r["concatenated_gflop"] for r in out)),
              "load_average": os.getloadavg()}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"grid {report['grid_s']} s, {report['grid_gflop']} GFLOP; concatenated {report['concatenated_s']} s, "
          f"{report['concatenated_gflop']} GFLOP")
    print(f"the grid's way: {', '.join(f'{k} {v} s' for k, v in totals.items())}; the widest fusion's inner-CV fit: "
          f"{inner_fit['bmm_s']} of {inner_fit['profiled_s']} s in bmm ({inner_fit['bmm_calls']} calls)")


if __name__ == "__main__":
    cli.run(main)
