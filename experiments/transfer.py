"""Train probes on one corpus (or channel, or speaker group) and test them on another.

    python experiments/transfer.py --train ../shared/data/ravdess --test ../shared/data/ravdess \\
        --train-channel speech --test-channel song          # RAVDESS speech -> song (same 24 actors)
    python experiments/transfer.py --train ../shared/data/ravdess --test ../shared/data/ravdess \
        --train-where sex=male --test-where sex=female      # male actors -> female actors
    python experiments/transfer.py --train ravdess.jsonl --test cremad.jsonl --label-map ANG=angry ...

A and B are each a RAVDESS folder (with --train-channel / --test-channel) or a manifest. Both must
have been embedded into the same stores first (extract_audio.py --data-root A, then --data-root B;
keys must not collide). Every complete base store's default pooling is probed (or --features): trained on
A, tested on B on the labels both share; when A and B share speakers, fold by fold with each fold's
test speakers held out of training. Beside it, the within-corpus UA of B on the same labels (B's own
speaker-disjoint folds). Rows go to results/transfer.csv (rows of the same train/test pair replaced).
"""

from pathlib import Path

import pandas as pd

from emoprobe import cli, config, timing
from emoprobe import results as results_schema
from emoprobe.data import clips as clip_table
from emoprobe.data import labels
from emoprobe.errors import UserError
from emoprobe.probes.features import is_base_set
from emoprobe.probes.transfer import transfer
from emoprobe.store.store import available_stores

CHANNEL = "speech"  # RAVDESS folders: the channel read unless --train-channel / --test-channel say otherwise


def select(clips: pd.DataFrame, where: list[str], side: str) -> pd.DataFrame:
    """The clips whose attribute columns have the values given as COLUMN=VALUE."""
    for item in where:
        column, _, value = item.partition("=")
        if not value or column not in clips:
            raise UserError(f"--{side}-where {item}: expected COLUMN=VALUE with a column of the clips table "
                            f"({', '.join(c for c in clips if c not in ('audio', 'video'))})")
        clips = clips[clips[column].astype(str) == value]
        if clips.empty:
            raise UserError(f"--{side}-where {item}: no clip has it")
    return clips.reset_index(drop=True)


