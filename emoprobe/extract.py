"""The extraction loop shared by every modality: resumable, kill-safe, and never stopped by one bad clip."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from tqdm import tqdm

from .store import EmbeddingStore, atomic_write_text, package_versions

PREFETCH = 4  # batches read ahead in a background thread while the model runs


def run_extraction(clips: pd.DataFrame, store: EmbeddingStore, load, encode, meta: dict,
                   batch_size: int = 1, source_column: str = "source", sort_column: str | None = None,
                   shard: str | None = None) -> dict:
    """Embed every clip not yet in the store, then finalize it.

    load(source) -> input for one clip (may raise: recorded as a failure, the batch goes on);
    encode(list of inputs) -> list of dicts of arrays. Clips are processed in `sort_column` order
    (e.g. duration, so batches hold similar lengths).
    shard "i/n" (or "auto"): embed only shard i of n (select_shard) and leave finalizing to
    merge_shards once every shard is done; shards may run at the same time on the same store.
    """
    if shard:
        clips = select_shard(clips, shard)
        print(f"[{store.modality}/{store.model}] shard {shard_label(shard)}: {len(clips)} clip(s)")
    done = store.done_keys()
    todo = clips[~clips.key.isin(done) & clips[source_column].notna()]
    missing = clips[clips[source_column].isna()]  # modality absent: counted in meta, not a failure
    if sort_column:
        todo = todo.sort_values(sort_column)
    print(f"[{store.modality}/{store.model}] {len(done)} clip(s) cached, {len(todo)} to embed, "
          f"{len(missing)} without a source")
    started = time.perf_counter()
    batches = [todo.iloc[i:i + batch_size] for i in range(0, len(todo), batch_size)]

    def load_batch(batch):
        loaded = []
        for row in batch.itertuples():
            try:
                loaded.append((row.key, getattr(row, source_column), load(getattr(row, source_column)), None))
            except Exception as err:  # any unreadable input is recorded, never fatal
                loaded.append((row.key, getattr(row, source_column), None, f"{type(err).__name__}: {err}"))
        return loaded

    with ThreadPoolExecutor(1) as pool, tqdm(total=len(todo), unit="clip", desc=store.model) as bar:
        pending = [pool.submit(load_batch, b) for b in batches[:PREFETCH]]
        for i in range(len(batches)):
            loaded = pending.pop(0).result()
            if i + PREFETCH < len(batches):
                pending.append(pool.submit(load_batch, batches[i + PREFETCH]))
            for key, source, _, error in loaded:
                if error:
                    store.record_failure(key, source, error)
                    tqdm.write(f"  skipped {key}: {error}")
            good = [item for item in loaded if item[3] is None]
            if good:
                _encode_and_store(store, encode, good)
            bar.update(len(loaded))
    meta = {**{k: v for k, v in meta.items() if k != "packages"},  # the caller's dict is left as given
            "n_clips_without_this_modality": len(missing),
            "versions": package_versions(*meta.get("packages", [])),
            "date": dt.date.today().isoformat(), "seconds_this_run": round(time.perf_counter() - started, 2)}
    if shard:
        _write_shard_record(store, shard, meta)
        return meta
    if not store.done_keys():
        print(f"[{store.modality}/{store.model}] nothing could be embedded: see {store.dir}/failures.jsonl")
        return meta
    meta = store.finalize(meta)
    print(f"[{store.modality}/{store.model}] {meta['n_clips']} clips in {store.dir}; "
          f"{meta['n_failures']} failure(s) recorded in failures.json")
    return meta


def _encode_and_store(store, encode, items):
    t0 = time.perf_counter()
    try:
        outputs = encode([x for _, _, x, _ in items])
    except Exception as err:
        if len(items) > 1:  # find the culprit: retry one by one
            for item in items:
                _encode_and_store(store, encode, [item])
            return
        key, source = items[0][:2]
        store.record_failure(key, source, f"encoder failed: {type(err).__name__}: {err}")
        tqdm.write(f"  skipped {key}: encoder failed: {err}")
        return
    seconds = (time.perf_counter() - t0) / len(items)
    for (key, _, _, _), arrays in zip(items, outputs):
        store.put(key, arrays, seconds)


# ---------------------------------------------------------------------------------------------
# Shards: n processes (a SLURM job array, torchrun, several machines on a shared disk) each embed
# one n-th of the clips into the same store; the per-clip cache makes their outputs disjoint files,
# and one merge_shards call at the end finalizes the store exactly as a single run would.
# ---------------------------------------------------------------------------------------------
SHARD_ENV = [("RANK", "WORLD_SIZE", None),  # torchrun
             ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"),  # sbatch --array
             ("SLURM_PROCID", "SLURM_NTASKS", None)]  # srun -n


def parse_shard(spec: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n -> (i, n); 'auto' reads torchrun's or SLURM's variables."""
    if spec == "auto":
        found = [(int(os.environ[index]) - int(os.environ.get(first, 0) if first else 0), int(os.environ[count]))
                 for index, count, first in SHARD_ENV if index in os.environ and count in os.environ]
        if not found:
            raise ValueError("--shard auto: none of RANK/WORLD_SIZE (torchrun), SLURM_ARRAY_TASK_ID/COUNT "
                             "or SLURM_PROCID/NTASKS is set; give --shard i/n")
        i, n = found[0]
    else:
        try:
            i, n = (int(part) for part in str(spec).split("/"))
        except ValueError:
            raise ValueError(f"--shard {spec!r}: expected i/n, e.g. 0/4 (i counts from 0)") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {spec!r} gives shard {i} of {n}: need 0 <= i < n (i counts from 0)")
    return i, n


