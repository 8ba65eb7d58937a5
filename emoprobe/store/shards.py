"""Shards: n processes (a SLURM job array, torchrun, several machines on a shared disk) each embed one
n-th of the clips into the same stores; the per-clip cache makes their outputs disjoint files, and one
merge_shards call per store at the end finalizes it exactly as a single run would.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from .. import config
from ..errors import UserError
from .store import EmbeddingStore, atomic_write_text


class ShardError(UserError):
    """A --shard value that names no shard, or shards that cannot be merged."""


def parse_shard(spec: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n -> (i, n); 'auto' reads torchrun's or SLURM's variables."""
    if spec == "auto":
        found = config.shard_from_environment()
        if found is None:
            raise ShardError("--shard auto: none of RANK/WORLD_SIZE (torchrun), SLURM_ARRAY_TASK_ID/COUNT "
                             "or SLURM_PROCID/NTASKS is set; give --shard i/n")
        i, n = found
    else:
        try:
            i, n = (int(part) for part in str(spec).split("/"))
        except ValueError:
            raise ShardError(f"--shard {spec!r}: expected i/n, e.g. 0/4 (i counts from 0)") from None
    if not 0 <= i < n:
        raise ShardError(f"--shard {spec!r} gives shard {i} of {n}: need 0 <= i < n (i counts from 0)")
    return i, n


def shard_label(spec: str) -> str:
    return "{}/{}".format(*parse_shard(spec))


def select_shard(clips: pd.DataFrame, spec: str) -> pd.DataFrame:
    """Shard i of n: every n-th clip in key order from the i-th, so n shards partition the clips
    exactly (given the same clips table: point every shard at the same data) and share lengths alike."""
    i, n = parse_shard(spec)
    return clips.loc[clips.key.sort_values(kind="stable").index[i::n]]


def _shard_dir(store: EmbeddingStore):
    return store.dir / "shards"


def write_shard_record(store: EmbeddingStore, shard: str, meta: dict) -> None:
    """Say in the store that this shard is done, with the meta its finalize would have had."""
    i, n = parse_shard(shard)
    record = {**meta, "shard": [i, n], "n_embedded_total": len(store.done_keys()),
              "finished": dt.datetime.now().isoformat(timespec="seconds")}
    atomic_write_text(_shard_dir(store) / f"{i}-of-{n}.json", json.dumps(record, indent=1, default=str))
    print(f"[{store.id}] shard {i}/{n} done; once all {n} are, finalize with "
          f"experiments/merge_shards.py {store.id}")


SHARD_VOLATILE = {"date", "finished", "seconds_this_run", "n_clips_without_this_modality", "shard",
                  "n_embedded_total", "stage_seconds"}  # fields that differ between shards of one run
PER_SHARD = ("versions", "data_root", "device")  # may differ (other nodes, cuda:RANK): kept per shard if so


def merge_shards(store: EmbeddingStore, allow_incomplete: bool = False) -> dict:
    """Finalize a store written by shards: check every shard of the latest run reported done and all
    used the same settings, then store.finalize with their merged meta; returns it."""
    records = [json.loads(p.read_text()) for p in sorted(_shard_dir(store).glob("*-of-*.json"))]
    if not records:
        raise ShardError(f"{store.id}: no shard records in {config.relative(_shard_dir(store))}; nothing to merge")
    n = max(records, key=lambda r: r["finished"])["shard"][1]  # an abandoned run with another n is older
    records = sorted((r for r in records if r["shard"][1] == n), key=lambda r: r["shard"][0])
    missing = sorted(set(range(n)) - {r["shard"][0] for r in records})
    if missing and not allow_incomplete:
        raise ShardError(f"{store.id}: shard(s) {missing} of {n} have not finished; rerun them "
                         "(cached clips are skipped) or pass --allow-incomplete")
    settings = [{k: v for k, v in r.items() if k not in SHARD_VOLATILE and k not in PER_SHARD} for r in records]
    for r, s in zip(records[1:], settings[1:]):
        differ = sorted(k for k in s.keys() | settings[0].keys() if s.get(k) != settings[0].get(k))
        if differ:
            raise ShardError(f"{store.id}: shard {r['shard'][0]} ran with other settings than shard "
                             f"{records[0]['shard'][0]} ({', '.join(differ)}); its clips are cached with "
                             f"them: delete {config.relative(store.dir)} and rerun every shard with the same settings")
    per_shard = {k: [r.get(k) for r in records] for k in PER_SHARD if k in records[0]}
    meta = {**settings[0], **{k: v[0] if all(x == v[0] for x in v) else v for k, v in per_shard.items()},
            "n_clips_without_this_modality": sum(r["n_clips_without_this_modality"] for r in records),
            "date": max(r["date"] for r in records), "shards": n, "shards_missing": missing,
            "seconds_this_run": max(r["seconds_this_run"] for r in records),  # shards run side by side
            "seconds_per_shard": [r["seconds_this_run"] for r in records],
            "stage_seconds": _sum_stages(r.get("stage_seconds", {}) for r in records)}
    meta = store.finalize(meta)
    for p in _shard_dir(store).glob("*.json"):  # merged: a later sharded run starts from a clean slate
        p.unlink()
    print(f"[{store.id}] merged {len(records)} shard(s): {meta['n_clips']} clips, {meta['n_failures']} failure(s)")
    return meta


def _sum_stages(stage_dicts) -> dict:
    total = {}
    for stages in stage_dicts:
        for name, s in stages.items():
            t = total.setdefault(name, {"seconds": 0.0, "calls": 0})
            t["seconds"] = round(t["seconds"] + s["seconds"], 4)
            t["calls"] += s["calls"]
    return total
