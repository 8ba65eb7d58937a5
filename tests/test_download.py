"""The RAVDESS downloader against a local fake Zenodo (no internet): download, resume, MD5, unzip, skip."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import threading
import wave
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from emoprobe.data import download

REPO = Path(__file__).resolve().parents[1]
NAME = "Audio_Speech_Actors_01-24.zip"
MEMBERS = ["Actor_01/03-01-01-01-01-01-01.wav", "Actor_02/03-01-05-02-01-02-02.wav"]


def tiny_wav(seed: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes((seed + i) % 256 for i in range(2000)))
    return buf.getvalue()


def make_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # stored, not deflated: big enough to cut in the middle
        for i, member in enumerate(MEMBERS):
            zf.writestr(member, tiny_wav(i))
    return buf.getvalue()


class FakeZenodo:
    """What the handler serves and what it saw. Tests flip the knobs between runs."""

    def __init__(self, data: bytes) -> None:
        self.files = {NAME: data}
        self.md5 = {NAME: hashlib.md5(data).hexdigest()}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.ignore_range = False
        self.cut_at: int | None = None  # next file response stops after this many bytes, once
        self.url = ""

    def file_requests(self) -> list[str | None]:
        """The Range header of each file request (None: no Range)."""
        return [rng for path, rng in self.requests if "/files/" in path]


def make_handler(state: FakeZenodo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def send(self, code: int, body: bytes, headers: dict[str, str] | None = None,
                 length: int | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Range")))
            path = urlsplit(self.path).path
            if path == f"/api/records/{download.RECORD}":
                files = [{"key": k, "checksum": f"md5:{state.md5[k]}", "size": len(v)}
                         for k, v in state.files.items()]
                return self.send(200, json.dumps({"files": files}).encode(),
                                 {"Content-Type": "application/json"})
            name = path.removeprefix(f"/records/{download.RECORD}/files/")
            if name not in state.files:
                return self.send(404, b"")
            data = state.files[name]
            m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            start = int(m.group(1)) if m and not state.ignore_range else None
            if start is not None and start >= len(data):
                return self.send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            code, body = (200, data) if start is None else (206, data[start:])
            headers = {} if start is None else {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            if state.cut_at is not None:  # promise the whole body, send part of it, hang up
                cut, state.cut_at = state.cut_at, None
                self.close_connection = True
                return self.send(code, body[:cut], headers, length=len(body))
            self.send(code, body, headers)

    return Handler


@pytest.fixture
def zen():
    state = FakeZenodo(make_zip())
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))  # port 0: any free port
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def fetch(zen: FakeZenodo, tmp_path: Path, **kw) -> list[str]:
    return download.download_ravdess("audio-speech", dest=tmp_path / "raw", base_url=zen.url,
                                     progress=False, **kw)


def get_file(zen: FakeZenodo, tmp_path: Path) -> Path:
    url = download.file_url(NAME, zen.url)
    return download.download_file(url, tmp_path / NAME, zen.md5[NAME], progress=False)


def assert_unpacked(tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(make_zip())) as zf:
        for member in MEMBERS:
            assert (tmp_path / "raw" / member).read_bytes() == zf.read(member)


def test_file_selection():
    assert download.ravdess_files() == [NAME]
    everything = download.ravdess_files("all")
    assert len(everything) == 2 + 24 + 23 and "Video_Song_Actor_18.zip" not in everything
    assert download.ravdess_files("video-song", [17, 18]) == ["Video_Song_Actor_17.zip"]
    assert download.ravdess_files(["video-speech", "audio-song"], [3]) == [
        "Audio_Song_Actors_01-24.zip", "Video_Speech_Actor_03.zip"]
    with pytest.raises(ValueError):
        download.ravdess_files("video-speech", [25])
    with pytest.raises(ValueError):
        download.ravdess_files("audio")
    assert download.parse_actors("1,2, 5-7") == [1, 2, 5, 6, 7]
    assert download.parse_md5_overrides(["AB" * 16], [NAME]) == {NAME: "ab" * 16}
    with pytest.raises(ValueError):
        download.parse_md5_overrides(["ab" * 16], [NAME, "x.zip"])  # ambiguous without NAME=


def test_download_verify_unzip(zen, tmp_path):
    assert fetch(zen, tmp_path) == [NAME]
    assert (tmp_path / "zips" / NAME).read_bytes() == zen.files[NAME]
    assert not (tmp_path / "zips" / f"{NAME}.part").exists()
    assert_unpacked(tmp_path)
    assert zen.file_requests() == [None]  # one plain GET, no Range
    assert sum("/api/records/" in p for p, _ in zen.requests) == 1


def test_resume_truncated_part(zen, tmp_path):
    data, n = zen.files[NAME], len(zen.files[NAME]) // 3
    (tmp_path / "zips").mkdir()
    (tmp_path / "zips" / f"{NAME}.part").write_bytes(data[:n])
    fetch(zen, tmp_path)
    assert zen.file_requests() == [f"bytes={n}-"]
    assert (tmp_path / "zips" / NAME).read_bytes() == data
    assert_unpacked(tmp_path)


def test_resume_after_dropped_connection(zen, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "CHUNK", 256)  # a chunk cut short is lost, so use chunks << the file
    data, n = zen.files[NAME], len(zen.files[NAME]) // 2
    zen.cut_at = n
    out = get_file(zen, tmp_path)
    first, second = zen.file_requests()
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", second).group(1))
    assert first is None and n - 256 < resumed_at <= n
    assert out.read_bytes() == data


def test_server_ignoring_range_restarts(zen, tmp_path):
    zen.ignore_range = True
    part = tmp_path / f"{NAME}.part"
    part.write_bytes(b"junk" * 100)  # would corrupt the file if the 200 body were appended
    out = get_file(zen, tmp_path)
    assert zen.file_requests() == ["bytes=400-"]
    assert out.read_bytes() == zen.files[NAME]


def test_complete_part_is_kept(zen, tmp_path):
    (tmp_path / f"{NAME}.part").write_bytes(zen.files[NAME])  # e.g. killed between download and rename
    out = get_file(zen, tmp_path)
    assert out.read_bytes() == zen.files[NAME]  # server said 416 with the full size: nothing to fetch


def test_bad_md5_is_reported_and_removed(zen, tmp_path):
    zen.md5[NAME] = "0" * 32
    with pytest.raises(download.ChecksumError) as err:
        fetch(zen, tmp_path)
    actual = hashlib.md5(zen.files[NAME]).hexdigest()
    assert NAME in str(err.value) and "0" * 32 in str(err.value) and actual in str(err.value)
    assert list((tmp_path / "zips").iterdir()) == []  # neither the zip nor a .part to resume
    assert not (tmp_path / "raw").exists()


def test_rerun_skips(zen, tmp_path):
    fetch(zen, tmp_path)
    n_requests = len(zen.requests)
    fetch(zen, tmp_path)
    assert len(zen.requests) == n_requests  # no API call, no download
    (tmp_path / "zips" / NAME).unlink()  # the unpack marker alone is enough
    fetch(zen, tmp_path)
    assert len(zen.requests) == n_requests


def test_existing_zip_is_verified_not_downloaded(zen, tmp_path):
    (tmp_path / "zips").mkdir()
    (tmp_path / "zips" / NAME).write_bytes(zen.files[NAME])
    fetch(zen, tmp_path)
    assert zen.file_requests() == []
    assert_unpacked(tmp_path)


def test_md5_override_and_no_verify_skip_the_api(zen, tmp_path):
    fetch(zen, tmp_path / "a", md5={NAME: zen.md5[NAME]})
    fetch(zen, tmp_path / "b", verify=False, keep_zips=False)
    assert not any("/api/" in p for p, _ in zen.requests)
    assert not (tmp_path / "b" / "zips" / NAME).exists()
    assert_unpacked(tmp_path / "a")
    assert_unpacked(tmp_path / "b")


def test_cli(zen, tmp_path):
    """The script with the venv's python, from another folder (the package is installed, no sys.path):
    user errors end it with one line on stderr and exit status 2."""
    script = [sys.executable, str(REPO / "experiments" / "download_ravdess.py"), "--base-url", zen.url,
              "--dest", str(tmp_path / "raw"), "--zip-dir", str(tmp_path / "z")]

    def run(*extra):
        return subprocess.run(script + list(extra), capture_output=True, text=True, timeout=60, cwd=tmp_path)

    ok = run()
    assert ok.returncode == 0, ok.stderr
    assert_unpacked(tmp_path)
    bad = run("--dest", str(tmp_path / "raw2"), "--zip-dir", str(tmp_path / "z2"), "--md5", "1" * 32)
    assert bad.returncode == 2 and "MD5 mismatch" in bad.stderr and "1" * 32 in bad.stderr
    error = [line for line in bad.stderr.splitlines() if "error" in line]  # stderr also has the progress bar
    assert len(error) == 1 and error[0].startswith("download_ravdess.py: error: ") and "MD5 mismatch" in error[0]
    for args, message in [(["--actors", "1-x"], "--actors 1-x: expected numbers"),
                          (["--md5", "xyz"], "not a 32-digit hex MD5")]:
        usage = run(*args)
        assert usage.returncode == 2 and message in usage.stderr and len(usage.stderr.splitlines()) == 1
