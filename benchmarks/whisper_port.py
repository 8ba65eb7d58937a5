"""Whisper tiny.en and base from CTranslate2 weights in transformers: fidelity and cost on real clips.

    python benchmarks/whisper_port.py                                   # 10 clips checked, 5 timed
    python benchmarks/whisper_port.py --clips 2 --timing-clips 2 --models tiny.en   # a quick try

Per model (emoprobe/encoders/whisper.py):
  port       the port's final layer (after the final layer norm) vs CTranslate2's own encoder output
             on the same 30 s log-mel: cosine per frame (all 1500) and max |difference|, per clip;
  timing     seconds per clip of context "30s" vs "clip", each in fp32 and bf16 (CTranslate2's 30 s
             encode for reference), after one warm-up clip;
  bf16       per layer, cosine and relative L2 error of mean-pooled embeddings, bf16 vs fp32;
  contexts   per layer, cosine of mean-pooled embeddings, "clip" vs "30s" (how much the context
             changes the representation; which is better for emotion needs UA on all clips);
  between    per layer, cosine of mean-pooled embeddings of different clips: the scale against which
             the cosines above are read.
Writes results/benchmarks/whisper_port.json (paths relative to the repository). Not a test: times
depend on the machine and on what else runs on it.
"""

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is offline: fail fast if the hub is asked

import numpy as np
import torch

from emoprobe.encoders import get_encoder
from emoprobe.encoders import whisper as W
from emoprobe.media.audio import load_audio

CLIPS = 10  # clips for the CTranslate2 check
TIMING_CLIPS = 5  # clips timed per configuration (and used for the bf16 and context comparisons)
THREADS = 1  # one thread: the 2 shared cores run other jobs, and 1 thread gives steadier times
OUT = REPO / "results" / "benchmarks" / "whisper_port.json"
RAVDESS = REPO.parent / "shared" / "data" / "ravdess"  # the developers' copy of the speech audio


def pick_clips(root: Path, n: int) -> list[Path]:
    """n speech clips spread evenly over the sorted list (actors, emotions, statements vary)."""
    clips = sorted(root.glob("Actor_*/03-01-*.flac"))
    if len(clips) < n:
        sys.exit(f"found {len(clips)} RAVDESS speech clips under {root}, need {n}")
    return [clips[round(i * (len(clips) - 1) / max(1, n - 1))] for i in range(n)]


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
             if line.startswith("model name")] if info.exists() else []
    return names[0] if names else platform.processor() or platform.machine()


