"""Speed, memory and fidelity benchmark of the extraction pipeline; writes results/benchmarks/<date>.json.

    python experiments/benchmark.py                         # the real RAVDESS mp4s in ../shared/data
    python experiments/benchmark.py --clips 1 --repeats 2 --skip probes cached   # a quick try

On the same clips (the real audio-video mp4s and their audio files; generated media where they are
absent), per modality: clips/s, the share of wall time in the model forward vs decoding, face
detection and store writes, and peak memory, each modality in its own process; the same for a naive
reference path (see emoprobe/benchmark.py), measured in the same run. Real-size models with random
weights (offline): wav2vec2-base, TimeSformer-base; faces: MTCNN + FER. Also the probe grid's time
on every audio store in data/embeddings, a cached rerun with nothing new, and the fidelity of bf16
autocast and dynamic int8 against fp32. Targets are printed, met or missed and by how much.
Not a test: timings depend on the machine and on what else runs on it.
"""

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

import numpy as np

from emoprobe import benchmark, paths, ravdess

REPEATS = 3  # the optimized path embeds every clip this many times (does memory stay flat?)
PROBE_JOBS = 2  # folds in parallel, as experiments/train_probes.py
PROBE_MAX_SUBSET = 2  # fusions: every pair plus all sets together, as experiments/train_probes.py
CACHED_STORE = ("wav2vec2", "wav2vec2-base-randinit")  # extract_audio.py encoder and its store, rerun from cache
TARGETS = {  # what "fast enough" means for this project
    "forward_share": 0.85,  # model forward >= 85% of extraction wall time
    "speedup_vs_naive": 2.0,  # end to end, all modalities
    "memory_growth_fraction": 0.05,  # peak memory flat in the number of clips: < 5% growth over the 2nd half
    "cached_rerun_s": 10.0,  # a rerun with nothing new takes seconds
    "probe_grid_s": 60.0,  # the whole probe grid on the audio features, 2 cores
}
MODALITIES = ["audio", "video", "face"]
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=paths.SHARED_RAVDESS, help="RAVDESS folder with audio-video mp4s")
    p.add_argument("--clips", type=int, help="use only the first N audio-video clips")
    p.add_argument("--repeats", type=int, default=REPEATS, help="times the optimized path embeds each clip")
    p.add_argument("--modalities", nargs="+", default=MODALITIES, choices=MODALITIES)
    p.add_argument("--skip", nargs="*", default=[], choices=["naive", "probes", "cached", "fidelity"])
    p.add_argument("--probe-features", nargs="+", default=["audio/"],
                   help="time the probe grid on the stores whose 'modality/model' contains one of these")
    p.add_argument("--threads", type=int, help="torch threads per measurement (default: torch's, the core count)")
    p.add_argument("--note", default="", help="what else ran on the machine (recorded with the results)")
    p.add_argument("--out", default=paths.RESULTS / "benchmarks")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one measurement in this process
    p.add_argument("--clips-json", help=argparse.SUPPRESS)
    p.add_argument("--result-json", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        clips = json.loads(Path(args.clips_json).read_text())
        result = benchmark.run_worker(args.worker, clips, args.repeats, args.threads)
        Path(args.result_json).write_text(json.dumps(result))
        return

    started, load_before = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        clips, source = find_clips(args.data_root, args.clips, Path(tmp))
        print(f"{len(clips)} clip(s) from {source}; {os.cpu_count()} CPU(s), load average {load_before[0]:.2f}")
        report = {"date": dt.datetime.now().isoformat(timespec="seconds"), "clips": [c["key"] for c in clips],
                  "clip_source": source, "repeats": args.repeats, "machine": machine(), "note": args.note,
                  "targets": TARGETS, "runs": []}
        for modality in args.modalities:
            for variant in ["optimized"] + ([] if "naive" in args.skip else ["naive"]):
                report["runs"].append(worker(f"{modality}:{variant}", clips, args.repeats, Path(tmp), args.threads))
        if "fidelity" not in args.skip:
            report["fidelity"] = {m: worker(f"fidelity:{m}", clips, 0, Path(tmp), args.threads)
                                  for m in ("audio", "video")}
        if "cached" not in args.skip:
            report["cached_rerun"] = cached_rerun(args.data_root, Path(tmp))
        if "probes" not in args.skip:
            report["probe_grid"] = probe_grid(args.data_root, args.probe_features)
    report["load_average"] = {"before": load_before, "after": os.getloadavg()}
    report["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
    report["verdicts"] = verdicts(report)
    out = Path(args.out) / f"{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print_report(report)
    print(f"\n-> {out}")


# ---------------------------------------------------------------------------------------------
def find_clips(data_root, limit, tmp: Path) -> tuple[list[dict], str]:
    """The audio-video clips with their audio-only files; generated media when there are none."""
    root = Path(data_root)
    if root.exists():
        table, _ = ravdess.index_clips(root)
        table = table[table.path_av.notna()]
        clips = [{"key": r.key, "video": r.path_av,
                  "audio": r.path_audio if isinstance(r.path_audio, str) else r.path_av} for r in table.itertuples()]
        if clips:
            return clips[:limit], str(root)
    print(f"no audio-video clips under {root}: using generated 720p clips (no faces: face detection is "
          "timed, FER never runs)")
    return [generate_clip(tmp / f"01-01-0{i + 1}-01-01-01-01.mp4", seed=i) for i in range(limit or 4)], "generated"


def generate_clip(path: Path, seed=0, seconds=3.7, width=1280, height=720) -> dict:
    """An mp4 shaped like a RAVDESS one (H.264 720p at 29.97 fps, AAC 48 kHz stereo) and its FLAC."""
    from fractions import Fraction

    import av
    import soundfile as sf

    rng = np.random.default_rng(seed)
    rate, fps = 48000, Fraction(30000, 1001)
    sound = (0.1 * rng.standard_normal((2, int(seconds * rate)))).astype(np.float32)
    with av.open(str(path), "w") as out:
        vs, aus = out.add_stream("libx264", rate=fps), out.add_stream("aac", rate=rate)
        vs.width, vs.height, vs.pix_fmt, aus.layout = width, height, "yuv420p", "stereo"
        packets = []
        base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        for i in range(int(seconds * fps)):
            packets += vs.encode(av.VideoFrame.from_ndarray(np.roll(base, 4 * i, axis=1), format="rgb24"))
        packets += vs.encode()
        for start in range(0, sound.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[:, start:start + 1024]), format="fltp",
                                               layout="stereo")
            frame.sample_rate = rate
            packets += aus.encode(frame)
        packets += aus.encode()
        out.mux(packets)
    flac = path.with_suffix(".flac")
    sf.write(flac, sound.T, rate)
    return {"key": ravdess.parse_name(path).clip, "video": str(path), "audio": str(flac)}


def machine() -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu, "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "bf16_native": benchmark.bf16_supported(), "cuda": torch.cuda.is_available(),
            "python": platform.python_version()}


