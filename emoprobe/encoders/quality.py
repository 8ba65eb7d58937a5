"""DNSMOS (Microsoft's speech-quality predictor, shipped in speechmos): hidden layers and MOS scores.

A clip-level model with a fixed 9.01 s input and no time axis after its global max-pooling, so
there is no "sequence" and no "meanstd" (RAVDESS clips are all shorter: one window each).
"""

from __future__ import annotations

import numpy as np

from . import onnx as ox
from .base import PRETRAINED, WAVEFORM, Encoder, register

RATE = 16000
WINDOW = int(9.01 * RATE)  # DNSMOS input: 9.01 s (144160 samples)
HOP = RATE  # clips longer than the window are read in windows every 1 s, as the package does
P835_LAYERS = {"dense128": "mos_estimator_logpow/dense/Relu:0",  # first dense layer after global max-pool
               "mean": "mos_estimator_logpow/dense_1/Relu:0"}  # 64-d layer the SIG/BAK/OVRL head reads
P808_LAYERS = {"p808": "mos_estimator_small_1/dense_4/Relu:0"}  # 64-d layer the P.808 head reads
STFT_PREFIX = "time2freq/"  # the P.835 graph's fixed STFT kernels: front end, kept by the random twin
SCORES = ("sig", "bak", "ovrl", "p808")


@register("dnsmos", modality="audio", input=WAVEFORM, weights=PRETRAINED, sample_rate=RATE,
          objective="speech quality (DNSMOS P.835)", random_twin=True)
class DNSMOSEncoder(Encoder):
    """DNSMOS P.835 (sig_bak_ovr.onnx, on the waveform) and P.808 (model_v8.onnx, on a 120-bin log-mel):
    their last hidden layers, and the four MOS scores as the package computes them."""

    def __init__(self, threads: int = ox.THREADS, **common):
        from speechmos.dnsmos import DNSMOS

        super().__init__(**common)
        self.paths = [ox.package_file("speechmos", "dnsmos_models", f) for f in ("sig_bak_ovr.onnx", "model_v8.onnx")]
        p835, p808 = (ox.load(p) for p in self.paths)
        if self.random_init:
            ox.randomize_initializers(p835, self.seed, keep=(STFT_PREFIX,))
            ox.randomize_initializers(p808, self.seed + 1)
        self.p835 = ox.session(ox.add_outputs(p835, list(P835_LAYERS.values())), threads)
        self.p808 = ox.session(ox.add_outputs(p808, list(P808_LAYERS.values())), threads)
        # The package's P.808 log-mel and its polynomial MOS calibration, without its own sessions
        # (default thread count, no hidden outputs): neither method reads the instance.
        self.package = DNSMOS.__new__(DNSMOS)

    def windows(self, wave: np.ndarray) -> np.ndarray:
        """(n, WINDOW): a short clip tiled (repeated) to fill one window, as the package tiles it.
        The package then also averages windows shifted by 1 s through the tiled copy: for RAVDESS
        (2.9-5.3 s) 1-9 windows, 5.1 on average, re-reading the same audio rotated; we use one."""
        wave = np.resize(np.clip(wave, -1, 1), max(len(wave), WINDOW)).astype(np.float32)
        return np.stack([wave[s:s + WINDOW] for s in range(0, len(wave) - WINDOW + 1, HOP)])

    def encode_clip(self, wave: np.ndarray) -> dict[str, np.ndarray]:
        segments = self.windows(wave)
        raw, *p835 = self.p835.run(None, {"input_1": segments})
        mels = np.stack([self.package.audio_melspec(s[:-160]) for s in segments]).astype(np.float32)
        p808_mos, *p808 = self.p808.run(None, {"input_1": mels})
        sig, bak, ovrl = self.package.get_polyfit_val(raw[:, 0], raw[:, 1], raw[:, 2], False)
        out = {k: v.mean(0) for k, v in zip([*P835_LAYERS, *P808_LAYERS], [*p835, *p808])}
        out["scores"] = np.array([sig.mean(), bak.mean(), ovrl.mean(), p808_mos.mean()])
        return {k: v.astype(np.float32) for k, v in out.items()}

    def encode(self, waves):
        return [self.encode_clip(w) for w in waves]

    def meta(self):
        from importlib import metadata

        return {"model_id": "Microsoft DNSMOS P.835 + P.808 (speechmos)", "revision": metadata.version("speechmos"),
                "onnxruntime": metadata.version("onnxruntime"), "files": [p.name for p in self.paths],
                "preprocessing": "clip tiled to one 9.01 s window (longer clips: windows every 1 s, averaged); "
                                 "P.808 input: the package's 120-bin log-mel of the window",
                "layers": {**P835_LAYERS, **P808_LAYERS},
                "sequence": None,  # no time axis after the global max-pooling
                "pooling": "mean = P.835 64-d penultimate layer; dense128 = P.835 first dense layer; "
                           "p808 = P.808 64-d penultimate layer; scores = " + ", ".join(SCORES) +
                           " (package calibration, non-personalised)",
                "random_init": "float weights ~ N(0, each tensor's own std); STFT kernels kept"
                               if self.random_init else None}
