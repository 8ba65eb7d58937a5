"""Build tests/fixtures/results_small/: synthetic embedding stores + the probe results trained on them.

    python experiments/make_fixture.py

The analysis notebooks run in CI against this fixture (tests/test_notebooks.py). Nothing in it is
real data: every array is drawn from a seeded generator with the structure the notebooks look for
(emotion, actor, sex, intensity and statement effects; audio and face strong on different emotions;
a layered encoder with a random-init twin; a mean/mean+std pooling pair with per-window sequences
whose trajectory carries part of the emotion; song clips; a video store and its shuffled-frame
twin). The results are made by the real pipeline: experiments/train_probes.py on these stores.
Deterministic: a rerun writes the same arrays and the same results.
"""

import argparse
import gzip
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

import numpy as np

from emoprobe import paths
from emoprobe.store import EmbeddingStore, atomic_write_text

OUT = paths.REPO / "tests" / "fixtures" / "results_small"  # embeddings/ and results/ go under it
SEED = 0  # one generator for everything, consumed in a fixed order
# Video clips of the fixture: the four audio-video recordings the developers' copy has.
VIDEO_KEYS = ["01-01-01-01-02-01", "01-05-02-02-01-01", "01-01-01-01-02-04", "01-06-02-01-02-04"]
# How strongly each modality separates each emotion (neutral..surprised): audio and face differ on
# purpose, so fusion gains and per-emotion differences have something to show.
AUDIO_STRENGTH = np.array([0.5, 0.4, 0.7, 0.9, 1.3, 1.0, 0.5, 0.8])
FACE_STRENGTH = np.array([0.8, 0.6, 1.4, 0.6, 0.7, 0.5, 1.2, 1.0])


def speech_keys() -> list[str]:
    """24 actors x 8 emotions x 2 clips: both intensities (neutral: both statements), statements mixed."""
    keys = []
    for actor in range(1, 25):
        for emotion in range(1, 9):
            statement = 1 + (actor + emotion) % 2
            variants = [(1, 1), (1, 2)] if emotion == 1 else [(1, statement), (2, 3 - statement)]
            keys += [f"01-{emotion:02d}-{i:02d}-{s:02d}-01-{actor:02d}" for i, s in variants]
    return sorted(keys)


def song_keys() -> list[str]:
    """One song clip per actor (no actor 18, as in RAVDESS) and song emotion (neutral..fearful)."""
    return [f"02-{e:02d}-01-01-01-{a:02d}" for a in range(1, 25) if a != 18 for e in range(1, 7)]


def fields(keys):
    parts = np.array([[int(f) for f in k.split("-")] for k in keys])
    return {name: parts[:, i] for i, name in enumerate(["channel", "emotion", "intensity", "statement", "repetition", "actor"])}


class Generator:
    """Shared latent factors; every store is a noisy random projection of them."""

    def __init__(self, seed=SEED, latent=10):
        self.rng = np.random.default_rng(seed)
        self.latent = latent
        emotion = self.rng.normal(size=(9, latent))
        emotion[2] = 0.75 * emotion[1] + 0.25 * emotion[2]  # calm close to neutral
        emotion[8] = 0.6 * emotion[6] + 0.4 * emotion[8]  # surprised close to fearful
        self.emotion = emotion
        self.actor = self.rng.normal(size=(25, latent))
        self.sex = self.rng.normal(size=(2, latent))
        self.statement = self.rng.normal(size=(3, latent))
        self.song = self.rng.normal(size=latent)

    def clips(self, keys, strength, actor_scale, dim, gain=1.0, noise=1.0):
        """(clips, dim): emotion signal (x1.5 at strong intensity) + actor, sex, statement, noise."""
        f = fields(keys)
        signal = self.emotion[f["emotion"]] * (strength[f["emotion"] - 1] * np.where(f["intensity"] == 2, 1.5, 1.0))[:, None]
        nuisance = actor_scale * (self.actor[f["actor"]] + 0.7 * self.sex[f["actor"] % 2]) + 0.5 * self.statement[f["statement"]]
        z = gain * signal + nuisance + (f["channel"] == 2)[:, None] * self.song
        projection = self.rng.normal(size=(self.latent, dim)) / np.sqrt(self.latent)
        return z @ projection + noise * self.rng.normal(size=(len(keys), dim))

    def sequences(self, keys, strength, actor_scale, dim):
        """Per-window sequences (windows, dim) whose mean carries part of the emotion signal and whose
        trajectory (a rise or fall within the clip, zero on average) carries the rest."""
        f = fields(keys)
        base = self.clips(keys, strength * 0.7, actor_scale, dim, noise=0.6)
        slopes = self.rng.normal(size=(9, dim)) * 0.5
        lengths = self.rng.integers(12, 19, size=len(keys))
        out = []
        for i, n in enumerate(lengths):
            t = np.linspace(-1, 1, n)[:, None]
            trend = slopes[f["emotion"][i]] * strength[f["emotion"][i] - 1] * t
            out.append(base[i] + trend + 0.8 * self.rng.normal(size=(n, dim)))
        return out