def shard_label(spec: str) -> str:
    return "{}/{}".format(*parse_shard(spec))


def select_shard(clips: pd.DataFrame, spec: str) -> pd.DataFrame:
    """Shard i of n: every n-th clip in key order from the i-th, so n shards partition the clips
    exactly (given the same clips table: point every shard at the same data) and share lengths alike."""
    i, n = parse_shard(spec)
    return clips.loc[clips.key.sort_values(kind="stable").index[i::n]]


def add_shard_argument(parser) -> None:
    """--shard I/N on an extractor's command line, checked when parsed (before any model loads)."""
    parser.add_argument("--shard", metavar="I/N", type=_checked_shard,
                        help="embed only shard I of N (from 0; 'auto' reads torchrun/SLURM variables), then run "
                        "experiments/merge_shards.py once all N are done")


def _checked_shard(spec: str) -> str:
    import argparse

    try:
        parse_shard(spec)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return spec


def _shard_dir(store: EmbeddingStore):
    return store.dir / "shards"


def _write_shard_record(store, shard: str, meta: dict) -> None:
    """Say in the store that this shard is done, with the meta its finalize would have had. A store
    standing for several (face.FaceStores) lists them, with their metas, in `shard_parts(meta)`."""
    i, n = parse_shard(shard)
    parts = store.shard_parts(meta) if hasattr(store, "shard_parts") else [(store, meta)]
    finished = dt.datetime.now().isoformat(timespec="seconds")
    for part, part_meta in parts:
        record = {**part_meta, "shard": [i, n], "n_embedded_total": len(part.done_keys()), "finished": finished}
        atomic_write_text(_shard_dir(part) / f"{i}-of-{n}.json", json.dumps(record, indent=1, default=str))
    print(f"[{store.modality}/{store.model}] shard {i}/{n} done; once all {n} are, finalize with "
          f"experiments/merge_shards.py {' '.join(f'{p.modality}/{p.model}' for p, _ in parts)}")


SHARD_VOLATILE = {"date", "finished", "seconds_this_run", "n_clips_without_this_modality", "shard",
                  "n_embedded_total"}  # fields that differ between shards of one run
PER_SHARD = ("versions", "data_root", "device")  # may differ (other nodes, cuda:RANK): kept per shard if so


def merge_shards(store: EmbeddingStore, allow_incomplete: bool = False) -> dict:
    """Finalize a store written by shards: check every shard of the latest run reported done and all
    used the same settings, then store.finalize with their merged meta; returns it."""
    records = [json.loads(p.read_text()) for p in sorted(_shard_dir(store).glob("*-of-*.json"))]
    if not records:
        raise FileNotFoundError(f"{store}: no shard records in {_shard_dir(store)}; nothing to merge")
    n = max(records, key=lambda r: r["finished"])["shard"][1]  # an abandoned run with another n is older
    records = sorted((r for r in records if r["shard"][1] == n), key=lambda r: r["shard"][0])
    missing = sorted(set(range(n)) - {r["shard"][0] for r in records})
    if missing and not allow_incomplete:
        raise RuntimeError(f"{store}: shard(s) {missing} of {n} have not finished; rerun them "
                           "(cached clips are skipped) or pass allow_incomplete")
    settings = [{k: v for k, v in r.items() if k not in SHARD_VOLATILE and k not in PER_SHARD} for r in records]
    for r, s in zip(records[1:], settings[1:]):
        differ = sorted(k for k in s.keys() | settings[0].keys() if s.get(k) != settings[0].get(k))
        if differ:
            raise RuntimeError(f"{store}: shard {r['shard'][0]} ran with other settings than shard "
                               f"{records[0]['shard'][0]} ({', '.join(differ)}); its clips are cached with "
                               f"them: delete {store.dir} and rerun every shard with the same settings")
    per_shard = {k: [r.get(k) for r in records] for k in PER_SHARD if k in records[0]}
    meta = {**settings[0], **{k: v[0] if all(x == v[0] for x in v) else v for k, v in per_shard.items()},
            "n_clips_without_this_modality": sum(r["n_clips_without_this_modality"] for r in records),
            "date": max(r["date"] for r in records), "shards": n, "shards_missing": missing,
            "seconds_this_run": max(r["seconds_this_run"] for r in records),  # shards run side by side
            "seconds_per_shard": [r["seconds_this_run"] for r in records]}
    meta = store.finalize(meta)
    for p in _shard_dir(store).glob("*.json"):  # merged: a later sharded run starts from a clean slate
        p.unlink()
    print(f"[{store.modality}/{store.model}] merged {len(records)} shard(s): {meta['n_clips']} clips, "
          f"{meta['n_failures']} failure(s)")
    return meta
