"""How long the probe grid takes: today's grid beside the old commit's, on the same stores, in one run.

    python benchmarks/grid_speed.py --data-root ../shared/data/ravdess
    python benchmarks/grid_speed.py --features egemaps compare logmel mfcc whisper-tiny.en-ct2 openface-au-means \
        wav2vec2-base-randinit

The old commit is checked out into a temporary `git worktree` and its experiments/train_probes.py is
run with this interpreter and that worktree first on PYTHONPATH; then this tree's; both with no parts
to resume from (so each computes everything) and under the same --normalisations (an old commit must
know the option: OLD_COMMIT does). Both read the same stores: a temporary folder of links to
the complete stores selected (so neither grid trips over a store still being extracted) and write
to temporary folders. Written to results/benchmarks/grid_speed.json: wall and CPU seconds of each
(CPU: all processes of the grid together), the ratio, the new grid's seconds and arithmetic per part
(summed over its processes) and what that arithmetic would take at PEAK_GFLOPS (the floor), the
agreement of every results row both grids make (UA differences, their distribution and the worst
systems, per protocol; only `global` rows when the old grid predates the protocols; how often an
inner-CV choice changed), the protocols the new grid ran (--normalisations: all of them by default) and its seconds
per protocol, and the machine's load average before and after.
`--agree OLD NEW` runs no grid and writes only the agreement of two probes.csv files
(grid_agreement.json), e.g. the committed results before and after a change of the solver: every
protocol, every store, without timing an old grid again.
Not a test: timings depend on the machine and on what else runs on it.
"""

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from emoprobe import cli, config
from emoprobe.errors import NoDataError
from emoprobe.probes import normalise
from emoprobe.probes.features import selected
from emoprobe.store.store import available_stores

REPO = config.REPO
OLD_COMMIT = "d9fcfe5"  # the grid before the solver's products were turned (issue 18): 2824 s for three protocols
TARGET_S = 60.0  # the whole default grid on the current stores, on a 2-core machine
JOBS = 2  # processes, for both grids (their default)
PEAK_GFLOPS = 190.0  # fp32 matrix-product rate of this 2-core machine: the floor is the arithmetic at this rate
ROW_KEYS = ["features", "candidate", "layer", "probe", "fusion", "fold", "seed"]  # what identifies a results row in both grids
SYSTEM_KEYS = ROW_KEYS[:5]
CHOICES = ["C", "chosen_candidate", "chosen_layer", "chosen_method", "chosen_set"]  # inner-CV choices compared


def linked_stores(root: Path, features: list[str] | None) -> tuple[tempfile.TemporaryDirectory, list[str]]:
    """A temporary embeddings folder of symlinks to the complete stores (those matching `features`)."""
    folder = tempfile.TemporaryDirectory(prefix="grid_speed_stores_")
    chosen = [s for s in available_stores(root, log=None) if selected(s, features)]
    for store in chosen:
        link = Path(folder.name) / store.modality / store.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(store.dir.resolve(), target_is_directory=True)
    return folder, [s.id for s in chosen]