def cosine(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def timed_means(encoder, waves) -> tuple[list[float], np.ndarray]:
    """(seconds per clip, mean-pooled embeddings (clips, layers, D)), one clip per call after a warm-up."""
    encoder.encode(waves[:1])
    seconds, means = [], []
    for wave in waves:
        start = time.perf_counter()
        [out] = encoder.encode([wave])
        seconds.append(time.perf_counter() - start)
        means.append(out["mean"])
    return seconds, np.stack(means)


def summary(seconds: list[float]) -> dict:
    return {"mean_s": round(float(np.mean(seconds)), 4), "median_s": round(float(np.median(seconds)), 4),
            "per_clip_s": [round(s, 4) for s in seconds]}


def per_layer(values: np.ndarray, how) -> list[float]:
    """values (clips, layers) -> one figure per layer (min or mean over clips), rounded."""
    return [round(float(v), 6) for v in how(values, axis=0)]


def bench_model(model: str, waves: list[np.ndarray], n_check: int, n_timing: int) -> dict:
    import ctranslate2

    encoder = get_encoder(f"whisper-{model}", context="30s", sequences=False)
    ct2 = W.ct2_whisper(model, threads=THREADS)
    checks = W.final_layer_vs_ct2(encoder, ct2, waves[:n_check])
    result = {"model_id": W.MODELS[model].model_id, "name": f"whisper-{model}", "n_layers": encoder.n_layers,
              "port_vs_ctranslate2": {
                  "compared": "final layer (after the encoder's final layer norm), all 1500 frames of a 30 s window",
                  "ctranslate2_compute_type": "float32 (weights stored in fp16)",
                  "cosine_min": min(c["cosine_min"] for c in checks),
                  "max_abs_diff": max(c["max_abs_diff"] for c in checks),
                  "max_abs_value": max(c["max_abs_value"] for c in checks), "per_clip": checks}}

    timing_waves = waves[:n_timing]
    features = encoder.extractor(timing_waves, sampling_rate=W.RATE, return_tensors="np")["input_features"]

    def ct2_encode(i):
        ct2.encode(ctranslate2.StorageView.from_array(features[i:i + 1].astype(np.float32)))

    ct2_encode(0)
    ct2_seconds = []
    for i in range(len(timing_waves)):
        start = time.perf_counter()
        ct2_encode(i)
        ct2_seconds.append(time.perf_counter() - start)

    timing, means = {"ctranslate2 30s fp32": summary(ct2_seconds)}, {}
    for context in W.CONTEXTS:
        for precision in ("fp32", "bf16"):
            run = get_encoder(f"whisper-{model}", context=context, precision=precision, sequences=False)
            seconds, means[context, precision] = timed_means(run, timing_waves)
            timing[f"{context} {precision}"] = summary(seconds)
    result["timing"] = timing
    result["speedup_clip_vs_30s_fp32"] = round(timing["30s fp32"]["mean_s"] / timing["clip fp32"]["mean_s"], 2)

    result["bf16_vs_fp32"] = {}
    for context in W.CONTEXTS:
        a, b = means[context, "fp32"], means[context, "bf16"]
        cos = cosine(a, b)  # (clips, layers)
        rel = np.linalg.norm(a - b, axis=-1) / np.linalg.norm(a, axis=-1)
        result["bf16_vs_fp32"][context] = {
            "pooled_cosine_min_per_layer": per_layer(cos, np.min), "pooled_cosine_min": round(float(cos.min()), 6),
            "pooled_rel_l2_max_per_layer": per_layer(rel, np.max),
            "speedup": round(timing[f"{context} fp32"]["mean_s"] / timing[f"{context} bf16"]["mean_s"], 2)}
    # Reference for the cosines above: pooled embeddings of DIFFERENT clips are also close (pooling
    # keeps what all speech shares), so a bf16 cosine is meaningful only well above this.
    a = means[W.DEFAULT_CONTEXT, "fp32"]
    between = np.stack([cosine(a[i], a[j]) for i in range(len(a)) for j in range(i + 1, len(a))])
    result["between_clips_fp32"] = {"context": W.DEFAULT_CONTEXT,
                                    "pooled_cosine_max_per_layer": per_layer(between, np.max),
                                    "pooled_cosine_mean_per_layer": per_layer(between, np.mean)}
    cos = cosine(means["clip", "fp32"], means["30s", "fp32"])
    result["clip_vs_30s_fp32"] = {"pooled_cosine_mean_per_layer": per_layer(cos, np.mean),
                                  "pooled_cosine_min_per_layer": per_layer(cos, np.min)}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=CLIPS, help="clips checked against CTranslate2")
    parser.add_argument("--timing-clips", type=int, default=TIMING_CLIPS, help="clips timed per configuration")
    parser.add_argument("--models", nargs="+", default=list(W.MODELS), choices=list(W.MODELS))
    parser.add_argument("--data-root", type=Path, default=RAVDESS, help="RAVDESS speech audio")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)

    clips = pick_clips(args.data_root, max(args.clips, args.timing_clips))
    waves = [load_audio(c, W.RATE) for c in clips]
    report = {"date": dt.datetime.now().isoformat(timespec="seconds"),
              "clip_source": os.path.relpath(args.data_root.resolve(), REPO),
              "clips": [c.relative_to(args.data_root).as_posix() for c in clips],
              "clip_seconds": [round(len(w) / W.RATE, 3) for w in waves],
              "timing_clips": args.timing_clips,
              "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(),
                          "torch": torch.__version__, "torch_threads": THREADS, "ctranslate2_threads": THREADS,
                          "load_average_start": os.getloadavg()},
              "default_context": W.DEFAULT_CONTEXT, "models": {}}
    for model in args.models:
        report["models"][model] = bench_model(model, waves, args.clips, args.timing_clips)
    report["machine"]["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")

    for model, r in report["models"].items():
        port = r["port_vs_ctranslate2"]
        print(f"{model}: port vs CTranslate2 over {len(port['per_clip'])} clips: per-frame cosine min "
              f"{port['cosine_min']:.7f}, max |diff| {port['max_abs_diff']:.2e} "
              f"(values up to {port['max_abs_value']:.1f})")
        print("  s/clip: " + ", ".join(f"{k} {v['mean_s']:.3f}" for k, v in r["timing"].items()))
        for context, b in r["bf16_vs_fp32"].items():
            print(f"  bf16 vs fp32 ({context}): pooled cosine min {b['pooled_cosine_min']:.5f}, "
                  f"per layer {b['pooled_cosine_min_per_layer']}, speed-up {b['speedup']}x")
        print(f"  pooled cosine between different clips (mean per layer): "
              f"{r['between_clips_fp32']['pooled_cosine_mean_per_layer']}")
        print(f"  clip vs 30s pooled cosine (mean per layer): {r['clip_vs_30s_fp32']['pooled_cosine_mean_per_layer']}")
    print(f"wrote {os.path.relpath(args.out.resolve(), REPO)}")


if __name__ == "__main__":
    main()
