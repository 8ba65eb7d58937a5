"""OpenFace AU features: per-frame CSV filtering and pooling, landmark normalisation, extraction into the
store (zips, failures, resume), the per-clip means file, and the real shared means."""

import os
import zipfile

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_OPENFACE_AU, script_main

from emoprobe.data import clips as clip_table
from emoprobe.encoders import get_encoder, openface
from emoprobe.errors import UserError
from emoprobe.media import BadMediaError
from emoprobe.store.store import EmbeddingStore

FACE = np.random.default_rng(0).normal(size=(68, 2))  # a face's 68 points, in arbitrary units


def tracking_csv(path, confidence, success, angle=0.0):
    """An OpenFace-2-style CSV (header fields after the first with a leading space, as OpenFace writes):
    AU column i of frame f holds f + i; frame f's landmarks are FACE moved, scaled (f + 1) and rotated."""
    n = len(confidence)
    c, s = np.cos(angle), np.sin(angle)
    points = np.stack([(FACE @ np.array([[c, s], [-s, c]])) * (f + 1) * 40 + [300 + 5 * f, 200] for f in range(n)])
    columns = {"frame": np.arange(1, n + 1), "face_id": 0, "timestamp": np.arange(n) / 30,
               "confidence": confidence, "success": success,
               **{col: np.arange(n) + i for i, col in enumerate(openface.AU_COLUMNS)},
               **{f"{axis}_{k}": points[:, k, j] for j, axis in enumerate("xy") for k in range(68)}}
    frame = pd.DataFrame(columns)
    path.write_text(frame.to_csv(index=False).replace(",", ", "))
    return path


def test_csv_keeps_confident_tracked_frames_and_pools_them(tmp_path):
    path = tracking_csv(tmp_path / "01-01-03-01-01-01-01.csv", [0.98, 0.5, 0.95, 0.9], [1, 1, 0, 1])
    frames = openface.read_openface_csv(path)
    assert list(frames.frame) == [1, 4] and frames.attrs["n_frames_total"] == 4  # 2: low confidence, 3: lost
    [out] = get_encoder("openface-au").encode([frames])
    i = np.arange(35)
    assert np.allclose(out["mean"], 1.5 + i)  # kept frames hold 0 + i and 3 + i
    assert np.allclose(out["meanstd"], np.concatenate([1.5 + i, np.full(35, 1.5)]))
    assert out["sequence"].shape == (2, 35) and np.allclose(out["sequence"][1], 3 + i)
    assert out["landmarks_meanstd"].shape == (272,)
    assert np.allclose(out["landmarks_meanstd"][136:], 0, atol=1e-5)  # same face, only moved and scaled


def test_landmarks_are_normalised_for_position_rotation_and_size(tmp_path):
    frames = openface.read_openface_csv(tracking_csv(tmp_path / "a.csv", [0.9] * 3, [1] * 3, angle=0.7))
    points = openface.normalize_landmarks(frames)
    eyes = np.stack([points[:, list(eye)].mean(1) for eye in openface.EYES], 1)
    assert np.allclose(eyes, [[-0.5, 0], [0.5, 0]], atol=1e-5)  # eyes level and 1 apart, centred
    upright = openface.normalize_landmarks(openface.read_openface_csv(tracking_csv(tmp_path / "b.csv", [0.9], [1])))
    assert np.allclose(points, upright[0], atol=1e-5)  # the same face at any angle, place and size


