"""Adding an encoder is one class and one registration: a toy encoder goes through extraction, the probe
grid and the findings with no other edit (no list, script or report names it)."""

import numpy as np
import pandas as pd
import pytest
from conftest import script_main
from corpus import ravdess_tree

from emoprobe.encoders import HANDCRAFTED, WAVEFORM, Encoder, base, pool, register

TOY = "toy-energy"


class ToyEnergy(Encoder):
    """Frame energy and zero-crossing rate over 20 ms frames: two numbers per frame."""

    def encode(self, waves):
        out = []
        for wave in waves:
            frames = wave[: len(wave) // 320 * 320].reshape(-1, 320)
            energy = np.log(np.mean(frames ** 2, axis=1) + 1e-8)
            crossings = np.mean(np.abs(np.diff(np.sign(frames), axis=1)) > 0, axis=1)
            out.append(pool(np.stack([energy, crossings], axis=1), 50.0, self.sequences))
        return out


@pytest.fixture
def toy_registered():
    register(TOY, modality="audio", input=WAVEFORM, weights=HANDCRAFTED, sample_rate=16000,
             objective="toy: frame energy and zero crossings")(ToyEnergy)
    yield
    del base.REGISTRY[TOY]  # the registry is process-wide: leave it as it was


def test_a_registered_encoder_goes_through_the_whole_pipeline(tmp_path, toy_registered):
    tree = ravdess_tree(tmp_path / "ravdess", actors=range(1, 9), seconds=0.6, videos=0)
    embeddings, results = tmp_path / "embeddings", tmp_path / "results"
    common = ["--data-root", str(tree), "--embeddings-dir", str(embeddings)]
    script_main("extract_audio")([*common, "--encoders", TOY, "logmel"])
    script_main("train_probes")([*common, "--out", str(results)])
    findings, questions = tmp_path / "findings.md", tmp_path / "research_questions.md"
    script_main("make_findings")([*common, "--results", str(results), "--out", str(findings),
                                  "--questions-out", str(questions)])

    stores = pd.read_csv(results / "stores.csv").set_index("store")
    assert stores.loc[f"audio/{TOY}", "weights"] == HANDCRAFTED  # the facts come from the registration
    assert stores.loc[f"audio/{TOY}", "n_clips"] == 64
    probes = pd.read_csv(results / "probes.csv")
    toy = probes[(probes.features == f"audio/{TOY}") & (probes.probe == "linear")]
    assert len(toy) and toy.ua.mean() > 0.2  # label-dependent pitch and loudness: well above chance (0.125)
    text = findings.read_text()
    assert f"audio/{TOY}" in text and "toy: frame energy and zero crossings" in text