def worker(task: str, clips: list[dict], repeats: int, tmp: Path, threads: int | None = None) -> dict:
    """One measurement in a fresh process (its own peak memory)."""
    clips_json, result_json = tmp / "clips.json", tmp / f"{task.replace(':', '_')}.json"
    clips_json.write_text(json.dumps(clips))
    print(f"[{task}] ...", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", task, "--clips-json", str(clips_json),
                           "--result-json", str(result_json), "--repeats", str(repeats),
                           *(["--threads", str(threads)] if threads else [])],
                          env={**os.environ, **WORKER_ENV}, capture_output=True, text=True)
    if proc.returncode:
        print(f"[{task}] failed:\n{proc.stderr[-3000:]}")
        return {"task": task, "error": proc.stderr[-3000:]}
    result = {"task": task, **json.loads(result_json.read_text()), "process_s": round(time.perf_counter() - t0, 1)}
    print(f"[{task}] done in {result['process_s']} s", flush=True)
    return result


def cached_rerun(data_root, tmp: Path) -> dict:
    """experiments/extract_audio.py on a store that already has every clip: nothing new to embed."""
    encoder, store = CACHED_STORE
    src = paths.EMBEDDINGS / "audio" / store
    if not (src / "meta.json").exists():
        return {"skipped": f"no finalized store at {src}"}
    dst = tmp / "embeddings" / "audio" / store
    shutil.copytree(src, dst, copy_function=os.link)  # hard links: instant; finalize replaces, never edits
    cmd = [sys.executable, str(paths.REPO / "experiments" / "extract_audio.py"), "--data-root", str(data_root),
           "--encoders", encoder, "--random-init", "--embeddings-dir", str(tmp / "embeddings")]
    print("[cached rerun] ...", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ, **WORKER_ENV}, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    cached = re.search(r"(\d+) clip\(s\) cached, (\d+) to embed", proc.stdout)
    return {"command": " ".join(cmd[1:]), "seconds": round(seconds, 2), "returncode": proc.returncode,
            "clips_cached": int(cached[1]) if cached else None, "clips_embedded": int(cached[2]) if cached else None,
            "error": proc.stderr[-2000:] if proc.returncode else None}


