"""Download RAVDESS from Zenodo (record 1188976), check the published MD5s, and unpack it.

Each zip is streamed to `<name>.part`, resumed with an HTTP Range request after an interruption,
checked against its MD5 and only then renamed to `<name>`, so a file under its final name is whole.
Unpacking writes a marker file last; a rerun skips every zip whose marker exists.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import requests
from tqdm import tqdm

from .. import config
from . import labels

ZENODO = "https://zenodo.org"
RECORD = "1188976"
WHAT = ("audio-speech", "audio-song", "video-speech", "video-song")  # plus "all"
CHUNK = 1 << 20  # 1 MiB: few writes, and a progress bar that still moves
TIMEOUT = 60.0  # seconds without a byte before giving up on a connection (then resume)


class ChecksumError(RuntimeError):
    """A downloaded file does not have its published MD5."""


def ravdess_files(what: str | Iterable[str] = "audio-speech",
                  actors: Iterable[int] | None = None) -> list[str]:
    """The zip names to fetch. `actors` (1-24, default all) only narrows the per-actor video zips."""
    kinds = [what] if isinstance(what, str) else list(what)
    if "all" in kinds:
        kinds = list(WHAT)
    unknown = set(kinds) - set(WHAT)
    if unknown:
        raise ValueError(f"unknown --what {sorted(unknown)}; choose from {', '.join(WHAT)}, all")
    actors = sorted(set(actors)) if actors is not None else list(range(1, labels.N_ACTORS + 1))
    bad = [a for a in actors if not 1 <= a <= labels.N_ACTORS]
    if bad:
        raise ValueError(f"actors must be 1-{labels.N_ACTORS}, got {bad}")
    names = []
    for kind in WHAT:  # fixed order, whatever order the caller gave
        if kind not in kinds:
            continue
        media, channel = kind.split("-")
        if media == "audio":  # one archive holds all 24 actors
            names.append(f"Audio_{channel.title()}_Actors_01-24.zip")
            continue
        for a in actors:
            if channel == "song" and a in labels.SONG_MISSING_ACTORS:
                continue  # actor 18 recorded no song; Zenodo has no such zip
            names.append(f"Video_{channel.title()}_Actor_{a:02d}.zip")
    return names


def parse_actors(text: str) -> list[int]:
    """'1,2,5-8' -> [1, 2, 5, 6, 7, 8]."""
    actors: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        if not (lo.strip().isdigit() and (hi.strip().isdigit() or not hi)):
            raise ValueError(f"--actors {text}: expected numbers and ranges like 1,2,5-8")
        actors.update(range(int(lo), int(hi or lo) + 1))
    return sorted(actors)


def parse_md5_overrides(items: Iterable[str], names: list[str]) -> dict[str, str]:
    """['NAME=HEX', ...] -> {NAME: hex}; a bare HEX is allowed when exactly one file is selected."""
    out = {}
    for item in items:
        name, sep, digest = item.rpartition("=")
        if not sep:
            if len(names) != 1:
                raise ValueError(f"--md5 {item}: say which file (NAME=HEX); {len(names)} files are selected")
            name = names[0]
        digest = digest.strip().lower().removeprefix("md5:")
        if not re.fullmatch(r"[0-9a-f]{32}", digest):
            raise ValueError(f"--md5 {item}: not a 32-digit hex MD5")
        out[name] = digest
    return out


def file_url(name: str, base_url: str = ZENODO, record: str = RECORD) -> str:
    return f"{base_url.rstrip('/')}/records/{record}/files/{name}?download=1"


def fetch_md5s(base_url: str = ZENODO, record: str = RECORD, timeout: float = 30.0,
               session: requests.Session | None = None) -> dict[str, str]:
    """{file name: md5 hex} as published in the record's JSON (`files[*].key`, `files[*].checksum`)."""
    url = f"{base_url.rstrip('/')}/api/records/{record}"
    try:
        r = (session or requests).get(url, timeout=timeout)
        r.raise_for_status()
        files = r.json()["files"]
    except (requests.RequestException, ValueError, KeyError) as err:
        raise RuntimeError(f"could not read the published MD5s from {url}: {err}. "
                           "Pass --md5 NAME=HEX, or --no-verify to skip the check.") from err
    if isinstance(files, dict):  # InvenioRDM's /files endpoint nests them under "entries"
        files = files.get("entries", [])
    return {f["key"]: f["checksum"].split(":", 1)[1].lower()
            for f in files if f.get("checksum", "").startswith("md5:")}


def md5sum(path: str | os.PathLike) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _total_size(content_range: str | None) -> int | None:
    """The full size from 'bytes 100-199/200' or 'bytes */200'; None if absent or '*'."""
    m = re.search(r"/(\d+)\s*$", content_range or "")
    return int(m.group(1)) if m else None


