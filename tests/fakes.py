"""Stand-in encoders for the extraction tests: cheap, deterministic, and not in the registry."""

from __future__ import annotations

from emoprobe.encoders import FRAMES, HANDCRAFTED, WAVEFORM, Encoder, EncoderCard


class FunctionEncoder(Encoder):
    """A function of a batch of inputs, seen by run_extraction as an encoder (card, name, encode, meta,
    facts). Its store is <modality>/<name>."""

    def __init__(self, name: str, encode, modality: str = "audio", layers: int | None = None, **common):
        super().__init__(**common)
        self.card = EncoderCard(name, modality=modality, input=WAVEFORM if modality == "audio" else FRAMES,
                                weights=HANDCRAFTED, layered=layers is not None,
                                sample_rate=16000 if modality == "audio" else None)
        self.n_layers, self._encode = layers, encode

    def encode(self, inputs):
        return self._encode(inputs)

    def meta(self):
        return {"model_id": self.name}
