"""CREPE pitch tracker (torchcrepe): its penultimate layer as an embedding, and pitch statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import PRETRAINED, SEQUENCE_WINDOW_S, WAVEFORM, Encoder, pool, register

RATE = 16000
HOP = 320  # 20 ms frames (CREPE usually steps 10 ms): half the cost, ample for pitch statistics
FMIN, FMAX = 50.0, 1000.0  # Hz searched by the decoder: low male voices to shouted female speech
PERIODICITY_FILTER = 3  # frames of median smoothing of periodicity before thresholding (torchcrepe README)
VOICED_PERIODICITY = 0.21  # a frame is voiced above this periodicity (torchcrepe README's threshold)
SEMITONE_REF_HZ = 27.5  # semitone scale of eGeMAPS (A0), so pitch features compare across sets
PITCH_FEATURES = ("voiced_fraction", "f0_mean_st", "f0_std_st", "f0_p10_st", "f0_p50_st", "f0_p90_st",
                  "f0_range_p10_p90_st", "f0_slope_st_per_s", "periodicity_mean", "periodicity_voiced_mean")


def pitch_statistics(f0_hz: np.ndarray, periodicity: np.ndarray, voiced: np.ndarray, fps: float) -> np.ndarray:
    """PITCH_FEATURES of one clip from per-frame f0, periodicity and voicing. With fewer than two
    voiced frames the f0 statistics fall back to all frames (voiced_fraction then says so)."""
    frames = voiced if voiced.sum() >= 2 else np.ones_like(voiced)
    st = 12 * np.log2(f0_hz[frames] / SEMITONE_REF_HZ)
    p10, p50, p90 = np.percentile(st, [10, 50, 90])
    slope = np.polyfit(np.flatnonzero(frames) / fps, st, 1)[0]
    return np.array([voiced.mean(), st.mean(), st.std(), p10, p50, p90, p90 - p10, slope,
                     periodicity.mean(), periodicity[frames].mean()], dtype=np.float32)


@register("crepe", modality="audio", input=WAVEFORM, weights=PRETRAINED, sample_rate=RATE,
          objective="pitch estimation (CREPE)", random_twin=True)
class CrepeEncoder(Encoder):
    """CREPE "tiny" (the classifier's 256-d input, per 20 ms frame) plus pitch statistics ("pitch").

    "tiny", not "full": full is ~1.4 GMAC per frame (38x tiny; its second conv alone maps 1024 to
    128 channels), measured 7.9 s per second of audio here against 0.22 s: ~30 s per clip, ~12 h
    for RAVDESS. Tiny's pitch is checked in the tests (a 220 Hz tone; female above male actors).
    """

    def __init__(self, capacity: str = "tiny", **common):
        import torchcrepe

        super().__init__(**common)
        self.capacity = capacity
        self.variant = "" if capacity == "tiny" else f"-{capacity}"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # the random twin keeps the constructor's default init
            self.model = torchcrepe.Crepe(capacity)
        if not self.random_init:
            self.model.load_state_dict(torch.load(self.weights_path(), map_location="cpu", weights_only=True))
        self.model.eval().to(self.device)
        # The classifier's input is the penultimate layer (conv6, flattened): caught on each forward.
        self._penultimate = None
        self.model.classifier.register_forward_hook(lambda m, inputs, out: setattr(self, "_penultimate", inputs[0]))

    def weights_path(self) -> Path:
        import torchcrepe

        return Path(torchcrepe.__file__).parent / "assets" / f"{self.capacity}.pth"

    @torch.inference_mode()
    def frames(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per frame (HOP): penultimate features (T, D), f0 in Hz, periodicity, voiced flags."""
        import torchcrepe

        audio = torch.from_numpy(wave)[None]
        # torchcrepe's framing: centred 1024-sample windows, each mean-removed and scaled to unit std
        batch = torch.cat(list(torchcrepe.preprocess(audio, RATE, HOP, device=self.device)))
        probabilities = self.model(batch).reshape(1, -1, torchcrepe.PITCH_BINS).transpose(1, 2)
        # torchcrepe dithers f0 within +-1 bin (20 cents) with numpy's global RNG: seeded and
        # restored, so that a rerun gives the same features and nothing else's randomness changes.
        state = np.random.get_state()
        np.random.seed(self.seed)
        try:
            f0, periodicity = torchcrepe.postprocess(probabilities, FMIN, FMAX, torchcrepe.decode.viterbi,
                                                     return_periodicity=True)
        finally:
            np.random.set_state(state)
        periodicity = torchcrepe.filter.median(periodicity, PERIODICITY_FILTER)[0].cpu().numpy()
        return (self._penultimate.cpu().numpy(), f0[0].cpu().numpy(), periodicity,
                periodicity >= VOICED_PERIODICITY)

    def encode(self, waves):
        out = []
        for wave in waves:
            features, f0, periodicity, voiced = self.frames(wave)
            clip = pool(features, RATE / HOP, self.sequences)
            clip["pitch"] = pitch_statistics(f0, periodicity, voiced, RATE / HOP)
            out.append(clip)
        return out

    def meta(self):
        from importlib import metadata

        return {"model_id": f"CREPE {self.capacity} (torchcrepe)", "revision": metadata.version("torchcrepe"),
                "files": [self.weights_path().name],
                "preprocessing": f"torchcrepe.preprocess: 1024-sample windows every {HOP} samples, normalised",
                "layers": "classifier input (conv6 output, flattened)",
                "pooling": f"mean / mean+std over {1000 * HOP // RATE} ms frames (silent frames included); pitch = " +
                           ", ".join(PITCH_FEATURES),
                "pitch": f"viterbi decoding {FMIN:g}-{FMAX:g} Hz; voiced: periodicity (median of "
                         f"{PERIODICITY_FILTER}) >= {VOICED_PERIODICITY}; "
                         f"semitones re {SEMITONE_REF_HZ} Hz",
                "sequence": f"means over {SEQUENCE_WINDOW_S} s windows",
                "random_init": f"torch default init (seed {self.seed}), BatchNorm statistics reset"
                               if self.random_init else None,
                "dim": self.model.in_features}
