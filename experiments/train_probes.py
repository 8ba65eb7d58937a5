"""Train the probe grid on every complete embedding store and write results/.

    python experiments/train_probes.py --data-root ../shared/data/ravdess

Per outer fold (speaker-disjoint), on the training speakers only: a linear probe per layer of every
feature set; every fusion of the base sets (each store's default pooling, random controls excepted)
by early, late and stacked fusion and by `auto` (the method inner CV prefers); the best single set
by inner CV; the MLP on every base set, random control and the fusion of all base sets.
Writes to --out:
    probes.csv          one row per features x candidate (layer) x probe x fusion x fold x seed (explicit columns)
    recalls.parquet     each of those rows' recall of each class (long: the row's keys, class, recall)
    probes_summary.csv  mean and std over folds (and seeds), pooled UA and its speaker-bootstrap interval
    feature_sets.csv    one row per features label x member store: find a fusion's members by joining
    shapley.csv         Shapley values of base sets and modalities, per metric, with intervals over folds: of
                        the auto fusion (exact up to --max-exact base sets, else sampled), and of select and
                        late fusion from every subset (exact)
    predictions.parquet every headline row's per-clip test predictions (emoprobe.probes.read_predictions)
    stores.csv          provenance of every complete store (what was run, clips, failures, seconds)
    poolings.csv        each store's poolings and their shape per clip (layers, dim)
    settings.json       every setting that decides the numbers (C grids, inner folds, seeds, bootstrap...)
    clips.csv           the clips table (labels, speakers, attributes) the analyses join predictions to
    folds.csv           each fold's test speakers and where the folds come from (e.g. EmoBox folds)
"""

import json
import time
from pathlib import Path

import pandas as pd

from emoprobe import cli, config, probes
from emoprobe import results as results_schema
from emoprobe.data import clips as clip_table
from emoprobe.data import folds
from emoprobe.errors import NoDataError, UserError
from emoprobe.probes import parts
from emoprobe.report import stats
from emoprobe.store.shards import parse_shard
from emoprobe.store.store import available_stores, pooling_shapes, provenance

