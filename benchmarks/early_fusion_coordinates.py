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
from emoprobe.probes import discover_feature_sets, fusion, solver
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
    run = FoldRun(fold, test_speakers, y, classes, speakers, clips.key.to_numpy(), (0,), ("linear",), log=print)
    members = [run.single(p) for p in prepare(clips, base, [])]
    rows = members[0].prepared.rows
    train, test, split = run.local(rows)
    yy, K = y[rows], len(classes)
    rng = np.random.default_rng(SEED)
    out = []
    for _ in range(FUSIONS):
        subset = sorted(rng.choice(len(members), int(rng.integers(2, 9)), replace=False))
        blocks = [members[i].block for i in subset]
        solver.FLOPS[0], started = 0.0, time.perf_counter()
        grid_way, _ = fusion.early(blocks, yy, K, train, test, split)
        grid_s, grid_gflop = time.perf_counter() - started, solver.FLOPS[0] / 1e9
        solver.FLOPS[0], started = 0.0, time.perf_counter()
        inner, C, pred, width = concatenated(blocks, yy, K, train, test, split)
        concat_s, concat_gflop = time.perf_counter() - started, solver.FLOPS[0] / 1e9
        out.append({"members": [members[i].prepared.fs.name for i in subset], "width": int(width),
                    "grid_s": round(grid_s, 3), "grid_gflop": round(grid_gflop, 1),
                    "concatenated_s": round(concat_s, 3), "concatenated_gflop": round(concat_gflop, 1),
                    "inner_ua": [round(grid_way.inner_ua, 4), round(inner, 4)], "C": [grid_way.C, C],
                    "test_ua": [round(float(balanced_accuracy(yy[test], grid_way.pred)), 4),
                                round(float(balanced_accuracy(yy[test], pred)), 4)]})
        print(f"{len(subset)} members, {width} columns: grid {grid_s:.2f} s ({grid_gflop:.0f} GFLOP), "
              f"concatenated {concat_s:.2f} s ({concat_gflop:.0f} GFLOP)", flush=True)
    report = {"fold": fold, "sets": [m.prepared.fs.name for m in members], "fusions": out,
              "grid_s": round(sum(r["grid_s"] for r in out), 1),
              "concatenated_s": round(sum(r["concatenated_s"] for r in out), 1),
              "grid_gflop": round(sum(r["grid_gflop"] for r in out)),
              "concatenated_gflop": round(sum(r["concatenated_gflop"] for r in out)),
              "load_average": os.getloadavg()}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"grid {report['grid_s']} s, {report['grid_gflop']} GFLOP; concatenated {report['concatenated_s']} s, "
          f"{report['concatenated_gflop']} GFLOP")


if __name__ == "__main__":
    cli.run(main)
