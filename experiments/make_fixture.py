"""Build tests/fixtures/results_small/: synthetic embedding stores + the results the real scripts make on them.

    python experiments/make_fixture.py

The analysis notebooks and the findings generator are tested against this fixture. Nothing in it is
real data: every array is drawn from a seeded generator with the structure the analyses look for
(emotion, actor, sex, intensity and statement effects; audio and face strong on different emotions).
The stores carry the facts real extractors write (encoder, weights, objective, twin_of, variant,
base_set, default_pooling, layered, n_layers, first_seconds):
    audio  a hand-crafted functionals store with song clips and two first-seconds cuts (duration,
           transfer); hand-crafted frame features pooled two ways, with per-window sequences; a
           layered pretrained encoder, its random-init twin and its "-30s" context variant
    face   action-unit-like features on every speech clip; a 4-clip face encoder (too few to probe)
    video  a 4-clip layered encoder and its shuffled-frame variant (the frame-order control)
The results are made by the real scripts: train_probes.py (the grid, under every protocol),
transfer.py (speech -> song), duration.py and enrolment.py (fewer k and draws), on an empty-file RAVDESS tree whose names carry the labels. Deterministic: a rerun
writes the same arrays and the same results.
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from emoprobe import config
from emoprobe.store.store import EmbeddingStore, atomic_write_text

OUT = config.REPO / "tests" / "fixtures" / "results_small"  # embeddings/ and results/ go under it
SEED = 0  # one generator for everything, consumed in a fixed order
# Video and face-encoder clips of the fixture: four audio-video recordings.
FEW_KEYS = ["01-01-01-01-02-01", "01-05-02-02-01-01", "01-01-01-01-02-04", "01-06-02-01-02-04"]
# How strongly each modality separates each emotion (neutral..surprised): audio and face differ on
# purpose, so fusion gains, Shapley values and per-emotion differences have something to show.
AUDIO_STRENGTH = np.array([0.5, 0.4, 0.7, 0.9, 1.3, 1.0, 0.5, 0.8])
FACE_STRENGTH = np.array([0.8, 0.6, 1.4, 0.6, 0.7, 0.5, 1.2, 1.0])
CUT_GAIN = {1: 0.4, 2: 0.75}  # first-seconds cuts: share of the emotion signal a cut keeps
PROBED = ["fx-functionals", "fx-frames", "fx-encoder", "fx-encoder-randinit", "fx-encoder-30s", "fx-au-means"]
MLP_SEEDS = ["0", "1"]  # two seeds: enough to show the folds x seeds bookkeeping
FIXTURE = {"fixture": "synthetic (experiments/make_fixture.py); not real data", "date": "fixture",
           "data_root": "synthetic", "precision": "fp32"}


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

    def projection(self, dim):
        return self.rng.normal(size=(self.latent, dim)) / np.sqrt(self.latent)

    def clips(self, keys, strength, actor_scale, dim, gain=1.0, noise=1.0, projection=None):
        """(clips, dim): emotion signal (x1.5 at strong intensity) + actor, sex, statement, noise."""
        f = fields(keys)
        signal = self.emotion[f["emotion"]] * (strength[f["emotion"] - 1] * np.where(f["intensity"] == 2, 1.5, 1.0))[:, None]
        nuisance = actor_scale * (self.actor[f["actor"]] + 0.7 * self.sex[f["actor"] % 2]) + 0.5 * self.statement[f["statement"]]
        z = gain * signal + nuisance + (f["channel"] == 2)[:, None] * self.song
        projection = self.projection(dim) if projection is None else projection
        return z @ projection + noise * self.rng.normal(size=(len(keys), dim))

    def layers(self, keys, strength, gains, dim=16):
        """(clips, layers, dim): one projection per layer, the emotion signal scaled by each gain."""
        return np.stack([self.clips(keys, strength, 1.0, dim, gain=gain) for gain in gains], axis=1)

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


def facts(encoder, modality, weights, objective, default_pooling="mean", n_layers=None, twin_of=None,
          variant=None, first_seconds=None, base_name=None, **extra):
    """A store's meta facts, as emoprobe.encoders.base.Encoder.facts writes them."""
    return {"encoder": encoder, "modality": modality, "weights": weights, "objective": objective,
            "twin_of": twin_of, "variant": variant, "first_seconds": first_seconds,
            "layered": n_layers is not None, "n_layers": n_layers, "default_pooling": default_pooling,
            "base_name": base_name or encoder + (variant or ""), "model_id": f"synthetic {encoder}",
            "base_set": not (twin_of or variant or first_seconds), **FIXTURE, **extra}


def write_store(root, name, keys, arrays, meta, seconds_per_clip=0.01):
    """arrays: pooling -> (clips, ...) array, plus optionally 'sequence' -> list of per-clip arrays.
    Written through EmbeddingStore (put + finalize), then the per-clip cache is trimmed to what the
    notebooks read (the sequences), to keep the fixture small."""
    store = EmbeddingStore(meta["modality"], name, root)
    for i, key in enumerate(keys):
        store.put(key, {pooling: a[i] for pooling, a in arrays.items()}, seconds=seconds_per_clip)
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


