"""Speed, memory and fidelity of the extraction pipeline; writes results/benchmarks/<date>.json.

    python benchmarks/run.py                                  # every audio-video clip under --data-root
    python benchmarks/run.py --clips 1 --repeats 1 --skip naive --modalities audio   # a quick try

Per modality (audio, video, face), each measurement in its own process (benchmarks/workers.py), on
the same clips (the audio-video mp4s and their audio files): clips/s, the share of wall time in each
stage (decode, resample, face detection, model forward, store writes) as run_extraction itself
reports it, and peak memory per repeat; the same for a naive reference path in the same run. Also a
rerun of experiments/extract_audio.py with nothing new to embed, and the fidelity of bf16 autocast
and dynamic int8 against fp32. Targets are printed, met or missed and by how much. The probe grid's
speed is benchmarks/grid_speed.py. Not a test: timings depend on the machine and what else runs on it.
"""

import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import workers  # benchmarks/workers.py, beside this file

from emoprobe import cli, config
from emoprobe.data import clips as clip_table
from emoprobe.errors import NoDataError

REPEATS = 3  # the optimized path embeds every clip this many times (does peak memory stay flat?)
MODALITIES = ["audio", "video", "face"]
CHANNEL = "speech"  # the extract scripts' default vocal channel
CACHED_ENCODER = workers.AUDIO_ENCODER  # the encoder whose extract_audio.py rerun finds every clip cached
TARGETS = {  # what "fast enough" means for this project
    "forward_share": 0.85,  # model forward >= 85% of extraction wall time, all modalities together
    "speedup_vs_naive": 2.0,  # end to end, all modalities
    "memory_growth_fraction": 0.05,  # peak memory flat over repeats: < 5% growth, 2nd half vs 1st half
    "cached_rerun_s": 10.0,  # a rerun with nothing new takes seconds
}
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}  # offline, no progress bars


def main(argv=None):
    p = cli.parser(__doc__, embeddings=False)
    p.add_argument("--clips", type=int, help="only the first N audio-video clips")
    p.add_argument("--repeats", type=int, default=REPEATS,
                   help="times the optimized path embeds each clip; also timed calls per fidelity variant")
    p.add_argument("--modalities", nargs="+", default=MODALITIES, choices=MODALITIES)
    p.add_argument("--skip", nargs="*", default=[], choices=["naive", "cached", "fidelity"])
    p.add_argument("--threads", type=int, help="torch threads per measurement (default: torch's, the core count)")
    p.add_argument("--device", default=cli.default_device(), help="as the extract scripts (default: %(default)s)")
    p.add_argument("--note", default="", help="what else ran on the machine (recorded with the results)")
    p.add_argument("--out", help="folder for <date>.json (default: results/benchmarks)")
    args = p.parse_args(argv)

    data_root = config.data_root(args.data_root)
    table = clip_table.load(data_root, CHANNEL, verbose=False)
    table = table[table.video.notna() & table.audio.notna()].head(args.clips)
    if table.empty:
        raise NoDataError(f"no {CHANNEL} clips with both video and audio under {config.relative(data_root)}")
    started, load_before = time.perf_counter(), os.getloadavg()
    print(f"{len(table)} clip(s) from {config.relative(data_root)}; {os.cpu_count()} CPU(s), "
          f"load average {load_before[0]:.2f}")
    report = {"date": dt.datetime.now().isoformat(timespec="seconds"), "data_root": config.relative(data_root),
              "clips": table.key.tolist(), "repeats": args.repeats, "machine": machine(args.device),
              "note": args.note, "targets": TARGETS, "runs": [], "fidelity": {}}
    out = Path(args.out or config.results_dir() / "benchmarks") / f"{dt.date.today().isoformat()}.json"

    def save():  # after every measurement: an interrupted run keeps what it measured
        report["load_average"] = {"before": load_before, "after": os.getloadavg()}
        report["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
        report["verdicts"] = verdicts(report)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1))

    with tempfile.TemporaryDirectory() as tmp:
        clips_json = Path(tmp) / "clips.json"
        clips_json.write_text(table[["key", "audio", "video"]].to_json(orient="records"))
        for modality in args.modalities:
            for variant in ["optimized"] + ([] if "naive" in args.skip else ["naive"]):
                report["runs"].append(worker(f"{modality}:{variant}", clips_json, args, data_root, tmp))
                save()
        for modality in [m for m in ("audio", "video") if m in args.modalities and "fidelity" not in args.skip]:
            report["fidelity"][modality] = worker(f"fidelity:{modality}", clips_json, args, data_root, tmp)
            save()
        if "cached" not in args.skip:
            report["cached_rerun"] = cached_rerun(data_root, len(table), args.device, tmp)
            save()
    print_report(report)
    print(f"\n-> {config.relative(out)}")


