"""The extraction loop shared by every modality: resumable, kill-safe, never stopped by one bad clip.

Each clip is loaded once (decoded, and for faces detected) in a read-ahead thread, and every encoder
that does not have it yet embeds the same input into its own store. Stage timings (the loader's
own stages, "forward:<encoder>", "write") go into each store's meta.json and the returned summary.
A cached clip is reused only if it was made from the same source content by the same encoder
configuration (store.identity); otherwise it is embedded again, and the run says how many.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from tqdm import tqdm

from .. import config, timing
from . import identity
from .shards import select_shard, shard_label, write_shard_record
from .store import EmbeddingStore, package_versions

PREFETCH = 4  # batches read ahead in a background thread while the models run


def run_extraction(clips: pd.DataFrame, encoders: list, load, meta: dict | None = None, root=None,
                   batch_size: int = 1, source_column: str = "source", sort_column: str | None = None,
                   shard: str | None = None) -> dict[str, dict]:
    """Embed every clip each encoder's store lacks, then finalize the stores; returns {store id: meta}
    (a store with nothing embedded: n_clips 0; cli.check_outcome turns that into an exit status).

    load(source) -> one clip's input (may raise: recorded as a failure of that clip, the batch goes on);
    encoder.encode(list of inputs) -> list of dicts of arrays. Clips run in `sort_column` order (e.g.
    duration, so batches hold similar lengths). shard "i/n" (or "auto"): only shard i of n, leaving
    finalizing to merge_shards once every shard is done.
    """
    stores = {e.name: EmbeddingStore(e.card.modality, e.name, root) for e in encoders}
    label = ", ".join(s.id for s in stores.values())
    if shard:
        clips = select_shard(clips, shard)
        print(f"[{label}] shard {shard_label(shard)}: {len(clips)} clip(s)")
    has_source = clips[source_column].notna()
    data_root = (meta or {}).get("data_root")
    hashed = {}  # (path, size, mtime) -> content hash, this run
    current = {key: identity.source_identity(source, data_root, hashed, with_hash=False)
               for key, source in zip(clips.key[has_source], clips[source_column][has_source])}
    configs = {e.name: identity.config_digest(e) for e in encoders}
    done = {}
    for encoder in encoders:
        store = stores[encoder.name]
        verdict = identity.check(store.identities(current), current, configs[encoder.name], store.id, hashed)
        store.forget(verdict.stale)
        done[encoder.name] = verdict.fresh | verdict.legacy
        if verdict.stale or verdict.legacy:
            print(f"[{store.id}] {verdict.describe()}")
    todo = clips[has_source & ~clips.key.isin(set.intersection(*done.values()))]
    if sort_column:
        todo = todo.sort_values(sort_column)
    print(f"[{label}] {len(clips) - len(todo) - (~has_source).sum()} clip(s) cached, {len(todo)} to embed, "
          f"{(~has_source).sum()} without this modality")
    started = time.perf_counter()
    timing.take()  # stages are counted from here
    batches = [todo.iloc[i:i + batch_size] for i in range(0, len(todo), batch_size)]

    def load_batch(batch):
        loaded = []
        for row in batch.itertuples():
            source = getattr(row, source_column)
            try:
                made_from = identity.source_identity(source, data_root, hashed)
                loaded.append((row.key, made_from, load(source), None))
            except Exception as err:  # any unreadable input is recorded, never fatal
                loaded.append((row.key, {"source": str(source)}, None, f"{type(err).__name__}: {err}"))
        return loaded

    with ThreadPoolExecutor(1) as pool, tqdm(total=len(todo), unit="clip", desc=label[:40],
                                                 disable=config.quiet()) as bar:
        pending = [pool.submit(load_batch, b) for b in batches[:PREFETCH]]
        for i in range(len(batches)):
            loaded = pending.pop(0).result()
            if i + PREFETCH < len(batches):
                pending.append(pool.submit(load_batch, batches[i + PREFETCH]))
            for encoder in encoders:
                store = stores[encoder.name]
                mine = [item for item in loaded if item[0] not in done[encoder.name]]
                for key, made_from, _, error in mine:
                    if error:
                        store.record_failure(key, made_from["source"], error)
                good = [item for item in mine if item[3] is None]
                if good:
                    _encode_and_store(store, encoder, good, configs[encoder.name])
            for key, _, _, error in loaded:
                if error:
                    tqdm.write(f"  skipped {key}: {error}")
            bar.update(len(loaded))
    stages = timing.take()
    run = {**(meta or {}), "n_clips_without_this_modality": int((~has_source).sum()),
           "versions": package_versions(*(meta or {}).get("packages", [])),
           "date": dt.date.today().isoformat(), "seconds_this_run": round(time.perf_counter() - started, 2),
           "stage_seconds": stages}
    run.pop("packages", None)
    out = {}
    for encoder in encoders:
        store = stores[encoder.name]
        store_meta = {**encoder.meta(), **encoder.facts(), **run}  # the registered facts win over provenance
        if shard:
            write_shard_record(store, shard, store_meta)
            out[store.id] = store_meta
        elif not store.done_keys():
            print(f"[{store.id}] nothing could be embedded: see {config.relative(store.dir)}/failures.jsonl")
            out[store.id] = {"n_clips": 0, "n_failures": len(store.failures())}
        else:
            out[store.id] = store.finalize(store_meta)
            print(f"[{store.id}] {out[store.id]['n_clips']} clips in {config.relative(store.dir)}; "
                  f"{out[store.id]['n_failures']} failure(s) recorded in failures.json")
    return out


def _encode_and_store(store: EmbeddingStore, encoder, items, config: str) -> None:
    """Embed items (key, source identity, input, None) and cache each with its identity and config."""
    t0 = time.perf_counter()
    try:
        with timing.stage(f"forward:{encoder.name}"):
            outputs = encoder.encode([x for _, _, x, _ in items])
    except Exception as err:
        if len(items) > 1:  # find the culprit: retry one by one
            for item in items:
                _encode_and_store(store, encoder, [item], config)
            return
        key, made_from = items[0][:2]
        store.record_failure(key, made_from["source"], f"{encoder.name} failed: {type(err).__name__}: {err}")
        tqdm.write(f"  skipped {key} for {encoder.name}: {type(err).__name__}: {err}")
        return
    seconds = (time.perf_counter() - t0) / len(items)
    with timing.stage("write"):
        for (key, made_from, _, _), arrays in zip(items, outputs):
            store.put(key, arrays, seconds, {**made_from, "config": config})