SCHEME = "auto"  # speaker-disjoint folds: EmoBox's six for RAVDESS speech (see emoprobe.data.folds)
CHANNEL = "speech"  # the folds and all committed results are on the speech channel
JOBS = 2  # folds trained in parallel processes (one torch thread each); set to your core count
MAX_EXACT = probes.shapley.MAX_EXACT_PLAYERS  # more base sets than this: sampled coalitions, sampled Shapley
PERMUTATIONS = probes.shapley.N_PERMUTATIONS  # player orders sampled past MAX_EXACT base sets
SHAPLEY_METHOD = "auto"  # the fusion method whose results give coalitions their value


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--features", nargs="*", help="only these stores: names or 'modality/name', shell patterns "
                   "allowed ('whisper*', 'face/*')")
    p.add_argument("--scheme", default=SCHEME, help="fold scheme (emoprobe.data.folds.SCHEMES)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(probes.SEEDS), help="MLP seeds")
    p.add_argument("--probes", nargs="+", default=["linear", "mlp"], choices=["linear", "mlp"])
    cli.add_normalisations(p)
    p.add_argument("--max-exact", type=cli.positive(int), default=MAX_EXACT, help="fit every fusion up to this many base sets")
    p.add_argument("--all-subsets", action="store_true", help="fit every subset of the base sets (the power set: "
                   "exact Shapley values however many base sets there are)")
    p.add_argument("--permutations", type=cli.positive(int), default=PERMUTATIONS, help="sampled orders past --max-exact")
    p.add_argument("--no-extra-poolings", dest="extra_poolings", action="store_false",
                   help="probe only each store's default pooling")
    p.add_argument("--jobs", type=cli.positive(int), default=JOBS)
    p.add_argument("--out", help="results folder (default: $EMOPROBE_RESULTS or results)")
    p.add_argument("--parts", help="where finished parts of the grid are kept, so that a killed run resumes "
                   "(default: $EMOPROBE_GRID_PARTS or .grid_parts in the results folder)")
    p.add_argument("--no-parts", action="store_true", help="keep no parts (nothing to resume from)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--shard", metavar="I/N", type=cli.shard_spec,
                   help="only make the parts of every N-th fold from the I-th and keep them (a job array; 'auto' "
                   "reads SLURM's variables); a run without --shard then assembles the results from them")
    p.add_argument("--timing", help="also write the grid's seconds, per part, to this JSON file (benchmarks)")
    p.add_argument("--stores-only", action="store_true",
                   help="only rewrite stores.csv, clips.csv and folds.csv for the current stores (after a re-extraction)")
    p.add_argument("--add", action="store_true",
                   help="probe only the --features sets, all single-only (random controls, variants, other poolings), "
                   "and add their rows to the results in --out, every other row kept as it is (a single-only set's "
                   "rows depend on no other set; a base set's fusions and Shapley values would: re-run the grid)")
    p.add_argument("--clips-only", action="store_true",
                   help="only rewrite clips.csv and folds.csv from the data root (after the clips table changed)")
    args = p.parse_args(argv)
    out = config.results_dir(args.out)
    if args.stores_only or args.clips_only:
        return write_provenance(args, out, stores=not args.clips_only)

    clips = clip_table.load(args.data_root, CHANNEL, verbose=False)
    if args.add and not args.features:
        raise UserError("--add needs --features: the single-only sets to add to the results")
    base, extra = probes.discover_feature_sets(args.embeddings_dir, args.features, args.extra_poolings)
    if args.add:
        return add_sets(args, out, clips, base, extra)
    if not base:
        raise NoDataError(f"no complete embedding store under {config.embeddings_dir(args.embeddings_dir)}: "
                          "run experiments/extract_*.py first")
    print(f"{len(base)} base sets: {', '.join(fs.name for fs in base)}; {len(extra)} single-only sets")
    max_exact = len(base) if args.all_subsets else args.max_exact
    if args.shard and args.no_parts:
        raise UserError("--shard keeps its parts for the run that assembles them: drop --no-parts")
    started = time.perf_counter()
    made = probes.run_grid(
        clips, base, extra, args.scheme, args.seeds, args.probes, max_exact, args.permutations, args.jobs,
        parts_dir=None if args.no_parts else config.grid_parts_dir(args.parts, out),
        progress=args.progress and not args.quiet,
        shard=parse_shard(args.shard) if args.shard else None, normalisations=args.normalisations)
    if made is None:
        print(f"shard {args.shard} done in {time.perf_counter() - started:.0f} s: run train_probes.py without "
              "--shard (same options) once every shard is done, to assemble the results")
        return
    results, predictions, feature_sets, timing, every_subset = made
    elapsed = time.perf_counter() - started
    shapley = probes.shapley_table(results, feature_sets, probes.targets(clips)[1], SHAPLEY_METHOD, clips.label.nunique(), max_exact,
                                   args.permutations)
    shapley = stats.shapley_summary(pd.concat([shapley, every_subset], ignore_index=True))  # + select, late: exact

    tables = {**grid_tables(results, predictions, feature_sets), "shapley.csv": shapley}
    for name, table in tables.items():
        write(table, name, out)
    settings = {**grid_settings(args, args.scheme, max_exact, args.permutations),
                # what was probed: each feature set's clip keys and values, as the grid's resumable parts key them
                "input_digests": {fs.name: input_digest(fs) for fs in [*base, *extra]}}
    (out / results_schema.SETTINGS).write_text(json.dumps(settings, indent=1) + "\n")
    write_provenance(args, out)
    if args.timing:
        n_base = int(feature_sets[feature_sets.role == "base"].set.nunique())  # trained ones (few-clip sets skipped)
        Path(args.timing).write_text(json.dumps({"grid_s": round(elapsed, 1), "n_base_sets": n_base,
                                                 "all_subsets": args.all_subsets, "jobs": args.jobs,
                                                 "normalisations": args.normalisations,
                                                 "grid_s_per_protocol": round(elapsed / len(args.normalisations), 1),
                                                 "made_by": "python experiments/train_probes.py --timing FILE",
                                                 "parts_s": {k: round(v["seconds"], 1) for k, v in timing.items()},
                                                 "parts_gflop": {k: round(v["flops"] / 1e9, 1) for k, v in timing.items()}},
                                                indent=1) + "\n")
    spent = ", ".join(f"{part} {v['seconds']:.0f} s" for part, v in timing.items())
    print(f"{len(results)} results in {elapsed:.0f} s ({spent}, summed over folds) -> {config.relative(out)}")
    print(tables["probes_summary.csv"].head(15)[["features", "probe", "fusion", "ua_mean", "ua_std", "ua_boot_low", "ua_boot_high"]]
          .to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def add_sets(args, out: Path, clips: pd.DataFrame, base: list, extra: list) -> None:
    """--add: the grid on single-only sets alone, its rows put into the results already in `out` (rows of
    the same sets replaced), under the settings those results were made with (else: re-run the grid)."""
    if base:
        raise UserError(f"--add takes single-only sets; {', '.join(fs.name for fs in base)} are base sets, whose "
                        "fusions and Shapley values would change too: re-run the whole grid")
    if not extra:
        raise NoDataError(f"--add: no complete store matches --features {' '.join(args.features)}")
    made_with = out / results_schema.SETTINGS
    if not (out / "probes.csv").exists() or not made_with.exists():
        raise UserError(f"--add: no results in {config.relative(out)} to add to: run the whole grid first")
    committed = json.loads(made_with.read_text())
    now = grid_settings(args, args.scheme, committed["shapley"]["max_exact_players"], committed["shapley"]["permutations"])
    differ = [k for k in {*now, *committed} - {"probe_code_digest", "input_digests", "added"} if now.get(k) != committed.get(k)]
    if differ:
        raise UserError(f"--add: the results in {config.relative(out)} were made with other settings "
                        f"({', '.join(sorted(differ))}): use theirs, or re-run the whole grid")
    started = time.perf_counter()
    results, predictions, feature_sets, _, _ = probes.run_grid(
        clips, [], extra, args.scheme, args.seeds, args.probes, n_jobs=args.jobs,
        parts_dir=None if args.no_parts else config.grid_parts_dir(args.parts, out),
        progress=args.progress and not args.quiet, normalisations=args.normalisations,
        prune=False)  # the whole grid's parts stay for its next run
    for name, table in grid_tables(results, predictions, feature_sets).items():
        merged = results_schema.replace_rows(results_schema.read(out, name), table, "features")
        if name == "probes_summary.csv":  # best UA first, as summarise orders it (stable: old ties keep their order)
            merged = merged.sort_values("ua_mean", ascending=False, kind="stable", ignore_index=True)
        write(merged, name, out)
    stores = [s for s in available_stores(args.embeddings_dir, log=None) if s.id in {fs.store for fs in extra}]
    for name, table in (("stores.csv", provenance(stores)), ("poolings.csv", pooling_shapes(stores))):
        merged = results_schema.replace_rows(results_schema.read(out, name), table, "store")
        write(merged.sort_values("store", kind="stable"), name, out)  # in store order, as a whole run
    committed["input_digests"] = {**committed.get("input_digests", {}), **{fs.name: input_digest(fs) for fs in extra}}
    # which rows came from a later run, and from which probe code (the rest: committed["probe_code_digest"])
    names = [fs.name for fs in extra]
    earlier = [{**a, "sets": [n for n in a["sets"] if n not in names]} for a in committed.get("added", [])]
    committed["added"] = [*(a for a in earlier if a["sets"]), {"sets": names, "probe_code_digest": parts.code_digest()}]
    made_with.write_text(json.dumps(committed, indent=1) + "\n")
    print(f"{len(results)} rows of {len(extra)} set(s) added in {time.perf_counter() - started:.0f} s "
          f"-> {config.relative(out)}")


def grid_tables(results: pd.DataFrame, predictions: pd.DataFrame, feature_sets: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The grid's rows as the results files hold them (file name -> table): probes.csv and its per-class
    recalls, the summary with its speaker-bootstrap intervals, feature_sets.csv and the predictions."""
    summary = probes.summarise(results).merge(stats.bootstrap_intervals(predictions), how="left", on=stats.SYSTEM)
    probes_table, recalls = results_schema.split_recalls(results, [c.name for c in results_schema.ROW_KEYS])
    return {"probes.csv": probes_table, results_schema.RECALLS: recalls, "probes_summary.csv": summary,
            "feature_sets.csv": feature_sets, results_schema.PREDICTIONS: predictions}


def grid_settings(args, scheme: str, max_exact: int, permutations: int) -> dict:
    """Every setting behind the grid's numbers, as settings.json holds them (without the data digests)."""
    return {**probes.grid.settings(scheme, args.seeds, args.probes, max_exact, permutations, args.normalisations),
            "shapley_method": SHAPLEY_METHOD,
            "bootstrap": {"resamples": stats.N_BOOT, "level": stats.LEVEL, "seed": stats.SEED, "unit": "speaker"}}


def input_digest(fs) -> str:
    """A feature set's clip keys and values, digested as the grid's resumable parts key them."""
    return parts.digest(list(fs.keys), fs.X)


def write(table: pd.DataFrame, name: str, out: Path) -> None:
    """A results file into `out`; scores in the CSV tables to 5 decimals."""
    rounded = name in ("probes.csv", "probes_summary.csv", "shapley.csv")
    results_schema.write(table, name, out / name, **({"float_format": "%.5f"} if rounded else {}))


def write_provenance(args, out: Path, stores: bool = True) -> None:
    """stores.csv and poolings.csv (what every complete store is; stores=False: left as they are), clips.csv (the clips
    table) and folds.csv (each fold's test speakers and where the folds come from) beside the results."""
    out.mkdir(parents=True, exist_ok=True)
    if stores:
        complete = available_stores(args.embeddings_dir, log=None)
        results_schema.write(provenance(complete), "stores.csv", out / "stores.csv")
        results_schema.write(pooling_shapes(complete), "poolings.csv", out / "poolings.csv")
    clips = clip_table.load(args.data_root, verbose=False)
    results_schema.write(clips.drop(columns=["audio", "video"]), "clips.csv", out / "clips.csv")
    source = folds.describe(clips, args.scheme)
    results_schema.write(pd.DataFrame([{"fold": fold, "speaker": speaker, "source": source}
                                       for fold, test in folds.load_folds(clips, args.scheme).items()
                                       for speaker in test]), "folds.csv", out / "folds.csv")


if __name__ == "__main__":
    cli.run(main)
