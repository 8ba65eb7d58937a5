"""The extraction loop shared by every modality: resumable, kill-safe, and never stopped by one bad clip."""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from tqdm import tqdm

from .store import EmbeddingStore, package_versions

PREFETCH = 4  # batches read ahead in a background thread while the model runs


def run_extraction(clips: pd.DataFrame, store: EmbeddingStore, load, encode, meta: dict,
                   batch_size: int = 1, source_column: str = "source", sort_column: str | None = None) -> dict:
    """Embed every clip not yet in the store, then finalize it.

    load(source) -> input for one clip (may raise: recorded as a failure, the batch goes on);
    encode(list of inputs) -> list of dicts of arrays. Clips are processed in `sort_column` order
    (e.g. duration, so batches hold similar lengths).
    """
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