def main(argv=None):
    p = cli.parser(__doc__, data=False)
    p.add_argument("--train", required=True, metavar="A", help="RAVDESS folder or manifest to train on")
    p.add_argument("--test", required=True, metavar="B", help="RAVDESS folder or manifest to test on")
    p.add_argument("--train-channel", default=CHANNEL, choices=["speech", "song", "all"])
    p.add_argument("--test-channel", default=CHANNEL, choices=["speech", "song", "all"])
    p.add_argument("--train-where", nargs="*", default=[], metavar="COLUMN=VALUE",
                   help="keep only the training clips with these attributes, e.g. sex=male")
    p.add_argument("--test-where", nargs="*", default=[], metavar="COLUMN=VALUE",
                   help="keep only the test clips with these attributes, e.g. sex=female")
    p.add_argument("--features", nargs="*", help="only stores whose 'modality/name' contains one of these")
    p.add_argument("--label-map", nargs="*", default=[], metavar="FROM=TO",
                   help="rename labels (in both corpora) before matching them, e.g. ANG=angry")
    p.add_argument("--out", help="results CSV (default: results/transfer.csv)")
    cli.add_normalisations(p)
    args = p.parse_args(argv)

    renames = {labels.normalise(a): labels.normalise(b)  # as manifests hold labels: lower-case
               for a, b in (item.split("=", 1) for item in args.label_map if "=" in item)}
    if len(renames) != len(args.label_map):
        raise UserError("--label-map takes FROM=TO pairs")
    sides = {}
    for side, root, channel, where in (("train", args.train, args.train_channel, args.train_where),
                                       ("test", args.test, args.test_channel, args.test_where)):
        clips = clip_table.load(root, None if channel == "all" else channel, verbose=False)
        clips["label"] = clips.label.astype(str).replace(renames)
        clips = select(clips, where, side)
        details = ([channel] if "channel" in clips else []) + where
        sides[side] = clip_table.data_label(root) + (f" ({', '.join(details)})" if details else ""), clips
    (train_name, train), (test_name, test) = sides["train"], sides["test"]
    classes = [c for c in dict.fromkeys(train.label) if c in set(test.label)]
    if len(classes) < 2:
        raise UserError(f"{train_name} and {test_name} share {len(classes)} label(s) ({', '.join(classes)}); "
                        "map their names with --label-map")
    train, test = (c[c.label.isin(classes)].reset_index(drop=True) for c in (train, test))
    print(f"{train_name} -> {test_name}: {len(train)} / {len(test)} clips on {len(classes)} shared labels "
          f"({', '.join(classes)})")

    rows, chosen_per_fold = [], []
    # by default the base sets only: controls, variants and first-seconds cuts are the grid's and duration's
    chosen = [(store, meta) for store, meta in ((s, s.meta()) for s in available_stores(args.embeddings_dir))
              if (any(f in store.id for f in args.features) if args.features else is_base_set(meta))]
    bar = timing.progress(len(chosen), "transfer", args.quiet, unit="store")
    say = (lambda line: None) if args.quiet else bar.write
    for store, meta in chosen:
        bar.update()
        keys, X = store.load(meta.get("default_pooling", "mean"))
        row_of = {k: i for i, k in enumerate(keys)}
        a, b = (c[c.key.isin(row_of)].reset_index(drop=True) for c in (train, test))
        if len(b) == 0 or len(a) == 0:
            say(f"  {store.id}: left out, it holds no clips of {test_name if len(b) == 0 else train_name} "
                  "(extract them with --data-root pointing at it)")
            continue
        Xa, Xb = X[[row_of[k] for k in a.key]], X[[row_of[k] for k in b.key]]
        for normalisation in args.normalisations:
            _, across, chosen_folds = transfer(a, b, Xa, Xb, classes, normalisation)
            _, within, _ = transfer(b, b, Xb, Xb, classes, normalisation)
            if not across:
                say(f"  {store.id}: left out, too few training speakers")
                break
            rows.append({"train": train_name, "test": test_name, "train_channel": args.train_channel,
                         "test_channel": args.test_channel, "store": store.id, "normalisation": normalisation,
                         "finalized": meta.get("finalized"), "probe": "linear",
                         **across, "ua_within_test": within.get("ua")})  # a recall_<label> per shared label
            chosen_per_fold.append(chosen_folds.assign(train=train_name, test=test_name, store=store.id,
                                                       normalisation=normalisation, probe="linear"))
            say(f"  {store.id} ({normalisation}): UA {100 * across['ua']:.1f} "
                f"(within {test_name}: {100 * within.get('ua', float('nan')):.1f})")
    bar.close()
    if not rows:
        raise UserError("no store holds clips of both corpora: embed both with the same --embeddings-dir")
    out = Path(args.out) if args.out else config.results_dir() / "transfer.csv"
    # rows of this train/test pair are replaced; beside: what each fold chose, and each label's recall
    pooled, recalls = results_schema.split_recalls(pd.DataFrame(rows), ["train", "test", "store", "normalisation", "probe"])
    for name, table, path in [("transfer.csv", pooled, out),
                              ("transfer_recalls.csv", recalls, out.with_name(out.stem + "_recalls.csv")),
                              ("transfer_folds.csv", pd.concat(chosen_per_fold, ignore_index=True),
                               out.with_name(out.stem + "_folds.csv"))]:
        old = results_schema.read_as(path, name)
        if old is not None:
            table = pd.concat([old[(old.train != train_name) | (old.test != test_name)], table], ignore_index=True)
        results_schema.write(table, name, path, float_format="%.5f")
        print(f"-> {config.relative(path)}")


if __name__ == "__main__":
    cli.run(main)
