"""Finalize embedding stores written by several `--shard I/N` runs of an extractor.

    python experiments/extract_audio.py --encoders wav2vec2 --shard 0/4     # ... and 1/4, 2/4, 3/4
    python experiments/merge_shards.py audio/wav2vec2-base                 # once all four are done
    python experiments/merge_shards.py                                     # every store with shards

Shards write their clips into the same store folder; merging checks that every shard finished and
that all ran with the same settings, then assembles the arrays exactly as a single run would.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from emoprobe import paths
from emoprobe.extract import merge_shards
from emoprobe.store import EmbeddingStore


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", nargs="*", metavar="MODALITY/MODEL",
                   help="stores to finalize (default: every store with shard records)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="finalize even if some shards have not finished (their clips are left out)")
    p.add_argument("--embeddings-dir", default=paths.EMBEDDINGS)
    args = p.parse_args(argv)

    root = Path(args.embeddings_dir)
    names = args.stores or sorted(str(d.parent.relative_to(root)) for d in root.glob("*/*/shards")
                                  if any(d.glob("*-of-*.json")))
    if not names:
        raise SystemExit(f"no store under {root} has shard records to merge")
    failed = []
    for name in names:
        modality, _, model = name.partition("/")
        try:
            merge_shards(EmbeddingStore(modality, model, root), args.allow_incomplete)
        except (FileNotFoundError, RuntimeError) as err:
            print(f"[merge] {err}")
            failed.append(name)
    if failed:
        raise SystemExit(f"not merged: {', '.join(failed)}")


if __name__ == "__main__":
    main()