def timed(command: list[str], cwd: Path) -> dict:
    """Run a grid (with cwd first on PYTHONPATH: that tree's package); its wall seconds and the CPU
    seconds of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[1:3])} failed in {cwd.name}:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def count_rows(path: Path) -> int:
    with open(path) as f:
        return sum(1 for _ in f) - 1


def read_probes(path) -> pd.DataFrame:
    """A probes.csv of this or an older commit, with typed candidates: a grid before them wrote one text
    column `layer` ("0", "1", ..., "all", "concat", "inner-best") and `chosen_layer` ("3" or "concat")."""
    table = pd.read_csv(path, dtype={"layer": str, "chosen_layer": str, "candidate": str}, low_memory=False)
    if "candidate" not in table:
        for prefix, column in (("", "layer"), ("chosen_", "chosen_layer")):
            index = pd.to_numeric(table[column], errors="coerce")
            table[f"{prefix}candidate"] = table[column].where(index.isna(), "layer")
            table[f"{prefix}layer"] = index.astype("Int64")
    return table.astype({"layer": "Int64", "chosen_layer": "Int64"})


def agreement(old: pd.DataFrame, new: pd.DataFrame) -> dict:
    """How the rows both grids make agree: UA differences (points) per row and per system (the mean
    over folds and seeds), the worst systems, how often each inner-CV choice differs, and for every
    system more than 0.5 points apart, in how many of its folds a choice differs (its trace)."""
    if "normalisation" in new and "normalisation" not in old:  # an older grid: the speaker-independent protocol
        new = new[new.normalisation == "global"]
    keys = ROW_KEYS + (["normalisation"] if "normalisation" in old and "normalisation" in new else [])
    both = old.merge(new, on=keys, suffixes=("_old", "_new"))
    both["d_ua"] = 100 * (both.ua_new - both.ua_old)
    both["choice_changed"] = False
    changed = {}
    for c in CHOICES:
        a, b = both[f"{c}_old"], both[f"{c}_new"]
        compared = a.notna() | b.notna()
        if c == "C":
            same = np.isclose(a.astype(float), b.astype(float)) | (a.isna() & b.isna())
        else:
            same = (a.astype(object).where(a.notna(), None).map(str) == b.astype(object).where(b.notna(), None).map(str))
        differs = compared & ~same
        both["choice_changed"] |= differs
        changed[c] = {"compared": int(compared.sum()), "changed": int(differs.sum())}
    system_keys = [*SYSTEM_KEYS, *(["normalisation"] if "normalisation" in keys else [])]
    per_system = (both.groupby(system_keys, dropna=False)
                  .agg(d_ua_mean=("d_ua", "mean"), rows_with_a_changed_choice=("choice_changed", "sum")).reset_index())
    over = per_system[per_system.d_ua_mean.abs() > 0.5]
    worst = per_system.loc[per_system.d_ua_mean.abs().sort_values(ascending=False).index[:10]].round({"d_ua_mean": 3})
    quantiles = [0.0, 0.5, 0.9, 0.99, 1.0]
    return {"rows_old": len(old), "rows_new": len(new), "rows_both": len(both),
            "rows_identical_ua": int((both.d_ua == 0).sum()),
            "abs_d_ua_row_quantiles": dict(zip(map(str, quantiles), np.round(both.d_ua.abs().quantile(quantiles), 3))),
            "systems": len(per_system),
            "systems_over_0.5_ua": len(over),
            "systems_over_0.5_ua_with_a_changed_inner_cv_choice": int((over.rows_with_a_changed_choice > 0).sum()),
            "abs_d_ua_system_quantiles": dict(zip(map(str, quantiles),
                                                  np.round(per_system.d_ua_mean.abs().quantile(quantiles), 3))),
            # JSON: an empty layer as null, numpy numbers as Python ones
            "worst_systems": json.loads(worst.astype(object).where(worst.notna(), None).to_json(orient="records")),
            "choices_changed": changed}


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--features", nargs="*", help="only these stores (as experiments/train_probes.py --features)")
    p.add_argument("--old-commit", default=OLD_COMMIT, help="the commit whose grid is 'today's' (default: %(default)s)")
    p.add_argument("--skip-old", action="store_true", help="time only this tree's grid")
    p.add_argument("--note", default="", help="what else ran on the machine (recorded with the results)")
    cli.add_normalisations(p)
    p.add_argument("--out", help="folder for grid_speed.json (default: results/benchmarks)")
    p.add_argument("--agree", nargs=2, metavar=("OLD_PROBES_CSV", "NEW_PROBES_CSV"),
                   help="run no grid: only the agreement of two probes.csv files made on the same stores (e.g. the "
                   "committed one before and after a change of the solver) -> grid_agreement.json")
    args = p.parse_args(argv)
    out = Path(args.out) if args.out else config.results_dir() / "benchmarks"
    if args.agree:
        report = {"old": args.agree[0], "new": args.agree[1], "agreement": agreement(*map(read_probes, args.agree))}
        out.mkdir(parents=True, exist_ok=True)
        (out / "grid_agreement.json").write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps({k: v for k, v in report["agreement"].items() if k != "worst_systems"}, indent=1))
        return

    data_root = str(config.data_root(args.data_root))
    stores_dir, stores = linked_stores(config.embeddings_dir(args.embeddings_dir), args.features)
    if not stores:
        raise NoDataError("no complete embedding store matches: run experiments/extract_*.py first")
    print(f"{len(stores)} stores: {', '.join(stores)}")
    report = {"stores": stores, "old_commit": args.old_commit, "target_s": TARGET_S, "jobs": JOBS,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "load_average_before": [round(x, 2) for x in os.getloadavg()]},
              "note": args.note}
    with tempfile.TemporaryDirectory(prefix="grid_speed_") as tmp:
        tmp = Path(tmp)
        common = ["--data-root", data_root, "--embeddings-dir", stores_dir.name, "--jobs", str(JOBS)]
        if not args.skip_old:
            worktree = tmp / "old"
            subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.old_commit], cwd=REPO,
                           check=True, capture_output=True)
            try:
                print(f"old grid ({args.old_commit})...", flush=True)
                old_timing = tmp / "old_timing.json"
                old = timed([sys.executable, "experiments/train_probes.py", *common, "--out", str(tmp / "old_results"),
                             "--timing", str(old_timing), "--no-parts", "--no-progress",
                             "--normalisations", *args.normalisations], worktree)
                old.update({k: v for k, v in json.loads(old_timing.read_text()).items() if k.startswith("parts_")})
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, check=True)
            old["n_results"] = count_rows(tmp / "old_results" / "probes.csv")
            report["old"] = old
        print("new grid...", flush=True)
        timing = tmp / "timing.json"
        new = timed([sys.executable, "experiments/train_probes.py", *common, "--out", str(tmp / "new_results"),
                     "--timing", str(timing), "--no-parts", "--no-progress",
                     "--normalisations", *args.normalisations], REPO)
        new["n_results"] = count_rows(tmp / "new_results" / "probes.csv")
        new.update(json.loads(timing.read_text()))
        new_rows = pd.read_csv(tmp / "new_results" / "probes.csv", usecols=["fusion", "fold", "normalisation"])
        new["n_folds"] = int(new_rows.fold.nunique())
        new["n_fusion_folds"] = int((new_rows.fusion == "early").sum())  # one early row per fusion, fold, protocol
        report["new"] = new
        if "old" in report:
            report["agreement"] = agreement(*(read_probes(tmp / f"{side}_results" / "probes.csv") for side in ("old", "new")))
    stores_dir.cleanup()

    parts = new["parts_s"]
    # The power set, if every further fusion cost what the measured ones cost on average (an
    # underestimate: the subsets sampled past 10 base sets are mostly pairs and prefixes).
    fusion_s = parts.get("fusions, early", 0.0) + parts.get("fusions, late and stack", 0.0)
    power_set_fusion_folds = (2 ** new["n_base_sets"] - 1 - new["n_base_sets"]) * new["n_folds"] * len(args.normalisations)
    extra_fusion_folds = max(0, power_set_fusion_folds - new["n_fusion_folds"])
    power_set_s = new["wall_s"] + fusion_s / max(1, new["n_fusion_folds"]) * extra_fusion_folds / JOBS
    early_share = parts.get("fusions, early", 0.0) / sum(parts.values())
    floor = {k: round(v / PEAK_GFLOPS, 1) for k, v in new["parts_gflop"].items()}
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["summary"] = {
        "new_wall_s": new["wall_s"], "over_target_s": round(max(0.0, new["wall_s"] - TARGET_S), 1),
        "costliest_part": max(parts, key=parts.get),
        "early_fusion_share_of_part_seconds": round(early_share, 3),
        "estimated_wall_s_without_early_fusion": round(new["wall_s"] * (1 - early_share), 1),
        "floor_s_per_part_at_peak": floor, "floor_s_at_peak": round(sum(floor.values()), 1),
        "peak_gflops": PEAK_GFLOPS,
        "normalisations": args.normalisations,
        "wall_s_per_protocol": round(new["wall_s"] / len(args.normalisations), 1),
        "fusion_part_s_per_fusion_and_fold": round(fusion_s / max(1, new["n_fusion_folds"]), 3),
        "estimated_power_set_wall_s": round(power_set_s, 1)}
    if "old" in report:
        report["summary"].update({"old_wall_s": report["old"]["wall_s"],
                                  "old_parts_s": report["old"]["parts_s"], "new_parts_s": parts,
                                  "speedup_wall": round(report["old"]["wall_s"] / new["wall_s"], 2),
                                  "speedup_cpu": round(report["old"]["cpu_s"] / new["cpu_s"], 2)})
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid_speed.json").write_text(json.dumps(report, indent=1) + "\n")
    if not args.features and set(args.normalisations) == set(normalise.DEFAULT):  # the whole default grid: its own record
        (out / "grid_full.json").write_text(json.dumps({k: new[k] for k in ("grid_s", "wall_s", "cpu_s", "n_base_sets",
                                                                           "jobs", "normalisations", "parts_s",
                                                                           "parts_gflop")},
                                                       indent=1) + "\n")
    print(json.dumps(report["summary"], indent=1))
    print(f"-> {config.relative(out / 'grid_speed.json')}")


if __name__ == "__main__":
    cli.run(main)