def probe_grid(data_root, features) -> dict:
    """run_grid on every finalized store matching `features`, linear probes only and with the MLP, with
    experiments/train_probes.py's defaults."""
    from emoprobe import probes

    t0 = time.perf_counter()
    base, extra = probes.discover_feature_sets(paths.EMBEDDINGS, features)
    if not base:
        return {"skipped": f"no finalized stores matching {features} under {paths.EMBEDDINGS}"}
    clips = ravdess.load_clips(data_root, "speech", verbose=False)
    out = {"features": features, "feature_sets": [fs.name for fs in base], "extra_poolings": [fs.name for fs in extra],
           "jobs": PROBE_JOBS, "max_subset": PROBE_MAX_SUBSET, "load_s": round(time.perf_counter() - t0, 2)}
    for label, kinds in (("linear", ("linear",)), ("linear+mlp", ("linear", "mlp"))):
        print(f"[probe grid: {label}] ...", flush=True)
        t0 = time.perf_counter()
        results, _ = probes.run_grid(clips, base, extra, probes=kinds, max_subset=PROBE_MAX_SUBSET,
                                     n_jobs=PROBE_JOBS, log=lambda *_: None)
        out[label] = {"seconds": round(time.perf_counter() - t0, 1), "n_results": len(results)}
        print(f"[probe grid: {label}] {out[label]['seconds']} s", flush=True)
    return out