def write_store(root, modality, model, keys, arrays, meta):
    """arrays: pooling -> (clips, ...) array, plus optionally 'sequence' -> list of per-clip arrays.
    Written through EmbeddingStore (put + finalize), then the per-clip cache is trimmed to what the
    notebooks read (the sequences), to keep the fixture small."""
    store = EmbeddingStore(modality, model, root)
    for i, key in enumerate(keys):
        store.put(key, {name: a[i] for name, a in arrays.items()})
    meta = store.finalize(meta)
    meta["finalized"] = "fixture"  # no timestamp: a rebuild gives identical files
    atomic_write_text(store.dir / "meta.json", json.dumps(meta, indent=1))
    for i, key in enumerate(keys):
        path = store.clip_dir / f"{key}.npz"
        if "sequence" in arrays:
            np.savez(path, sequence=np.asarray(arrays["sequence"][i], dtype=np.float32))
        else:
            path.unlink()
    if "sequence" not in arrays:
        store.clip_dir.rmdir()
    return store


def make_embeddings(root: Path):
    g = Generator()
    speech = speech_keys()
    with_song = sorted(speech + song_keys())
    fixture = {"fixture": "synthetic (experiments/make_fixture.py); not real data"}

    # Hand-crafted-like audio: functionals only, covering speech and song (speech->song transfer).
    write_store(root, "audio", "fx-functionals", with_song,
                {"functionals": g.clips(with_song, AUDIO_STRENGTH, 1.6, 24)},
                {"model_id": "openSMILE-like synthetic functionals", **fixture})
    # Frame features pooled two ways, with per-window sequences (temporal notebook).
    seqs = g.sequences(speech, AUDIO_STRENGTH, 1.4, 8)
    write_store(root, "audio", "fx-frames", speech,
                {"mean": np.stack([s.mean(0) for s in seqs]),
                 "meanstd": np.stack([np.concatenate([s.mean(0), s.std(0)]) for s in seqs]),
                 "sequence": seqs},
                {"model_id": "torchaudio-like synthetic frame features", "window_s": 0.25, **fixture})
    # A layered "pretrained" encoder (emotion peaks in the middle layers) and its random-init twin.
    for name, gains, random_init in [("fx-encoder", [0.3, 0.7, 1.1, 0.9, 0.6], False),
                                     ("fx-encoder-randinit", [0.35, 0.4, 0.4, 0.35, 0.3], True)]:
        layers = np.stack([g.clips(speech, AUDIO_STRENGTH, 1.0, 16, gain=gain) for gain in gains], axis=1)
        write_store(root, "audio", name, speech, {"mean": layers},
                    {"model_id": "synthetic layered encoder", "random_init": random_init, **fixture})
    # Face: strong where audio is weak, less actor-bound.
    write_store(root, "face", "fx-au-means", speech, {"mean": g.clips(speech, FACE_STRENGTH, 0.8, 12)},
                {"model_id": "OpenFace-like synthetic action units", **fixture})
    # Video: four clips, original frame order and a shuffled twin (the frame-order control).
    video = g.clips(VIDEO_KEYS, FACE_STRENGTH, 1.0, 8)
    for name, order, shift in [("fx-video", "original", 0.0), ("fx-video-shuffled", "shuffled", 1.0)]:
        layers = np.stack([video + shift * depth * 0.3 * g.rng.normal(size=video.shape) for depth in range(3)], axis=1)
        write_store(root, "video", name, VIDEO_KEYS, {"mean": layers},
                    {"model_id": "synthetic video encoder", "random_init": False, "frame_order": order, **fixture})


def make_results(embeddings: Path, out: Path, jobs: int):
    """Run the real probe script on the synthetic stores, with an empty-file RAVDESS tree for labels."""
    import train_probes  # experiments/ is on sys.path when this file runs as a script

    with tempfile.TemporaryDirectory() as tmp:
        for key in speech_keys():
            path = Path(tmp) / f"Actor_{key[-2:]}" / f"03-{key}.wav"
            path.parent.mkdir(exist_ok=True)
            path.touch()  # names carry every label; the probes never read the audio
        train_probes.main(["--data-root", tmp, "--embeddings-dir", str(embeddings), "--out", str(out),
                           "--jobs", str(jobs)])
    for path in (out / "predictions").glob("*.gz"):  # gzip stores the write time: zero it, same bytes each build
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), mtime=0))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=OUT)
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out / "embeddings", ignore_errors=True)
    shutil.rmtree(out / "results", ignore_errors=True)
    make_embeddings(out / "embeddings")
    make_results(out / "embeddings", out / "results", args.jobs)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"fixture: {size / 1e6:.2f} MB under {out}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
