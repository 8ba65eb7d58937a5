"""Finalize embedding stores written by several `--shard I/N` runs of an extractor.

    python experiments/extract_audio.py --encoders wavlm-base-plus --shard 0/4   # ... and 1/4, 2/4, 3/4
    python experiments/merge_shards.py audio/wavlm-base-plus                    # once all four are done
    python experiments/merge_shards.py                                          # every store with shards

Shards write their clips into the same store folder; merging checks that every shard finished and
that all ran with the same settings, then assembles the arrays exactly as a single run would.
"""

from emoprobe import cli, config
from emoprobe.errors import UserError
from emoprobe.store.shards import ShardError, merge_shards
from emoprobe.store.store import EmbeddingStore


def main(argv=None):
    p = cli.parser(__doc__, data=False)
    p.add_argument("stores", nargs="*", metavar="MODALITY/NAME",
                   help="stores to finalize (default: every store with shard records)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="finalize even if some shards have not finished (their clips are left out)")
    args = p.parse_args(argv)
    root = config.embeddings_dir(args.embeddings_dir)
    names = args.stores or sorted(str(d.parent.relative_to(root)) for d in root.glob("*/*/shards")
                                  if any(d.glob("*-of-*.json")))
    if not names:
        raise UserError(f"no store under {config.relative(root)} has shard records to merge")
    failed = []
    for name in names:
        modality, _, store_name = name.partition("/")
        try:
            merge_shards(EmbeddingStore(modality, store_name, root), args.allow_incomplete)
        except ShardError as err:
            print(f"[merge] {err}")
            failed.append(name)
    if failed:
        raise UserError(f"not merged: {', '.join(failed)}")


if __name__ == "__main__":
    cli.run(main)
