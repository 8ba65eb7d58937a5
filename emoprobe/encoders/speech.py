"""transformers speech encoders (wav2vec2 family, Whisper's encoder, AST): every hidden layer.

Each registered name carries its checkpoint and, for offline random twins, the config class whose
defaults are that checkpoint's architecture. Another checkpoint is one more @register line.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import PRETRAINED, SEQUENCE_WINDOW_S, WAVEFORM, Encoder, pool, register
from .hub import load_transformers_model

RATE = 16000  # every neural speech encoder here was trained on 16 kHz audio
_W2V = ("Wav2Vec2FeatureExtractor", {})
_SPEECH = dict(modality="audio", input=WAVEFORM, weights=PRETRAINED, needs_hub=True, random_twin=True,
               layered=True, sample_rate=RATE)


@register("wav2vec2-base", **_SPEECH, objective="self-supervised speech (contrastive, LibriSpeech)",
          model_id="facebook/wav2vec2-base", offline_config=("Wav2Vec2Config", {}), offline_processor=_W2V)
@register("hubert-base", **_SPEECH, objective="self-supervised speech (masked prediction, LibriSpeech)",
          model_id="facebook/hubert-base-ls960", offline_config=("HubertConfig", {}),
          offline_processor=("Wav2Vec2FeatureExtractor", {"do_normalize": False}))
@register("wavlm-base-plus", **_SPEECH, objective="self-supervised speech (masked prediction + denoising)",
          model_id="microsoft/wavlm-base-plus", offline_config=("WavLMConfig", {}),
          offline_processor=("Wav2Vec2FeatureExtractor", {"do_normalize": False}))
@register("data2vec-audio-base", **_SPEECH, objective="self-supervised speech (data2vec)",
          model_id="facebook/data2vec-audio-base", offline_config=("Data2VecAudioConfig", {}),
          offline_processor=_W2V)
@register("whisper-tiny", **_SPEECH, objective="speech recognition (Whisper, multilingual)",
          model_id="openai/whisper-tiny", offline_config=("WhisperConfig", {}),
          offline_processor=("WhisperFeatureExtractor", {}))
@register("ast-audioset", **_SPEECH, objective="audio event classification (AudioSet)",
          model_id="MIT/ast-finetuned-audioset-10-10-0.4593", offline_config=("ASTConfig", {}),
          offline_processor=("ASTFeatureExtractor", {}))
class TransformersEncoder(Encoder):
    """Every hidden layer of a transformers speech model, pooled over the frames that hold audio."""

    bf16 = True
    def __init__(self, model_id: str, offline_config=None, offline_processor=None, config=None, **common):
        super().__init__(**common)
        self.model_id = model_id
        self.model, self.extractor, self.config_source = load_transformers_model(
            model_id, random_init=self.random_init, offline_config=offline_config,
            offline_processor=offline_processor, seed=self.seed, config=config)
        self.model.to(self.device)
        self.kind = {"whisper": "whisper", "audio-spectrogram-transformer": "ast"}.get(
            self.model.config.model_type, "ctc")
        if self.kind == "whisper":
            self.model = self.model.get_encoder()
        self.n_layers = self.model.config.num_hidden_layers + 1

    @torch.inference_mode()
    def encode(self, waves):
        lengths = [len(w) for w in waves]
        if self.kind == "ctc":
            return self._encode_ctc(waves, lengths)
        features = self.extractor(waves, sampling_rate=RATE, return_tensors="pt")
        key = "input_features" if self.kind == "whisper" else "input_values"
        with self.autocast():
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
        with self.autocast():
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
                "config_source": self.config_source, "transformers": transformers.__version__,
                "architecture": type(self.model).__name__,
                "layers": "hidden_states[0..L]: embedding output then each transformer layer",
                "pooling": "mean / mean+std over frames covering the audio" +
                           (", cls = mean of CLS and distillation tokens" if self.kind == "ast" else ""),
                "batch_size": self.batch_size, "device": self.device,
                "sequence": f"means over {SEQUENCE_WINDOW_S} s windows, every layer"}