def _fetch(url: str, part: Path, session: requests.Session, progress: bool, timeout: float) -> None:
    """Bring `part` up to the whole file, appending to what is already there when the server allows."""
    done = part.stat().st_size if part.exists() else 0
    # identity: a Range counts bytes of the file as stored, so no transparent gzip on the way.
    headers = {"Accept-Encoding": "identity"} | ({"Range": f"bytes={done}-"} if done else {})
    with session.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416:  # nothing left past `done`: the .part is whole already, or junk
            if _total_size(r.headers.get("Content-Range")) == done:
                return
            part.unlink()
            r.close()
            return _fetch(url, part, session, progress, timeout)  # once: done == 0 sends no Range
        r.raise_for_status()
        if r.status_code == 206:
            if not r.headers.get("Content-Range", "").startswith(f"bytes {done}-"):
                part.unlink()  # some other range came back; the retry starts from zero
                raise requests.ConnectionError(f"{part.name}: server sent the wrong range")
            mode, total = "ab", _total_size(r.headers.get("Content-Range"))
        else:  # 200: the server ignored Range and sent the whole file, so start over
            done, mode = 0, "wb"
            total = int(r.headers["Content-Length"]) if "Content-Length" in r.headers else None
        bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name.removesuffix(".part"), disable=not progress)
        with open(part, mode) as f, bar:
            for chunk in r.iter_content(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise requests.ConnectionError(f"{part.name}: connection closed at {size} of {total} bytes")


def download_file(url: str, path: str | os.PathLike, md5: str | None = None, *, retries: int = 5,
                  session: requests.Session | None = None, progress: bool = True,
                  timeout: float = TIMEOUT) -> Path:
    """Download url to path via path.part, resuming it; check `md5` (if given) before the rename."""
    path = Path(path)
    part = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    session = session or requests.Session()
    for attempt in range(1, retries + 1):
        try:
            _fetch(url, part, session, progress, timeout)
            break
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
            if attempt == retries:
                raise
            print(f"{path.name}: {err}; resuming (try {attempt + 1} of {retries})", file=sys.stderr)
    if md5:
        actual = md5sum(part)
        if actual != md5.lower():
            part.unlink()  # a resume would only append to the bad bytes
            raise ChecksumError(f"{path.name}: MD5 mismatch: expected {md5.lower()}, got {actual}. "
                                f"Deleted {part}; run again to re-download (or check --md5).")
    part.replace(path)
    return path


def _marker(dest: Path, name: str) -> Path:
    return dest / f".{name}.unpacked"


def unpack(zip_path: str | os.PathLike, dest: str | os.PathLike) -> bool:
    """Extract zip_path into dest unless done before; False if skipped."""
    zip_path, dest = Path(zip_path), Path(dest)
    marker = _marker(dest, zip_path.name)
    if marker.exists():
        return False
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)  # strips absolute paths and '..', so entries stay inside dest
    marker.write_text(f"{zip_path.name}\n")  # last, so an interrupted extraction is redone
    return True


def download_ravdess(what: str | Iterable[str] = "audio-speech", actors: Iterable[int] | None = None,
                     dest: str | os.PathLike = config.RAW, zip_dir: str | os.PathLike | None = None, *,
                     md5: Mapping[str, str] | None = None, verify: bool = True, keep_zips: bool = True,
                     base_url: str = ZENODO, record: str = RECORD, progress: bool = True) -> list[str]:
    """Fetch, check and unpack the selected RAVDESS zips into dest; return the names processed.

    Zips go to zip_dir (default: `zips/` next to dest). `md5` overrides published checksums per
    file name; the record's JSON is read only when a file still needs a checksum.
    """
    dest = Path(dest)
    zip_dir = Path(zip_dir) if zip_dir is not None else dest.parent / "zips"
    names = ravdess_files(what, actors)
    overrides = {k: v.lower() for k, v in (md5 or {}).items()}
    published: dict[str, str] | None = None
    with requests.Session() as session:
        for name in names:
            if _marker(dest, name).exists():
                print(f"{name}: already unpacked in {dest}, skipping")
                continue
            expected = None
            if verify:
                expected = overrides.get(name)
                if expected is None:
                    if published is None:
                        published = fetch_md5s(base_url, record, session=session)
                    if name not in published:
                        raise RuntimeError(f"{name}: no MD5 in Zenodo record {record}; "
                                           "pass --md5 or --no-verify")
                    expected = published[name]
            zip_path = zip_dir / name
            if zip_path.exists() and expected and md5sum(zip_path) != expected:
                print(f"{name}: existing file does not match its MD5, downloading it again")
                zip_path.unlink()
            if zip_path.exists():
                print(f"{name}: already downloaded" + (" and verified" if expected else ""))
            else:
                download_file(file_url(name, base_url, record), zip_path, expected,
                              session=session, progress=progress)
            print(f"{name}: unpacking into {dest}")
            unpack(zip_path, dest)
            if not keep_zips:
                zip_path.unlink()
    return names