def make_embeddings(root: Path):
    g = Generator()
    speech = speech_keys()
    with_song = sorted(speech + song_keys())
    handcrafted = "hand-crafted acoustics (synthetic)"

    # Hand-crafted functionals on speech and song, and cuts of each clip's first seconds (same space).
    projection = g.projection(24)
    write_store(root, "fx-functionals", with_song,
                {"functionals": g.clips(with_song, AUDIO_STRENGTH, 1.6, 24, projection=projection)},
                facts("fx-functionals", "audio", "hand-crafted", handcrafted, "functionals"))
    for seconds, gain in CUT_GAIN.items():
        write_store(root, f"fx-functionals-first{seconds}s", with_song,
                    {"functionals": g.clips(with_song, AUDIO_STRENGTH, 1.6, 24, gain, 1.2, projection)},
                    facts("fx-functionals", "audio", "hand-crafted", handcrafted, "functionals",
                          first_seconds=seconds))
    # Frame features pooled two ways, with per-window sequences (temporal notebook).
    seqs = g.sequences(speech, AUDIO_STRENGTH, 1.4, 8)
    write_store(root, "fx-frames", speech,
                {"mean": np.stack([s.mean(0) for s in seqs]),
                 "meanstd": np.stack([np.concatenate([s.mean(0), s.std(0)]) for s in seqs]), "sequence": seqs},
                facts("fx-frames", "audio", "hand-crafted", handcrafted, window_s=0.25))
    # A layered pretrained encoder (emotion peaks in the middle layers), its random-init twin, and the
    # same encoder with a longer context (a variant: slower, emotion a little later in depth).
    recognition = "speech recognition (synthetic)"
    write_store(root, "fx-encoder", speech, {"mean": g.layers(speech, AUDIO_STRENGTH, [0.3, 0.7, 1.1, 0.9, 0.6])},
                facts("fx-encoder", "audio", "pretrained", recognition, n_layers=5), 0.05)
    write_store(root, "fx-encoder-randinit", speech,
                {"mean": g.layers(speech, AUDIO_STRENGTH, [0.35, 0.4, 0.4, 0.35, 0.3])},
                facts("fx-encoder", "audio", "random control", recognition, n_layers=5, twin_of="fx-encoder",
                      base_name="fx-encoder-randinit"), 0.05)
    write_store(root, "fx-encoder-30s", speech, {"mean": g.layers(speech, AUDIO_STRENGTH, [0.2, 0.5, 0.9, 1.0, 0.8])},
                facts("fx-encoder", "audio", "pretrained", recognition, n_layers=5, variant="-30s"), 0.4)
    # Face: strong where audio is weak, less actor-bound; and a face encoder that saw only four clips.
    write_store(root, "fx-au-means", speech, {"mean": g.clips(speech, FACE_STRENGTH, 0.8, 12)},
                facts("fx-au-means", "face", "third-party features", "facial action units (synthetic)"), 0.0)
    write_store(root, "fx-face-net", FEW_KEYS, {"mean": g.clips(FEW_KEYS, FACE_STRENGTH, 1.0, 8)},
                facts("fx-face-net", "face", "pretrained", "facial expression classification (synthetic)"), 0.2)
    # Video: four clips, original frame order and a shuffled variant (the frame-order control).
    video = g.clips(FEW_KEYS, FACE_STRENGTH, 1.0, 8)
    for variant, order, shift in [(None, "original", 0.0), ("-shuffled", "shuffled", 1.0)]:
        layers = np.stack([video + shift * depth * 0.3 * g.rng.normal(size=video.shape) for depth in range(3)], axis=1)
        write_store(root, "fx-video" + (variant or ""), FEW_KEYS, {"mean": layers},
                    facts("fx-video", "video", "pretrained", "action recognition (synthetic)", n_layers=3,
                          variant=variant, frame_order=order), 0.5)


def write_ravdess_tree(root: Path) -> None:
    """Empty files named as RAVDESS names them: the labels are in the names, the scripts never read audio."""
    for key in speech_keys() + song_keys():
        path = root / f"Actor_{key[-2:]}" / f"03-{key}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def make_results(embeddings: Path, out: Path, jobs: int):
    """The real scripts on the synthetic stores: the grid, speech -> song transfer, clip duration."""
    train_probes, transfer, duration, enrolment = (script(name) for name in ("train_probes", "transfer", "duration",
                                                                            "enrolment"))

    tree = out.parent / "ravdess"  # the results name their data root: a fixed one keeps rebuilds identical
    write_ravdess_tree(tree)
    try:
        data, common = str(tree), ["--embeddings-dir", str(embeddings)]
        train_probes.main(["--data-root", data, *common, "--out", str(out), "--jobs", str(jobs),
                           "--features", *PROBED, "--seeds", *MLP_SEEDS, "--no-parts", "--no-progress"])
        transfer.main(["--train", data, "--test", data, "--test-channel", "song", *common,
                       "--out", str(out / "transfer.csv")])
        duration.main(["--data-root", data, *common, "--out", str(out / "duration.csv")])
        enrolment.main(["--data-root", data, *common, "--out", str(out), "--k", "1", "4", "--draws", "2",
                        "--jobs", str(jobs), "--quiet"])
    finally:
        shutil.rmtree(tree)


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


def script(name: str):
    """Another script of experiments/ as a module (its main(argv)), loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"experiments_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
