"""OpenFace AU features: per-frame CSV filtering and pooling, the per-clip means file, real data."""

import numpy as np
import pandas as pd
import pytest

from emoprobe import openface, paths, ravdess
from emoprobe.audio import BadMediaError
from emoprobe.store import EmbeddingStore


def tracking_csv(path, confidence, success):
    """An OpenFace-2-style CSV: header fields after the first have a leading space, as OpenFace writes."""
    n = len(confidence)
    frame = pd.DataFrame({"frame": np.arange(1, n + 1), "timestamp": np.arange(n) / 30,
                          "confidence": confidence, "success": success})
    for i, col in enumerate(openface.AU_COLUMNS):
        frame[col] = np.arange(n) + i  # value = frame index + column index
    text = frame.to_csv(index=False).replace(",", ", ")
    path.write_text(text)
    return path


def test_tracking_csv_keeps_confident_frames_and_pools_them(tmp_path):
    path = tracking_csv(tmp_path / "01-01-03-01-01-01-01.csv", [0.98, 0.5, 0.95, 0.9], [1, 1, 0, 1])
    frames = openface.read_tracking_csv(path)
    assert list(frames.frame) == [1, 4]  # frame 2 low confidence, frame 3 not tracked
    out = openface.encode_tracking(frames)
    expected = np.array([[0, 3]]).T + np.arange(len(openface.AU_COLUMNS))  # frames 0 and 3, by column
    assert np.allclose(out["mean"], expected.mean(0)) and np.allclose(out["meanstd"][35:], 1.5)
    assert out["sequence"].shape == (2, 35)


def test_bad_tracking_files_give_clear_errors(tmp_path):
    with pytest.raises(BadMediaError, match="no frame tracked"):
        openface.read_tracking_csv(tracking_csv(tmp_path / "a.csv", [0.1, 0.2], [1, 1]))
    (tmp_path / "b.csv").write_text("frame, timestamp\n1, 0.0\n")
    with pytest.raises(BadMediaError, match="not an OpenFace 2 AU file"):
        openface.read_tracking_csv(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_bytes(b"")
    with pytest.raises(BadMediaError, match="unreadable"):
        openface.read_tracking_csv(tmp_path / "c.csv")


def test_au_means_file_becomes_a_store_keyed_by_clip(tmp_path):
    rows = [{"clip_id": name, "n_frames": 100, "duplicate_of_other_row": 0,
             **{c + "_mean": float(i) for i, c in enumerate(openface.AU_COLUMNS)}}
            for name in ("01-01-05-02-01-02-12", "01-01-01-01-01-01-03", "not-a-name")]
    pd.DataFrame(rows).to_csv(tmp_path / "means.csv", index=False)
    meta = openface.write_au_means(tmp_path / "means.csv", tmp_path / "emb")
    keys, X = EmbeddingStore("face", "openface-au-means", tmp_path / "emb").load("mean")
    assert keys == ["01-01-01-01-01-03", "01-05-02-01-02-12"] and X.shape == (2, 35)
    assert np.allclose(X[0], np.arange(35)) and meta["n_failures"] == 1


@pytest.mark.skipif(not paths.SHARED_OPENFACE_AU.exists(), reason="needs ../shared/data")
def test_real_au_means_cover_every_speech_clip(tmp_path):
    openface.write_au_means(paths.SHARED_OPENFACE_AU, tmp_path)
    keys, X = EmbeddingStore("face", "openface-au-means", tmp_path).load("mean")
    clips = ravdess.load_clips(paths.SHARED_RAVDESS, verbose=False)
    assert keys == sorted(clips.key)
    emotion = clips.set_index("key").loc[keys, "emotion"].to_numpy()
    au12 = X[:, openface.AU_COLUMNS.index("AU12_r")]  # lip-corner puller: smiling
    assert au12[emotion == 3].mean() > 5 * au12[emotion == 1].mean()