def machine(device: str) -> dict:
    import torch

    info = Path("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                if line.startswith("model name")), "") if info.exists() else platform.processor()
    return {"cpu": cpu, "cpus": os.cpu_count(), "device": device, "bf16_native": workers.bf16_native(device),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version()}


def scrub(text: str, data_root: Path, tmp) -> str:
    """Error text without this machine's absolute paths."""
    for path, label in ((tmp, "<tmp>"), (data_root, config.relative(data_root)), (config.REPO, ".")):
        text = text.replace(str(path), label)
    return text


def worker(task: str, clips_json: Path, args, data_root: Path, tmp) -> dict:
    """One measurement in a fresh process (its own peak memory)."""
    result_json = Path(tmp) / f"{task.replace(':', '_')}.json"
    print(f"[{task}] ...", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, workers.__file__, task, str(clips_json), str(result_json),
                           "--repeats", str(args.repeats), "--device", args.device,
                           *(["--threads", str(args.threads)] if args.threads else [])],
                          env={**os.environ, **WORKER_ENV}, capture_output=True, text=True)
    if proc.returncode:
        error = scrub(proc.stderr[-3000:], data_root, tmp)
        print(f"[{task}] failed:\n{error}")
        return {"task": task, "error": error}
    result = {**json.loads(result_json.read_text()), "process_s": round(time.perf_counter() - t0, 1)}
    print(f"[{task}] done in {result['process_s']} s", flush=True)
    return result


def cached_rerun(data_root: Path, n_clips: int, device: str, tmp) -> dict:
    """experiments/extract_audio.py on n_clips, then again, timed: the second run finds every clip cached."""
    script = config.REPO / "experiments" / "extract_audio.py"
    args = ["--data-root", str(data_root), "--encoders", CACHED_ENCODER, "--limit", str(n_clips),
            "--device", device, "--embeddings-dir", str(Path(tmp) / "cached")]
    command = f"python {config.relative(script)} {scrub(' '.join(args), data_root, tmp)}"
    print("[cached rerun] ...", flush=True)
    runs = []
    for _ in range(2):  # fill the store, then the timed rerun
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script), *args], env={**os.environ, **WORKER_ENV},
                              capture_output=True, text=True)
        runs.append(time.perf_counter() - t0)
        if proc.returncode:
            return {"command": command, "error": scrub(proc.stderr[-2000:], data_root, tmp)}
    counts = re.search(r"(\d+) clip\(s\) cached, (\d+) to embed", proc.stdout)
    print(f"[cached rerun] {runs[1]:.1f} s", flush=True)
    return {"command": command, "seconds": round(runs[1], 2), "first_run_s": round(runs[0], 2),
            "clips_cached": int(counts[1]) if counts else None, "clips_embedded": int(counts[2]) if counts else None}