# ---------------------------------------------------------------------------------------------
def verdicts(report: dict) -> list[dict]:
    """Each target: measured value, met or not, and the margin."""
    runs = {(r["modality"], r["variant"]): r for r in report["runs"] if "error" not in r}
    opt = {m: r for (m, v), r in runs.items() if v == "optimized"}
    out = []

    def add(name, value, target, met, margin, detail=""):
        out.append({"target": name, "value": value, "goal": target, "met": bool(met), "margin": margin,
                    "detail": detail})

    if opt:
        wall = sum(r["wall_s"] / r["n_clips"] for r in opt.values())
        forward = sum(r["stage_s"].get("forward", 0) / r["n_clips"] for r in opt.values())
        share = forward / wall
        per = ", ".join(f"{m} {r['share_of_wall'].get('forward', 0):.0%}" for m, r in opt.items())
        add("model forward share of extraction wall time", round(share, 3), f">= {TARGETS['forward_share']:.0%}",
            share >= TARGETS["forward_share"], f"{share - TARGETS['forward_share']:+.1%} points", per)
        naive = {m: runs.get((m, "naive")) for m in opt}
        if all(naive.values()):
            speedup = sum(r["s_per_clip"] for r in naive.values()) / sum(r["s_per_clip"] for r in opt.values())
            per = ", ".join(f"{m} {naive[m]['s_per_clip'] / r['s_per_clip']:.1f}x" for m, r in opt.items())
            add("end-to-end speed-up vs naive", round(speedup, 2), f">= {TARGETS['speedup_vs_naive']}x",
                speedup >= TARGETS["speedup_vs_naive"], f"{speedup / TARGETS['speedup_vs_naive']:.2f}x the goal", per)
        if "face" in opt:
            detect = opt["face"]["stage_s"].get("detect", 0) / opt["face"]["n_clips"]
            stages = {f"{m} forward": r["stage_s"].get("forward", 0) / r["n_clips"] for m, r in opt.items()}
            stages["face detection"] = detect
            slowest = max(stages, key=stages.get)
            add("face detection not the bottleneck", round(detect, 3), "not the slowest stage per clip",
                slowest != "face detection", f"{detect / wall:.1%} of end-to-end wall time",
                f"slowest stage: {slowest} ({stages[slowest]:.2f} s/clip)")
        growth = {m: (r["rss_growth_mb_second_half"] or 0) / r["peak_rss_mb"] for m, r in opt.items()}
        worst = max(growth, key=growth.get)
        add("peak memory flat in the number of clips", round(growth[worst], 4),
            f"< {TARGETS['memory_growth_fraction']:.0%} growth", growth[worst] < TARGETS["memory_growth_fraction"],
            f"worst: {worst} {opt[worst]['rss_growth_mb_second_half']:+.0f} MB",
            ", ".join(f"{m} peak {r['peak_rss_mb']:.0f} MB" for m, r in opt.items()))
    cached = report.get("cached_rerun", {})
    if "seconds" in cached:
        add("cached rerun with nothing new", cached["seconds"], f"<= {TARGETS['cached_rerun_s']} s",
            cached["seconds"] <= TARGETS["cached_rerun_s"] and cached["clips_embedded"] == 0,
            f"{cached['seconds'] - TARGETS['cached_rerun_s']:+.1f} s", f"{cached['clips_cached']} clips cached")
    grid = report.get("probe_grid", {})
    if "linear+mlp" in grid:
        s = grid["linear+mlp"]["seconds"]
        add(f"probe grid on {'+'.join(grid['features'])} stores (linear + MLP)", s, f"<= {TARGETS['probe_grid_s']} s",
            s <= TARGETS["probe_grid_s"], f"{s / TARGETS['probe_grid_s']:.1f}x the goal",
            f"linear only {grid['linear']['seconds']} s; {len(grid['feature_sets'])} sets, jobs={grid['jobs']}")
    return out


def print_report(report: dict) -> None:
    print(f"\n{report['machine']['cpu']} ({report['machine']['cpus']} CPUs, torch threads "
          f"{report['machine']['torch_threads']}); load average before/after "
          f"{report['load_average']['before'][0]:.2f}/{report['load_average']['after'][0]:.2f}")
    head = f"{'modality':<8} {'variant':<10} {'s/clip':>7} {'clips/s':>8} {'forward':>8} {'decode':>7} " \
           f"{'detect':>7} {'io':>6} {'peak MB':>8} {'growth':>7}"
    print(head + "\n" + "-" * len(head))
    for r in report["runs"]:
        if "error" in r:
            print(f"{r['task']:<19} FAILED (see the JSON)")
            continue
        sh = r["share_of_wall"]
        print(f"{r['modality']:<8} {r['variant']:<10} {r['s_per_clip']:>7.3f} {r['clips_per_s']:>8.2f} "
              f"{sh.get('forward', 0):>8.1%} {sh.get('decode', 0):>7.1%} {sh.get('detect', 0):>7.1%} "
              f"{sh.get('io', 0):>6.1%} {r['peak_rss_mb']:>8.0f} {r['rss_growth_mb_second_half'] or 0:>+6.0f}M")
    for modality, f in report.get("fidelity", {}).items():
        if "error" in f:
            continue
        print(f"\n{modality} fidelity ({f['model']}), s/clip {f['s_per_clip']}; two different clips' pooled "
              f"cosine (min over layers) {f.get('pooled_cosine_between_two_clips_min', float('nan')):.4f}")
        for k in ("bf16", "int8_dynamic"):
            print(f"  {k:<13} hidden rel. error mean {f[k]['hidden_rel_error_mean']:.4f} max "
                  f"{f[k]['hidden_rel_error_max']:.4f}; pooled cosine min {f[k]['pooled_cosine_min']:.6f}")
    print("\ntargets:")
    for v in report["verdicts"]:
        print(f"  [{'met ' if v['met'] else 'MISS'}] {v['target']}: {v['value']} (goal {v['goal']}; {v['margin']})"
              + (f"  {v['detail']}" if v["detail"] else ""))


if __name__ == "__main__":
    main()
