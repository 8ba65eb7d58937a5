"""Shared pytest set-up: no model hub, a generated RAVDESS-like tree, the developers' real data."""

import importlib.util
import os
from pathlib import Path

# The hub is unreachable here and in CI: fail fast instead of retrying. Set before transformers loads.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

# Test models are tiny: one thread is fastest, and on shared CI cores more threads oversubscribe
# (measured: a tiny wav2vec2 batch took 0.7 s with 2 threads beside other jobs, 0.02 s with 1).
torch.set_num_threads(1)

# The developers' shared copy of RAVDESS, beside the repository (../shared/data/ravdess). Only the tests
# know this path: the package reads its data root from --data-root / $RAVDESS_ROOT.
REPO = Path(__file__).resolve().parents[1]
SHARED_RAVDESS = REPO.parent / "shared" / "data" / "ravdess"
SHARED_OPENFACE_AU = REPO.parent / "shared" / "data" / "ravdess_openface_au" / "au_means_per_clip.csv"

FAKE_RATE = 48000  # RAVDESS audio is 48 kHz

# Valid recordings written by tmp_ravdess: relative path -> (kind of content, channels).
FAKE_GOOD = {
    "Actor_01/03-01-01-01-01-01-01.wav": ("sine", 1),
    "Actor_01/03-01-05-02-01-02-01.wav": ("noise", 1),
    "Actor_02/03-01-03-01-02-01-02.wav": ("sine", 2),  # stereo, like 5 real files
    "Actor_02/03-01-08-02-02-02-02.flac": ("noise", 1),  # the shared copy is FLAC
    "Actor_03/03-01-04-01-01-02-03.wav": ("sine", 1),
    "Actor_03/03-02-03-01-01-01-05.wav": ("sine", 1),  # song channel (actor field 05, folder ignored)
}
# Files whose names break the RAVDESS scheme: every one must be reported, none may crash the index.
FAKE_MALFORMED = [
    "Actor_01/03-01-09-01-01-01-01.wav",  # emotion 09
    "Actor_01/foo.wav",  # not a RAVDESS name
    "Actor_02/03-01-01-02-01-01-02.wav",  # neutral has no strong intensity
]
FAKE_SYMLINK = "Actor_01_link"  # a symlink to Actor_01: its files must be found once


def tone(seconds=0.5, rate=FAKE_RATE, channels=1, kind="sine", seed=0):
    """(n, channels) float32 test audio: a 220 Hz sine (each channel a different level) or noise."""
    n = int(seconds * rate)
    if kind == "sine":
        wave = 0.5 * np.sin(2 * np.pi * 220 * np.arange(n) / rate)
        out = np.stack([wave * (1 - 0.3 * c) for c in range(channels)], axis=1)
    else:
        out = 0.2 * np.random.default_rng(seed).standard_normal((n, channels))
    return out.astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, rate: int = FAKE_RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, subtype="PCM_16")
    return path


@pytest.fixture
def tmp_ravdess(tmp_path):
    """A small RAVDESS-like tree: FAKE_GOOD, FAKE_MALFORMED and a symlinked actor folder."""
    root = tmp_path / "ravdess"
    for i, (rel, (kind, channels)) in enumerate(FAKE_GOOD.items()):
        write_audio(root / rel, tone(0.3 + 0.05 * i, channels=channels, kind=kind, seed=i))
    for rel in FAKE_MALFORMED:
        write_audio(root / rel, tone(0.2))
    (root / FAKE_SYMLINK).symlink_to(root / "Actor_01", target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def real_ravdess():
    """The shared RAVDESS speech set (developers and CI only); tests using it skip elsewhere."""
    if not SHARED_RAVDESS.exists():
        pytest.skip(f"needs the real RAVDESS copy at {SHARED_RAVDESS}")
    return SHARED_RAVDESS


def script_main(name: str):
    """The main(argv) of experiments/<name>.py, imported without running the script."""
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def script_status(name: str, argv: list) -> int:
    """experiments/<name>.py run as a user runs it (cli.run: a user error is one line and exit 2): its exit status."""
    from emoprobe import cli

    try:
        cli.run(script_main(name), [str(a) for a in argv])
    except SystemExit as exit:
        return exit.code
    return 0
