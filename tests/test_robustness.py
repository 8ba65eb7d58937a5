"""Robustness of the real extraction path: bad inputs, kill -9, shards, and reproducible probes.

Everything is generated in temporary folders: a RAVDESS-named tree holding a corpus of bad and odd
inputs (empty, truncated, mislabelled, silent, too short, stereo, other rates, a missing modality)
goes through experiments/extract_audio.py with the cheap logmel encoder and through the video decode
path; each bad input must be recorded with a clear message while every good clip is kept. The
kill/shard tests run the real command-line scripts in subprocesses (~5 s of imports each).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import REPO, script_main, tone, write_audio
from corpus import write_mp4 as mp4_of
from fakes import FunctionEncoder

from emoprobe.data import clips as clip_table
from emoprobe.data import folds, labels, ravdess
from emoprobe.encoders import pool
from emoprobe.media import BadMediaError
from emoprobe.media.audio import load_audio
from emoprobe.media.video import decode_frames
from emoprobe.store.extract import run_extraction
from emoprobe.store.shards import ShardError, merge_shards, parse_shard, select_shard
from emoprobe.store.store import EmbeddingStore

SUBPROCESS_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
extract_audio, merge_script = script_main("extract_audio"), script_main("merge_shards")


def name(i: int, modality: int = 3, suffix: str = ".wav") -> str:
    """The i-th valid RAVDESS file name (speech; emotions 02-08 so intensity 02 is allowed)."""
    emotion, intensity, repetition, actor = 2 + i % 7, 1 + i // 7 % 2, 1 + i // 14 % 2, 1 + i // 28
    return f"{modality:02d}-01-{emotion:02d}-{intensity:02d}-01-{repetition:02d}-{actor:02d}{suffix}"


def key(filename: str) -> str:
    return ravdess.parse_name(filename).clip


def write_mp4(path: Path, video=True, audio_track=True, n_frames=12, seconds=0.6) -> Path:
    """A small H.264 (64x48) + AAC stereo mp4, like a RAVDESS audio-video clip in miniature."""
    frames = np.stack([np.full((48, 64, 3), 10 + 6 * i, np.uint8) for i in range(n_frames)])
    return mp4_of(path, frames if video else None, tone(seconds, channels=2) if audio_track else None)


def truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


# ---------------------------------------------------------------------------------------------
# The corpus: clip key -> None (must be embedded), NO_SOURCE (modality absent: counted, not failed)
# or the words its failure message must contain
# ---------------------------------------------------------------------------------------------
NO_SOURCE = "no source"


def build_corpus(root: Path) -> tuple[dict[str, str | None], dict[str, str | None], list[str]]:
    """Write the tree; return (audio expectations, video expectations, foreign file names)."""
    actor = root / "Actor_01"
    actor.mkdir(parents=True)
    numbers = iter(range(100))
    audio_cases, video_cases = {}, {}

    def wav(samples, expect=None, rate=48000, suffix=".wav", subtype="PCM_16", cut=None):
        filename = name(next(numbers), suffix=suffix)
        sf.write(actor / filename, samples, rate, subtype=subtype)
        if cut is not None:
            truncate(actor / filename, cut)
        audio_cases[key(filename)] = expect

    wav(tone(0.5, kind="noise"))  # plain mono 48 kHz
    wav(tone(0.5, channels=2))  # stereo
    for rate in (8000, 22050, 44100):
        wav(tone(0.5, rate=rate), rate=rate)
    wav(tone(0.5), suffix=".flac")
    wav(tone(0.5), suffix=".WAV")  # upper-case extension
    wav(np.zeros((24000, 1), np.float32), "silent")
    wav(tone(0.05), "too short")
    nan = tone(0.5)
    nan[100] = np.nan
    wav(nan, "NaN", subtype="FLOAT")
    wav(tone(0.5), "empty file (0 bytes)", cut=0.0)
    wav(tone(0.5), "unreadable audio", cut=30 / 48044)  # cut inside the header
    wav(tone(0.5), "unreadable audio", suffix=".flac", cut=0.5)
    text = name(next(numbers))
    (actor / text).write_text("this is not a recording")  # a text file with a .wav name
    audio_cases[key(text)] = "unreadable audio"

    def mp4(modality, audio_expect, video_expect, cut=None, **kw):
        filename = name(next(numbers), modality, ".mp4")
        write_mp4(actor / filename, **kw)
        if cut is not None:
            truncate(actor / filename, cut)
        audio_cases[key(filename)], video_cases[key(filename)] = audio_expect, video_expect

    # audio-video clips (01-) have no audio-only file here: their audio comes from the mp4
    mp4(1, None, None)
    mp4(1, "undecodable audio", "not a readable video", cut=0.5)
    mp4(1, "empty file (0 bytes)", "empty file (0 bytes)", cut=0.0)
    mp4(1, None, "no video stream", video=False)  # an audio-only mp4 under an audio-video name
    mp4(2, NO_SOURCE, None, audio_track=False)  # a video-only clip (02-): no audio to embed
    mp4(1, None, None, n_frames=1, seconds=0.3)  # a single video frame
    for k in [k for k in audio_cases if k not in video_cases]:  # audio-only clips: no video to embed
        video_cases[k] = NO_SOURCE

    foreign = ["notes.wav", "03-01-09-01-01-01-01.wav", "03-01-01-02-01-01-01.wav",  # emotion 09; strong neutral
               "03-01-02-01-01-01-01.mp4", "01-01-02-01-01-01-01.wav", "03-01-02-01-01.wav"]
    for filename in foreign:
        write_mp4(actor / filename) if filename.endswith(".mp4") else write_audio(actor / filename, tone(0.3))
    return audio_cases, video_cases, foreign


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "ravdess"
    return (root, *build_corpus(root))


def check_outcome(store: EmbeddingStore, cases: dict[str, str | None], meta: dict):
    """Every good clip embedded, every bad clip recorded once with its message and its file."""
    good = {k for k, why in cases.items() if why is None}
    assert meta["n_clips_without_this_modality"] == sum(why == NO_SOURCE for why in cases.values())
    assert store.load("mean")[0] == sorted(good)
    failures = {f["clip"]: f for f in store.failures()}
    expected_bad = {k: why for k, why in cases.items() if why not in (None, NO_SOURCE)}
    assert failures.keys() == expected_bad.keys()
    for k, why in expected_bad.items():
        message = failures[k]["error"]
        assert why in message, f"{k}: {message!r} does not say {why!r}"
        assert Path(failures[k]["source"]).name in message  # names the file
        assert "BadMediaError" in message  # a diagnosed input problem, not a crash of our code
    assert meta["n_failures"] == len(expected_bad) and meta["n_clips"] == len(good)


def test_bad_audio_inputs_are_recorded_and_the_batch_goes_on(corpus, tmp_path, capsys):
    root, audio_cases, _, foreign = corpus
    extract_audio(["--data-root", str(root), "--encoders", "logmel", "--batch-size", "4",
                   "--embeddings-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"skipped {len(foreign)} file(s)" in out  # foreign names are reported by the index ...
    for filename in foreign:
        assert filename in out
    store = EmbeddingStore("audio", "logmel", tmp_path)
    check_outcome(store, audio_cases, store.meta())  # ... and everything else is embedded or recorded
    by_key = dict(zip(*store.load("mean")))
    assert all(np.isfinite(v).all() for v in by_key.values())
    for k, why in audio_cases.items():  # 10 ms frames: sequences follow each clip's true duration,
        if why is None:  # whatever its rate or channel count (0.5 s -> 2 windows of 0.25 s)
            assert len(store.sequence(k)) in (2, 3)


def test_truncated_wav_mid_data_is_not_silently_shortened(tmp_path):
    path = write_audio(tmp_path / name(0), tone(1.0))
    truncate(path, 0.6)
    if "should be" not in sf.info(path).extra_info:
        pytest.skip("this libsndfile does not report the header/data mismatch")
    with pytest.raises(BadMediaError, match="truncated"):
        load_audio(path)


def test_bad_video_inputs_are_recorded_and_the_batch_goes_on(corpus, tmp_path):
    root, _, video_cases, _ = corpus
    clips = clip_table.load(root, modality="video", verbose=False)

    def encode(clips_frames):  # mean colour per frame: a cheap stand-in for the video model
        return [pool(f.reshape(len(f), -1, 3).mean(axis=1), 30.0) for f in clips_frames]

    encoder = FunctionEncoder("mean-colour", encode, modality="video")
    out = run_extraction(clips, [encoder], load=lambda path: decode_frames(path, 4, 32).frames, root=tmp_path,
                         batch_size=2)
    check_outcome(EmbeddingStore("video", "mean-colour", tmp_path), video_cases, out["video/mean-colour"])


# ---------------------------------------------------------------------------------------------
# kill -9 and shards: the real scripts in subprocesses
# ---------------------------------------------------------------------------------------------
N_KILL_CLIPS = 30
SLOW_WRAPPER = """
import runpy, sys, time
from emoprobe.encoders import handcrafted
original = handcrafted.SpectralEncoder.encode
def slow_encode(self, waves):  # an artificially slow model, so that the kill lands mid-run
    time.sleep({delay} * len(waves))
    return original(self, waves)
