"""Video decoding (emoprobe/media/video.py) and video encoders (emoprobe/encoders/video.py).

The decoding tests use a small H.264 mp4 written here with PyAV: 40 frames at 30000/1001 fps whose
left half is pure red (checks RGB order) and whose right half is a grey level 10 + 6 * frame index
(checks which frames were kept). Encoders are the registered random-init twins built from tiny
TimeSformer / VideoMAE configs (`config=`), so no model hub is touched. Real RAVDESS clips are used
when ../shared/data is there.
"""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emoprobe.encoders import get_encoder
from emoprobe.encoders.video import VideoEncoder, frame_permutation
from emoprobe.media import BadMediaError
from emoprobe.media.audio import load_audio
from emoprobe.media.video import decode_frames, decode_views, output_size, sample_indices

N, W, H = 40, 64, 48
RATE = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def real_mp4s(real_ravdess):
    mp4s = sorted(real_ravdess.glob("Actor_*/01-*.mp4"))
    if not mp4s:
        pytest.skip("needs the RAVDESS mp4s in ../shared/data")
    return mp4s


def grey(index):
    return 10 + 6 * index


def write_mp4(path: Path, faststart: bool = False) -> Path:
    import av

    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as out:
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast", "g": "12", "bf": "2"}  # lossless, B-frames
        for i in range(N):
            img = np.empty((H, W, 3), np.uint8)
            img[:, : W // 2] = (255, 0, 0)
            img[:, W // 2:] = grey(i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    return write_mp4(tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.fixture(scope="module")
def faststart_mp4(tmp_path_factory):  # index (moov) first: a cut keeps the header, loses frames
    return write_mp4(tmp_path_factory.mktemp("video") / "faststart.mp4", faststart=True)


# ---------------------------------------------------------------------------------------------
# sampling and decoding
# ---------------------------------------------------------------------------------------------
def test_sample_indices_are_segment_centres():
    assert sample_indices(40, 8).tolist() == [2, 7, 12, 17, 22, 27, 32, 37]
    assert sample_indices(100, 1).tolist() == [50]
    assert sample_indices(5, None).tolist() == [0, 1, 2, 3, 4]
    assert sample_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # more asked than exist: repeats
    idx = sample_indices(123, 16)
    assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < 123
    with pytest.raises(ValueError):
        sample_indices(0, 8)


def test_decode_keeps_the_sampled_frames_in_rgb(mp4):
    clip = decode_frames(mp4, 8)
    assert clip.n_total_frames == N and (clip.width, clip.height) == (W, H)
    assert clip.fps == pytest.approx(30000 / 1001)
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (8, H, W, 3)
    assert clip.indices.tolist() == sample_indices(N, 8).tolist()
    right = clip.frames[:, :, W // 2 + 2:].reshape(8, -1, 3).mean(axis=1)
    np.testing.assert_allclose(right, np.repeat(grey(clip.indices)[:, None], 3, 1), atol=3)
    left = clip.frames[:, :, : W // 2 - 2].reshape(-1, 3)
    assert left[:, 0].min() > 240 and left[:, 1:].max() < 15  # red is channel 0: RGB, not BGR


def test_timestamps_follow_the_frame_rate(mp4):
    clip = decode_frames(mp4, None)
    assert len(clip.frames) == N
    assert np.all(np.diff(clip.timestamps) > 0)
    np.testing.assert_allclose(clip.timestamps, np.arange(N) * 1001 / 30000, atol=1e-6)
    step = decode_frames(mp4, 8)
    np.testing.assert_allclose(np.diff(step.timestamps), 5 * 1001 / 30000, atol=1e-6)


def test_resize_in_the_converter(mp4):
    assert output_size(24, 64, 48) == (32, 24)  # int: shortest edge, aspect kept
    assert output_size((20, 10), 64, 48) == (20, 10)
    small = decode_frames(mp4, 4, size=24).frames
    assert small.shape == (4, 24, 32, 3)
    assert small[:, :, :12, 0].min() > 230 and small[:, :, :12, 2].max() < 25


def test_several_samplings_in_one_pass_equal_separate_decodes(mp4):
    views = decode_views(mp4, {"video": (8, 24), "face": (16, (32, 16)), "all": (None, None)})
    assert views["video"].frames.shape == (8, 24, 32, 3)
    assert views["face"].frames.shape == (16, 16, 32, 3)
    assert views["all"].frames.shape == (N, H, W, 3)
    np.testing.assert_array_equal(views["face"].frames, decode_frames(mp4, 16, (32, 16)).frames)
    np.testing.assert_array_equal(views["video"].timestamps, decode_frames(mp4, 8).timestamps)


def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def test_bad_inputs_raise_clear_errors(tmp_path, mp4, faststart_mp4):
    cases = {
        tmp_path / "missing.mp4": "file not found",
        tmp_path / "empty.mp4": "empty file",
        tmp_path / "text.mp4": "not a readable video",
        tmp_path / "audio.wav": "no video stream",
        _cut(mp4, tmp_path / "cut.mp4", 0.6): "not a readable video",  # index at the end: lost
        _cut(faststart_mp4, tmp_path / "cut_fs.mp4", 0.6): "truncated",  # index kept, frames lost
        _cut(faststart_mp4, tmp_path / "cut_last.mp4", 0.999): "truncated",  # last frame cut short
    }
    (tmp_path / "empty.mp4").touch()
    (tmp_path / "text.mp4").write_text("not a video at all")
    sf.write(tmp_path / "audio.wav", np.zeros(1600, np.float32), 16000)
    for path, message in cases.items():
        with pytest.raises(BadMediaError, match=message):
            decode_frames(path, 8)


def test_real_ravdess_clips(real_mp4s):
    for path in real_mp4s:
        clip = decode_frames(path, 8, size=224)
        assert 95 <= clip.n_total_frames <= 130, path.name
        assert clip.fps == pytest.approx(30000 / 1001) and (clip.width, clip.height) == (1280, 720)
        assert clip.frames.shape == (8, 224, 398, 3)
        r, _, b = clip.frames.reshape(-1, 3).mean(axis=0)
        assert r > b  # skin and the warm white background: red above blue in RGB order
        assert clip.timestamps[-1] < clip.n_total_frames / clip.fps


def test_mp4_audio_matches_the_audio_only_file(real_mp4s):
    """The mp4's AAC track is the same recording as the 03- FLAC, once the AAC delay is removed."""
    from scipy.signal import correlate

    for path in real_mp4s:
        flac = path.with_name("03" + path.name[2:]).with_suffix(".flac")
        if not flac.exists():
            continue
        track, ref = load_audio(path, rate=None), load_audio(flac, rate=None)  # both 48 kHz
        lag = int(np.argmax(correlate(track, ref, method="fft"))) - (len(ref) - 1)
        assert 0 <= lag < 4800  # measured: 1600 samples (33.3 ms) of extra audio at the mp4's start
        n = min(len(track) - lag, len(ref))
        assert np.corrcoef(track[lag:lag + n], ref[:n])[0, 1] > 0.99  # measured 0.9998-1.0


# ---------------------------------------------------------------------------------------------
# encoders: the registered random twins, built from tiny configs of the real classes (no hub)
# ---------------------------------------------------------------------------------------------
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            image_size=32, patch_size=16, num_frames=4)


@pytest.fixture(scope="module", params=["timesformer-k400", "videomae-k400"])
def model(request):
    """(registered name, a tiny config of its class): one config object shared by every encoder built."""
    import transformers as tf

    config = tf.TimesformerConfig(**TINY) if "timesformer" in request.param else tf.VideoMAEConfig(**TINY)
    return request.param, config


def _clips(n=2, frames=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (frames, 40, 56, 3), dtype=np.uint8) for _ in range(n)]


def _twin(model, **kw) -> VideoEncoder:
    name, config = model
    return get_encoder(name, random_init=True, config=config, **kw)


def _encoder(model, **kw):
    encoder = _twin(model, **kw)
    if encoder.kind == "timesformer":  # random init leaves time embeddings at 0; a trained model's are not
        torch.manual_seed(1)
        encoder.model.embeddings.time_embeddings.data.normal_(0, 1)
    return encoder


def test_encoder_shapes_for_every_pooling(model):
    encoder = _encoder(model, batch_size=2)
    layers, t = TINY["num_hidden_layers"] + 1, 4 if encoder.kind == "timesformer" else 2  # tubelets of 2
    out = encoder.encode(_clips())
    assert len(out) == 2
    expected = {"mean": (layers, 32), "meanstd": (layers, 64), "sequence": (layers, t, 32)}
    if encoder.kind == "timesformer":
        expected["cls"] = (layers, 32)  # VideoMAE has no CLS token
    assert {k: v.shape for k, v in out[0].items()} == expected
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in out[0].values())
    single = encoder.encode(_clips()[1:])[0]
    for key in out[1]:
        np.testing.assert_allclose(out[1][key], single[key], atol=1e-5)  # batching changes nothing
    assert encoder.meta()["frames"] == 4 and encoder.name == f"{model[0]}-randinit"
    assert encoder.meta()["config_source"] == "config given by the caller"
    facts = encoder.facts()
    assert facts["weights"] == "random control" and facts["twin_of"] == model[0] and facts["n_layers"] == layers


def test_sequence_follows_the_frames(model):
    """Changing one frame changes only its own temporal position at the embedding layer."""
    encoder = _encoder(model)
    clip = _clips(1)[0]
    changed = clip.copy()
    changed[3] = 255 - changed[3]
    a, b = (encoder.encode([c])[0]["sequence"][0] for c in (clip, changed))
    moved = np.abs(a - b).max(axis=-1) > 1e-6
    assert moved.tolist() == ([False, False, False, True] if encoder.kind == "timesformer" else [False, True])


def test_frame_order(model):
    clips = _clips()
    original = _encoder(model).encode(clips)
    reversed_ = _encoder(model, frame_order="reversed")
    assert reversed_.name == f"{model[0]}-reversed-randinit"  # the twin suffix always comes last
    assert reversed_.facts()["twin_of"] == f"{model[0]}-reversed" and reversed_.facts()["variant"] == "-reversed"
    twice = reversed_.encode([c[::-1] for c in clips])  # reversed twice = the original order
    for key in original[0]:
        np.testing.assert_allclose(original[0][key], twice[0][key], atol=1e-5)
    shuffled = _encoder(model, frame_order="shuffled").encode(clips)
    # order is used (tiny random weights attend almost uniformly: a small but real change; an
    # order-blind model differs by ~1e-8, see the next test)
    assert np.abs(shuffled[0]["mean"][-1] - original[0]["mean"][-1]).max() > 1e-4


def test_random_init_timesformer_is_blind_to_order(model):
    """Documented: random-init TimeSformer has zero time embeddings, so it cannot see frame order."""
    if "timesformer" not in model[0]:
        pytest.skip("TimeSformer only")
    clips = _clips(1)
    plain = _twin(model)
    shuffled = _twin(model, frame_order="shuffled")
    a, b = plain.encode(clips)[0], shuffled.encode(clips)[0]
    np.testing.assert_allclose(a["mean"], b["mean"], atol=1e-5)
    np.testing.assert_allclose(a["sequence"][:, shuffled.permutation], b["sequence"], atol=1e-5)


def test_frame_counts_are_checked(model):
    encoder = _encoder(model)
    with pytest.raises(ValueError, match="takes 4 frames"):
        encoder.encode(_clips(1, frames=6))
    if encoder.kind == "timesformer":  # interpolated time embeddings: any count, named in the store
        eight = _twin(model, n_frames=8)
        assert eight.name == "timesformer-k400-8f-randinit" and eight.encode(_clips(1, 8))[0]["sequence"].shape[1] == 8
        assert model[1].num_frames == 4 and _twin(model).n_frames == 4  # the caller's config is left as it was
    else:
        with pytest.raises(ValueError, match="exactly 4 frames"):
            _twin(model, n_frames=8)


def test_shuffle_is_fixed_and_not_trivial():
    perm = frame_permutation(8, "shuffled", seed=0)
    assert sorted(perm.tolist()) == list(range(8)) and perm.tolist() != list(range(8))
    assert perm.tolist() != list(range(8))[::-1]
    np.testing.assert_array_equal(perm, frame_permutation(8, "shuffled", seed=0))
    with pytest.raises(ValueError):
        frame_permutation(8, "sideways")