def test_bad_tracking_files_give_clear_errors(tmp_path):
    with pytest.raises(BadMediaError, match="none of its 2 frame"):
        openface.read_openface_csv(tracking_csv(tmp_path / "a.csv", [0.1, 0.9], [1, 0]))
    (tmp_path / "b.csv").write_text("frame, timestamp\n1, 0.0\n")
    with pytest.raises(BadMediaError, match="not an OpenFace 2 AU file"):
        openface.read_openface_csv(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_bytes(b"")
    with pytest.raises(BadMediaError, match="unreadable"):
        openface.read_openface_csv(tmp_path / "c.csv")


def test_tracking_folder_is_extracted_resumably_with_failures_and_frame_counts(tmp_path):
    src = tmp_path / "tracking"
    (src / "Actor_01").mkdir(parents=True)
    tracking_csv(src / "Actor_01" / "01-01-03-01-01-01-01.csv", [0.9, 0.2, 0.9], [1, 1, 1])
    tracking_csv(src / "Actor_01" / "01-01-04-01-01-01-01.csv", [0.1, 0.1], [1, 1])  # nothing confident
    tracking_csv(src / "01-02-03-01-01-01-01.csv", [0.9], [1])  # song: not asked for
    tracking_csv(src / "notes.csv", [0.9], [1])  # not a RAVDESS name: skipped
    tracking_csv(tmp_path / "01-01-05-02-01-02-02.csv", [0.9, 0.9], [1, 1])
    with zipfile.ZipFile(src / "Actor_02.zip", "w") as z:  # the download, not unzipped
        z.write(tmp_path / "01-01-05-02-01-02-02.csv", "Actor_02/01-01-05-02-01-02-02.csv")
    clips = openface.tracking_sources(src)
    assert sorted(clips.key) == ["01-03-01-01-01-01", "01-04-01-01-01-01", "01-05-02-01-02-02"]

    (meta,) = openface.extract_tracking(clips, get_encoder("openface-au"), tmp_path / "emb").values()
    store = EmbeddingStore("face", "openface-au", tmp_path / "emb")
    keys, X = store.load("meanstd")
    assert keys == ["01-03-01-01-01-01", "01-05-02-01-02-02"] and X.shape == (2, 70)
    assert meta["n_failures"] == 1 and "none of its 2 frame" in store.failures()[0]["error"]
    assert store.sequence("01-03-01-01-01-01").shape == (2, 35) and meta["has_sequences"]
    counts = openface.frame_counts(store).set_index("clip")
    assert counts.loc["01-03-01-01-01-01", ["kept", "total"]].tolist() == [2, 3]
    assert counts.loc["01-04-01-01-01-01", ["kept", "total"]].tolist() == [0, 2]

    # resumed: only the failed clip is retried
    again = openface.extract_tracking(clips, get_encoder("openface-au"), tmp_path / "emb")["face/openface-au"]
    assert again["n_clips"] == 2 and len(openface.frame_counts(store)) == 3
    assert meta["encoder"] == "openface-au" and meta["weights"] == "third-party features"


def write_au_means(csv, embeddings_dir):
    """experiments/extract_openface.py --au-means CSV: the per-clip table into face/openface-au-means."""
    script_main("extract_openface")(["--au-means", str(csv), "--embeddings-dir", str(embeddings_dir)])


def test_au_means_file_becomes_a_store_keyed_by_clip(tmp_path):
    rows = [{"clip_id": name, "n_frames": 100, "duplicate_of_other_row": dup,
             **{c + "_mean": float(i) for i, c in enumerate(openface.AU_COLUMNS)}}
            for name, dup in (("01-01-05-02-01-02-12", 1), ("01-01-01-01-01-01-03", 0), ("not-a-name", 0))]
    pd.DataFrame(rows).to_csv(tmp_path / "means.csv", index=False)
    write_au_means(tmp_path / "means.csv", tmp_path / "emb")
    store = EmbeddingStore("face", "openface-au-means", tmp_path / "emb")
    keys, X = store.load("mean")
    meta = store.meta()
    assert keys == ["01-01-01-01-01-03", "01-05-02-01-02-12"] and X.shape == (2, 35)
    assert np.allclose(X[0], np.arange(35)) and meta["n_failures"] == 1 and not meta["has_sequences"]
    (failure,) = store.failures()  # the row that is not a RAVDESS name: recorded, not silently dropped
    assert failure["clip"] == "not-a-name" and "expected 7 two-digit fields" in failure["error"]
    assert meta["rows_flagged_duplicate_in_source"] == ["01-01-05-02-01-02-12"]  # kept, and said so
    assert meta["source"] == "means.csv" and meta["weights"] == "third-party features"
    pd.DataFrame(rows).drop(columns="AU12_r_mean").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UserError, match="missing AU12_r_mean"):
        write_au_means(tmp_path / "bad.csv", tmp_path / "emb2")


def test_real_au_means_cover_every_speech_clip(tmp_path, real_ravdess, monkeypatch):
    if not SHARED_OPENFACE_AU.exists():
        pytest.skip(f"needs {SHARED_OPENFACE_AU}")
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # 1440 per-clip files: durability is not tested here (7 s)
    assert len(pd.read_csv(SHARED_OPENFACE_AU)) == 1440
    write_au_means(SHARED_OPENFACE_AU, tmp_path)
    keys, X = EmbeddingStore("face", "openface-au-means", tmp_path).load("mean")
    clips = clip_table.load(real_ravdess, verbose=False)
    assert len(keys) == 1440 and keys == sorted(clips.key)
    emotion = clips.set_index("key").loc[keys, "emotion"].to_numpy()
    au12 = X[:, openface.AU_COLUMNS.index("AU12_r")]  # lip-corner puller: smiling
    assert au12[emotion == 3].mean() > 5 * au12[emotion == 1].mean()  # happy vs neutral