handcrafted.SpectralEncoder.encode = slow_encode
sys.argv = ["extract_audio.py", *sys.argv[1:]]
runpy.run_path({script!r}, run_name="__main__")
"""


@pytest.fixture(scope="module")
def kill_data(tmp_path_factory):
    """30 clips of different lengths, and the store an uninterrupted run makes of them."""
    base = tmp_path_factory.mktemp("kill")
    for i in range(N_KILL_CLIPS):
        write_audio(base / "ravdess" / f"Actor_{1 + i // 28:02d}" / name(i), tone(0.3 + 0.02 * i, kind="noise", seed=i))
    extract_audio(["--data-root", str(base / "ravdess"), "--encoders", "logmel",
                   "--embeddings-dir", str(base / "reference")])
    return base


def cli(base, embeddings, *extra, delay=0.0):
    wrapper = base / f"slow_{delay}.py"
    script = REPO / "experiments" / "extract_audio.py"
    wrapper.write_text(SLOW_WRAPPER.format(delay=delay, script=str(script)))
    return [sys.executable, str(wrapper), "--data-root", str(base / "ravdess"), "--encoders", "logmel",
            "--embeddings-dir", str(embeddings), *extra]


def assert_same_store(a: EmbeddingStore, b: EmbeddingStore):
    for pooling in ("mean", "meanstd"):
        (keys_a, xa), (keys_b, xb) = a.load(pooling), b.load(pooling)
        assert keys_a == keys_b and len(set(keys_b)) == len(keys_b)  # same rows, none twice
        np.testing.assert_array_equal(xa, xb)
    for k in a.load("mean")[0]:
        np.testing.assert_array_equal(a.sequence(k), b.sequence(k))


def test_kill_9_mid_run_then_rerun_gives_the_uninterrupted_result(kill_data):
    embeddings = kill_data / "killed"
    store = EmbeddingStore("audio", "logmel", embeddings)
    proc = subprocess.Popen(cli(kill_data, embeddings, delay=0.15), env=SUBPROCESS_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(store.done_keys()) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(store.done_keys())
    assert proc.returncode == -signal.SIGKILL and 8 <= n_done < N_KILL_CLIPS, "the kill must land mid-run"
    assert not (store.dir / "meta.json").exists()  # nothing half-finalized
    for path in store.clip_dir.glob("*.npz"):  # every clip file on disk is whole
        with np.load(path) as z:
            assert {"mean", "meanstd", "sequence"} <= set(z.files)

    rerun = subprocess.run(cli(kill_data, embeddings), env=SUBPROCESS_ENV, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{n_done} clip(s) cached, {N_KILL_CLIPS - n_done} to embed" in rerun.stdout
    assert_same_store(EmbeddingStore("audio", "logmel", kill_data / "reference"), store)
    assert store.meta()["n_clips"] == N_KILL_CLIPS and store.failures() == []


def test_concurrent_shards_then_merge_give_the_single_run_result(kill_data):
    embeddings = kill_data / "sharded"
    procs = [subprocess.Popen(cli(kill_data, embeddings, "--shard", f"{i}/2"), env=SUBPROCESS_ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        assert "merge_shards.py audio/logmel" in out  # tells the user the next step
    store = EmbeddingStore("audio", "logmel", embeddings)
    assert len(store.done_keys()) == N_KILL_CLIPS and not (store.dir / "meta.json").exists()
    merge_script(["--embeddings-dir", str(embeddings)])  # finds the store by its shard records
    assert_same_store(EmbeddingStore("audio", "logmel", kill_data / "reference"), store)
    meta = store.meta()
    assert meta["shards"] == 2 and meta["n_clips"] == N_KILL_CLIPS and len(meta["seconds_per_shard"]) == 2
    assert not list((store.dir / "shards").glob("*.json"))  # merged: records cleared


# ---------------------------------------------------------------------------------------------
# shard selection and merging, in process
# ---------------------------------------------------------------------------------------------
def test_shards_partition_the_clips():
    clips = pd.DataFrame({"key": [key(name(i)) for i in range(23)]}).sample(frac=1, random_state=0)
    for n in (1, 2, 3, 5, 30):
        parts = [select_shard(clips, f"{i}/{n}") for i in range(n)]
        keys = [k for part in parts for k in part.key]
        assert sorted(keys) == sorted(clips.key)  # every clip in exactly one shard
        assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced


def test_shard_spec_parsing(monkeypatch):
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/4", "1", "a/b", "1/0"):
        with pytest.raises(ShardError, match="shard"):
            parse_shard(bad)
    for var in ("RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ShardError, match="auto"):
        parse_shard("auto")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")  # sbatch --array=1-4: ids start at 1
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    assert parse_shard("auto") == (2, 4)
    monkeypatch.setenv("RANK", "1")  # torchrun
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert parse_shard("auto") == (1, 2)


def test_a_bad_shard_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        extract_audio(["--shard", "2/2"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "need 0 <= i < n" in err and len(err.splitlines()) == 1


def fake_clips(tmp_path, n=6):
    rows = [{"key": key(name(i)), "source": str(write_audio(tmp_path / name(i), tone(0.3, kind="noise", seed=i)))}
            for i in range(n)]
    return pd.DataFrame(rows)


def fake_encode(waves):
    return [pool(w[: len(w) // 160 * 160].reshape(-1, 160)[:, :4], 100.0) for w in waves]


FAKE = FunctionEncoder("fake", fake_encode)


def test_merge_refuses_missing_shards_and_mixed_settings(tmp_path):
    clips = fake_clips(tmp_path)
    store = EmbeddingStore("audio", "fake", tmp_path / "emb")
    run = dict(encoders=[FAKE], load=load_audio, root=tmp_path / "emb")
    run_extraction(clips, meta={"bf16": False}, shard="0/3", **run)
    run_extraction(clips, meta={"bf16": False}, shard="2/3", **run)
    with pytest.raises(ShardError, match=r"shard\(s\) \[1\] of 3 have not finished"):
        merge_shards(store)
    run_extraction(clips, meta={"bf16": True}, shard="1/3", **run)
    with pytest.raises(ShardError, match="other settings.*bf16"):
        merge_shards(store)
    assert not (store.dir / "meta.json").exists()


def test_merge_of_every_shard_equals_a_single_run(tmp_path):
    clips = fake_clips(tmp_path, n=7)
    single = EmbeddingStore("audio", "fake", tmp_path / "single")
    run_extraction(clips, [FAKE], load_audio, root=tmp_path / "single")
    sharded = EmbeddingStore("audio", "fake", tmp_path / "sharded")
    for i in (2, 0, 1):
        run_extraction(clips, [FAKE], load_audio, root=tmp_path / "sharded", shard=f"{i}/3")
    meta = merge_shards(sharded)
    assert meta["n_clips"] == 7 and meta["shards"] == 3 and meta["shards_missing"] == []
    assert_same_store(single, sharded)


def test_an_incomplete_merge_can_be_forced(tmp_path):
    clips = fake_clips(tmp_path)
    clips.loc[0, "source"] = None  # a clip without this modality, in shard 0
    store = EmbeddingStore("audio", "fake", tmp_path / "emb")
    run_extraction(clips, [FAKE], load_audio, root=tmp_path / "emb", shard="0/2")
    meta = merge_shards(store, allow_incomplete=True)
    assert meta["shards_missing"] == [1] and meta["n_clips"] == 2  # 3 clips in shard 0, one without source
    assert meta["n_clips_without_this_modality"] == 1


# ---------------------------------------------------------------------------------------------
# reproducible probes
# ---------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_probe_results(monkeypatch):
    import torch

    from emoprobe import probes
    from emoprobe.probes import mlp

    torch.set_num_threads(1)
    monkeypatch.setattr(mlp, "MLP_STEPS", 30)  # reproducibility needs few steps
    rng = np.random.default_rng(0)
    rows = [{"key": f"01-{e:02d}-01-01-01-{a:02d}", "emotion": e, "label": labels.EMOTIONS[e], "speaker": a}
            for a in range(1, 25) for e in labels.EMOTIONS]
    clips = pd.DataFrame(rows).sort_values("key").reset_index(drop=True)
    clips["fold"] = clips.speaker.map(folds.emobox_fold_of())  # as the RAVDESS index gives them
    flat = rng.normal(size=(9, 8))[clips.emotion] + rng.normal(size=(len(clips), 8))
    layered = np.stack([flat + rng.normal(size=flat.shape) * s for s in (2.0, 0.5)], axis=1).astype(np.float32)
    features = [probes.FeatureSet("audio/layered", list(clips.key), layered)]  # per-layer linear + MLP

    def grid():
        results, predictions, *_ = probes.run_grid(clips, features, seeds=(0, 1), log=lambda *_: None)
        return results, predictions

    (results_a, preds_a), (results_b, preds_b) = grid(), grid()
    assert set(results_a.probe) == {"linear", "mlp"} and set(results_a.seed) == {0, 1}
    pd.testing.assert_frame_equal(results_a, results_b)
    pd.testing.assert_frame_equal(preds_a, preds_b)
