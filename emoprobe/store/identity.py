"""What a cached clip was made from, so that a cache never serves an embedding of other input.

Each clip's cache file records its IDENTITY: the source as given (path), the data root it came from,
the file's size, modification time and content hash (BLAKE2b), and the digest of the encoder's
configuration (`config_digest`: its registered facts and provenance, i.e. weights and their digest
where the encoder records one, options, variant, sample rate, precision, first seconds, sequences).
On a rerun (`Cache.check`), a cached clip is reused only when its configuration digest is the same
and its source is the same content: the same path with the same size and modification time (the
hash is then taken as recorded, as git does: a file replaced by one of the same size and time
is not noticed), or a file with the same hash. Otherwise:
    - configuration changed, or the same path now holds other content: the clip is embedded again;
    - another path with other content under the same key: an error naming both (two corpora whose
      clip keys collide in one store: give one of them other keys, or another --embeddings-dir).
Clips cached before identities were recorded are kept and counted (delete the store to redo them).
The device and batch size are not part of the configuration: they change results only within the
tolerance benchmarks/run.py measures.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

CHUNK = 1 << 20  # bytes read at a time when hashing


class KeyCollisionError(UserError):
    """Two different sources under one clip key in one store."""


def file_hash(path: str | os.PathLike) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def source_identity(source, data_root: str | None = None, hashed: dict | None = None, with_hash: bool = True) -> dict:
    """The identity of one clip's source: a file's path, size, mtime and (with_hash) content hash; a
    source that is not a file (e.g. a row of a table) is identified by its text. hashed: {(path,
    size, mtime): hash} of this run, so that a file shared by many clips is read once."""
    out = {"source": str(source), "data_root": data_root}
    path = Path(str(source))
    if not path.is_file():
        return out
    stat = path.stat()
    out.update(path=str(path.resolve()), size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    if with_hash:
        out["blake2b"] = content_hash(out, {} if hashed is None else hashed)
    return out


def content_hash(file: dict, hashed: dict) -> str:
    """The hash of a file identity's content, read once per (path, size, mtime) in this run."""
    stamp = (file["path"], file["size"], file["mtime_ns"])
    if stamp not in hashed:
        hashed[stamp] = file_hash(file["path"])
    return hashed[stamp]


def config_digest(encoder) -> str:
    """The digest of what decides an encoder's output for a given input (see the module's docstring)."""
    facts = {**encoder.meta(), **encoder.facts(), "sequences": getattr(encoder, "sequences", None),
             "seed": getattr(encoder, "seed", None) if getattr(encoder, "random_init", False) else None}
    text = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass
class Verdict:
    """What a rerun does with a store's cached clips: fresh ones are reused; stale ones (key -> why)
    are embedded again; legacy ones (cached without an identity) are kept."""

    fresh: set = field(default_factory=set)
    stale: dict = field(default_factory=dict)
    legacy: set = field(default_factory=set)

    def describe(self) -> str:
        reasons = {}
        for why in self.stale.values():
            reasons[why] = reasons.get(why, 0) + 1
        parts = [f"{n} re-embedded ({why})" for why, n in sorted(reasons.items())]
        if self.legacy:
            parts.append(f"{len(self.legacy)} cached before sources were recorded, kept")
        return "; ".join(parts)


def check(recorded: dict[str, dict | None], current: dict[str, dict], config: str, store_id: str,
          hashed: dict) -> Verdict:
    """Compare the identities recorded in a store's cache (key -> identity, None when not recorded)
    with this run's sources (key -> source_identity, hashed only where needed: `hashed`) and configuration."""
    verdict = Verdict()
    for key, was in recorded.items():
        if key not in current:
            continue  # a clip of another corpus or run: not this run's business
        now = current[key]
        if was is None:
            verdict.legacy.add(key)
        elif was.get("config") != config:
            verdict.stale[key] = "encoder configuration changed"
        elif same_source(was, now, hashed):
            verdict.fresh.add(key)
        elif was.get("path", was["source"]) == now.get("path", now["source"]):  # the same file, rewritten
            verdict.stale[key] = "source file changed"
        else:
            raise KeyCollisionError(
                f"clip key {key!r}: {store_id} holds it embedded from {was['source']}, and this run gives "
                f"{now['source']}, another file with other content. Another recording: give one corpus other "
                "keys (e.g. a prefix in its manifest) or use another --embeddings-dir; the same recording in "
                "another file (e.g. a FLAC copy of a WAV): delete the store to embed it again")
    return verdict


def same_source(was: dict, now: dict, hashed: dict) -> bool:
    """Whether a recorded identity and a current source are the same content."""
    if "blake2b" not in was or "path" not in now:  # a source that is not a file is its text
        return "blake2b" not in was and "path" not in now and was["source"] == now["source"]
    if (was["path"], was["size"], was["mtime_ns"]) == (now["path"], now["size"], now["mtime_ns"]):
        return True  # unchanged on disk: the recorded hash stands
    return content_hash(now, hashed) == was["blake2b"]
