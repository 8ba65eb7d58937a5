"""Hand-crafted audio baselines: openSMILE functionals and torchaudio spectral frames."""

from __future__ import annotations

import torch

from .base import HANDCRAFTED, SEQUENCE_WINDOW_S, WAVEFORM, Encoder, pool, register

RATE = 16000  # resampled like the neural encoders, so every audio set sees the same signal


@register("egemaps", modality="audio", input=WAVEFORM, weights=HANDCRAFTED, sample_rate=RATE,
          objective="hand-crafted acoustics (eGeMAPS, 88 functionals)", default_pooling="functionals",
          feature_set="eGeMAPSv02")
@register("compare", modality="audio", input=WAVEFORM, weights=HANDCRAFTED, sample_rate=RATE,
          objective="hand-crafted acoustics (ComParE 2016, 6373 functionals)", default_pooling="functionals",
          feature_set="ComParE_2016")
class OpenSmileEncoder(Encoder):
    """openSMILE functionals (eGeMAPSv02: 88-d, ComParE_2016: 6373-d) plus their frame-level LLDs."""

    def __init__(self, feature_set: str = "eGeMAPSv02", **common):
        import opensmile

        super().__init__(**common)
        self.feature_set = feature_set
        fs = getattr(opensmile.FeatureSet, feature_set)
        self.functionals = opensmile.Smile(feature_set=fs, feature_level=opensmile.FeatureLevel.Functionals)
        self.lld = opensmile.Smile(feature_set=fs, feature_level=opensmile.FeatureLevel.LowLevelDescriptors)

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
                "sequence": f"LLD means over {SEQUENCE_WINDOW_S} s windows",
                "dim": len(self.functionals.feature_names)}


@register("logmel", modality="audio", input=WAVEFORM, weights=HANDCRAFTED, sample_rate=RATE,
          objective="hand-crafted acoustics (64 log-mel bands)", kind="logmel")
@register("mfcc", modality="audio", input=WAVEFORM, weights=HANDCRAFTED, sample_rate=RATE,
          objective="hand-crafted acoustics (40 MFCCs)", kind="mfcc")
class SpectralEncoder(Encoder):
    """log-mel or MFCC frames from torchaudio, pooled: the low-level baseline."""

    def __init__(self, kind: str = "logmel", n_mels: int = 64, n_mfcc: int = 40, **common):
        import torchaudio

        super().__init__(**common)
        self.kind = kind
        melkw = {"n_fft": 400, "hop_length": 160, "n_mels": n_mels}  # 25 ms windows, 10 ms hop
        if kind == "logmel":
            self.transform = torchaudio.transforms.MelSpectrogram(RATE, **melkw)
            self.label = f"logmel{n_mels}"
        elif kind == "mfcc":
            self.transform = torchaudio.transforms.MFCC(RATE, n_mfcc=n_mfcc, melkwargs=melkw)
            self.label = f"mfcc{n_mfcc}"
        else:
            raise ValueError(f"unknown spectral kind {kind!r}")

    def encode(self, waves):
        out = []
        for wave in waves:
            with torch.no_grad():
                spec = self.transform(torch.from_numpy(wave))
            if self.kind == "logmel":
                spec = torch.log(spec + 1e-6)
            out.append(pool(spec.T.numpy(), 100.0, self.sequences))
        return out

    def meta(self):
        return {"model_id": f"torchaudio {self.label}", "pooling": "mean and mean+std over 10 ms frames"}
