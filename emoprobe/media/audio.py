"""Read a clip's audio as mono float32 at the rate an encoder wants, or say clearly why not."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from .. import timing
from . import BadMediaError

SILENCE_PEAK = 1e-4  # a peak below this (about -80 dBFS) is digital silence: nothing to embed
MIN_SECONDS = 0.1  # shorter clips give encoders fewer frames than their receptive field
SOUNDFILE_SUFFIXES = {".wav", ".flac"}  # read by libsndfile (which also spots a truncated WAV); others by PyAV


def read_audio(path: str | Path) -> tuple[np.ndarray, int, int]:
    """(samples as float32, shape (n, channels); sample rate; channels). wav and flac are read by
    libsndfile; every other container (mp3, ogg, m4a, and the audio track of mp4, mkv, webm...) by PyAV."""
    path = Path(path)
    if not path.exists():
        raise BadMediaError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise BadMediaError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() not in SOUNDFILE_SUFFIXES:
        return _read_av_audio(path)
    try:
        declared = re.search(r"data\s*:\s*(\d+) \(should be (\d+)\)", sf.info(path).extra_info)
        if declared and int(declared.group(2)) < int(declared.group(1)):
            # libsndfile would silently read what is left: a cut download must not pass as a short clip
            raise BadMediaError(f"{path}: truncated (header says {declared.group(1)} data bytes, "
                                f"file holds {declared.group(2)})")
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
    except BadMediaError:
        raise
    except Exception as err:  # soundfile raises LibsndfileError/RuntimeError with terse text
        raise BadMediaError(f"{path}: unreadable audio ({err})") from err
    return samples, rate, samples.shape[1]


def _read_av_audio(path: Path) -> tuple[np.ndarray, int, int]:
    import av  # imported here: wav and flac never need it

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise BadMediaError(f"{path}: no audio track")
            stream = container.streams.audio[0]
            # Decoders give float or integer samples, planar or interleaved (AAC: float planar;
            # ALAC: int16 planar; PCM/FLAC: int16 interleaved): convert all to planar float in [-1, 1].
            to_float = av.AudioResampler(format="fltp")
            chunks = [f.to_ndarray() for frame in container.decode(stream) for f in to_float.resample(frame)]
            chunks += [f.to_ndarray() for f in to_float.resample(None)]
            rate, channels = stream.rate, stream.channels
    except av.error.FFmpegError as err:
        raise BadMediaError(f"{path}: undecodable audio ({err})") from err
    if not chunks:
        raise BadMediaError(f"{path}: audio track has no frames")
    samples = np.concatenate(chunks, axis=1).T  # (n, channels)
    return samples.astype(np.float32), rate, channels


def load_audio(path: str | Path, rate: int | None = 16000) -> np.ndarray:
    """Mono float32 at `rate` (None keeps the file's rate). Stereo is averaged to mono."""
    with timing.stage("decode"):
        samples, file_rate, _ = read_audio(path)
    mono = samples.mean(axis=1)
    if rate is not None and file_rate != rate:
        with timing.stage("resample"):
            mono = torchaudio.functional.resample(torch.from_numpy(mono), file_rate, rate).numpy()
    check_audio(mono, rate or file_rate, path)
    return np.ascontiguousarray(mono, dtype=np.float32)


def check_audio(wave: np.ndarray, rate: int, path) -> None:
    if len(wave) < MIN_SECONDS * rate:
        raise BadMediaError(f"{path}: too short ({len(wave) / rate:.3f} s < {MIN_SECONDS} s)")
    if not np.isfinite(wave).all():
        raise BadMediaError(f"{path}: audio contains NaN or inf")
    if np.abs(wave).max() < SILENCE_PEAK:
        raise BadMediaError(f"{path}: silent (peak {np.abs(wave).max():.1e})")


def duration(path) -> float:
    """Seconds of audio in a file from its header (0.0 when the header cannot tell: mp4s, bad files)."""
    try:
        return sf.info(path).duration
    except Exception:  # only used to order clips by length; unreadable files fail later, when loaded
        return 0.0
