"""What recording each clip's source identity costs a cached rerun: the old commit beside this tree.

    python benchmarks/cache_identity.py --data-root ../shared/data/ravdess

For each of the old commit (before identities, checked out in a temporary `git worktree`) and this
tree: extract_audio.py --encoders ENCODER into a fresh temporary store, then the same command again
(every clip cached), timed as a whole process. Also: hashing every source file once (what a rerun pays
when every file's size or time changed, e.g. after copying the corpus without keeping times). Written
to results/benchmarks/cache_identity.json. Not a test: timings depend on what else runs.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emoprobe import cli, config
from emoprobe.data import clips as clip_table
from emoprobe.store.identity import file_hash

OLD_COMMIT = "7dc518a"  # the last commit without source identities in the cache
ENCODER = "mfcc"  # the cheapest encoder: the rerun is all bookkeeping
REPEATS = 3  # cached reruns timed per tree (the median is kept)


def extract(python_path: str, data_root: str, embeddings: Path) -> float:
    env = {**os.environ, "PYTHONPATH": python_path, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, str(Path(python_path) / "experiments" / "extract_audio.py"), "--encoders", ENCODER,
                    "--data-root", data_root, "--embeddings-dir", str(embeddings), "--no-sequences"],
                   env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def main(argv=None):
    p = cli.parser(__doc__, embeddings=False)
    p.add_argument("--out", default=str(config.REPO / "results" / "benchmarks" / "cache_identity.json"))
    args = p.parse_args(argv)
    data_root = str(config.data_root(args.data_root))
    sources = clip_table.load(data_root, verbose=False).audio.dropna()
    report = {"encoder": ENCODER, "n_clips": len(sources), "old_commit": OLD_COMMIT, "cpus": os.cpu_count(),
              "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), OLD_COMMIT], cwd=config.REPO,
                       check=True, capture_output=True)
        try:
            for name, tree in (("old", str(old_tree)), ("new", str(config.REPO))):
                embeddings = Path(tmp) / f"emb-{name}"
                first = extract(tree, data_root, embeddings)
                reruns = sorted(extract(tree, data_root, embeddings) for _ in range(REPEATS))
                report[name] = {"first_run_s": round(first, 2), "cached_rerun_s": round(reruns[REPEATS // 2], 2),
                                "cached_reruns_s": [round(r, 2) for r in reruns]}
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=config.REPO, check=False)
    started = time.perf_counter()
    total = sum(Path(s).stat().st_size for s in sources)
    for source in sources:
        file_hash(source)
    report["hash_every_source_s"] = round(time.perf_counter() - started, 2)
    report["source_megabytes"] = round(total / 2**20, 1)
    report["extra_cached_rerun_s"] = round(report["new"]["cached_rerun_s"] - report["old"]["cached_rerun_s"], 2)
    report["load_average_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    cli.run(main)