# ---------------------------------------------------------------------------------------------
def verdicts(report: dict) -> list[dict]:
    """Each target: the measured value, met or not (None: not measured), and the margin."""
    runs = {(r["modality"], r["variant"]): r for r in report["runs"] if "error" not in r}
    opt = {m: r for (m, v), r in runs.items() if v == "optimized"}
    out = []

    def add(name, value, goal, met, margin, detail=""):
        out.append({"target": name, "value": value, "goal": goal, "met": met, "margin": margin, "detail": detail})

    if opt:
        share = sum(r["forward_s_per_clip"] for r in opt.values()) / sum(r["s_per_clip"] for r in opt.values())
        add("model forward share of extraction wall time", round(share, 3), f">= {TARGETS['forward_share']:.0%}",
            share >= TARGETS["forward_share"], f"{share - TARGETS['forward_share']:+.1%} points",
            ", ".join(f"{m} {r['forward_s_per_clip'] / r['s_per_clip']:.0%}" for m, r in opt.items()))
        naive = {m: runs.get((m, "naive")) for m in opt}
        if all(naive.values()):
            speedup = sum(r["s_per_clip"] for r in naive.values()) / sum(r["s_per_clip"] for r in opt.values())
            add("end-to-end speed-up vs naive", round(speedup, 2), f">= {TARGETS['speedup_vs_naive']}x",
                speedup >= TARGETS["speedup_vs_naive"], f"{speedup / TARGETS['speedup_vs_naive']:.2f}x the goal",
                ", ".join(f"{m} {naive[m]['s_per_clip'] / r['s_per_clip']:.1f}x" for m, r in opt.items()))
        if "face" in opt:
            detect = opt["face"]["stages"].get("detect", {}).get("s_per_clip", 0.0)
            per_clip = {f"{m} forward": r["forward_s_per_clip"] for m, r in opt.items()}
            per_clip["face detection"] = detect
            slowest = max(per_clip, key=per_clip.get)
            add("face detection not the bottleneck", detect, "not the slowest stage per clip",
                slowest != "face detection", f"{detect / opt['face']['s_per_clip']:.1%} of face wall time",
                f"slowest stage: {slowest} ({per_clip[slowest]:.2f} s/clip)")
        growth = {m: r["rss_growth_mb"] / r["peak_rss_mb"] for m, r in opt.items() if r["rss_growth_mb"] is not None}
        goal = f"< {TARGETS['memory_growth_fraction']:.0%} growth"
        if growth:
            worst = max(growth, key=growth.get)
            add("peak memory flat over repeats", round(growth[worst], 4), goal,
                growth[worst] < TARGETS["memory_growth_fraction"],
                f"worst: {worst} {opt[worst]['rss_growth_mb']:+.0f} MB",
                ", ".join(f"{m} peak {r['peak_rss_mb']:.0f} MB" for m, r in opt.items()))
        else:
            add("peak memory flat over repeats", None, goal, None, "needs --repeats 2 or more")
    cached = report.get("cached_rerun", {})
    if "seconds" in cached:
        add("cached rerun with nothing new", cached["seconds"], f"<= {TARGETS['cached_rerun_s']} s",
            cached["seconds"] <= TARGETS["cached_rerun_s"] and cached["clips_embedded"] == 0,
            f"{cached['seconds'] / TARGETS['cached_rerun_s']:.2f}x the limit",
            f"{cached['clips_cached']} clip(s) cached, {cached['clips_embedded']} embedded")
    return out


def print_report(report: dict) -> None:
    m, load = report["machine"], report["load_average"]
    print(f"\n{m['cpu']} ({m['cpus']} CPUs, torch threads {m['torch_threads']}, {m['device']}); "
          f"load average before/after {load['before'][0]:.2f}/{load['after'][0]:.2f}")
    columns = ["decode", "resample", "detect", "write"]
    head = (f"{'modality':<8} {'variant':<10} {'s/clip':>7} {'clips/s':>8} {'forward':>8} "
            + " ".join(f"{c:>8}" for c in columns) + f" {'peak MB':>8} {'growth':>7}")
    print(head + "\n" + "-" * len(head))
    for r in report["runs"]:
        if "error" in r:
            print(f"{r['task']:<19} FAILED (see the JSON)")
            continue
        shares = " ".join(f"{r['stages'].get(c, {}).get('share_of_wall', 0):>8.1%}" for c in columns)
        growth = "" if r["rss_growth_mb"] is None else f"{r['rss_growth_mb']:+.0f}M"
        print(f"{r['modality']:<8} {r['variant']:<10} {r['s_per_clip']:>7.3f} {r['clips_per_s']:>8.2f} "
              f"{r['forward_s_per_clip'] / r['s_per_clip']:>8.1%} {shares} {r['peak_rss_mb']:>8.0f} {growth:>7}")
    for modality, f in report.get("fidelity", {}).items():
        if "error" in f:
            print(f"\n{modality} fidelity FAILED (see the JSON)")
            continue
        between = f.get("pooled_cosine_between_two_clips_min")
        print(f"\n{modality} fidelity ({f['encoder']}), s/clip {f['s_per_clip']}"
              + (f"; two different clips' pooled cosine (min over layers) {between:.4f}" if between else ""))
        for k in ("bf16", "int8_dynamic"):
            print(f"  {k:<13} hidden rel. error mean {f[k]['hidden_rel_error_mean']:.4f} max "
                  f"{f[k]['hidden_rel_error_max']:.4f}; pooled cosine min {f[k]['pooled_cosine_min']:.6f}")
    print("\ntargets:")
    for v in report["verdicts"]:
        mark = {True: "met ", False: "MISS", None: "n/a "}[v["met"]]
        print(f"  [{mark}] {v['target']}: {v['value']} (goal {v['goal']}; {v['margin']})"
              + (f"  {v['detail']}" if v["detail"] else ""))


if __name__ == "__main__":
    cli.run(main)
