"""Reading audio (emoprobe/media/audio.py): formats, channels, rates, and clear errors for bad files."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import FAKE_RATE, tone, write_audio

from emoprobe.data.ravdess import source_path
from emoprobe.media import BadMediaError
from emoprobe.media.audio import duration, load_audio, read_audio

# The stereo files of the real speech set (../shared/data/README.md); all others are mono.
REAL_STEREO = ["Actor_01/03-01-02-01-01-02-01", "Actor_01/03-01-08-01-02-02-01", "Actor_05/03-01-02-01-02-02-05",
               "Actor_20/03-01-03-01-02-01-20", "Actor_20/03-01-06-01-01-02-20"]


def test_wav_and_flac_give_the_same_samples(tmp_path):
    pcm = (tone(0.5, kind="noise")[:, 0] * 32767).astype(np.int16)  # the same 16-bit samples in both files
    wav = load_audio(write_audio(tmp_path / "a.wav", pcm), rate=None)
    flac = load_audio(write_audio(tmp_path / "a.flac", pcm), rate=None)
    assert wav.dtype == np.float32 and wav.shape == (len(pcm),)
    np.testing.assert_array_equal(wav, flac)
    np.testing.assert_array_equal(wav, pcm / np.float32(32768))


def test_stereo_is_averaged_to_mono(tmp_path):
    stereo = tone(0.5, channels=2)
    path = write_audio(tmp_path / "stereo.wav", stereo)
    samples, rate, channels = read_audio(path)
    assert (samples.shape, rate, channels) == ((len(stereo), 2), FAKE_RATE, 2)
    np.testing.assert_allclose(load_audio(path, rate=None), samples.mean(axis=1), atol=1e-7)


def test_48k_is_resampled_to_16k(tmp_path):
    seconds = 0.75
    sine = tone(seconds)  # 220 Hz: far below the new Nyquist, so it must survive resampling intact
    wave = load_audio(write_audio(tmp_path / "a.wav", sine), rate=16000)
    assert wave.dtype == np.float32 and len(wave) == int(seconds * 16000)
    expected = 0.5 * np.sin(2 * np.pi * 220 * np.arange(len(wave)) / 16000)
    np.testing.assert_allclose(wave[200:-200], expected[200:-200], atol=2e-3)  # edges: filter ramp


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    (lambda p: p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEgarbage" * 20), "unreadable audio"),
    (lambda p: p.write_bytes(write_audio(p, tone(0.5)).read_bytes()[:30]), "unreadable audio"),  # cut in the header
    (lambda p: p.write_bytes(write_audio(p, tone(0.5)).read_bytes()[:2000]), "truncated"),  # cut in the data
    (lambda p: write_audio(p, np.zeros((FAKE_RATE, 1), np.float32)), "silent"),
    (lambda p: write_audio(p, tone(0.05)), "too short"),
])
def test_bad_audio_raises_a_clear_error_naming_the_file(tmp_path, make, message):
    path = tmp_path / "03-01-05-02-01-02-12.wav"
    make(path)
    with pytest.raises(BadMediaError) as err:
        load_audio(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_a_truncated_flac_is_unreadable(tmp_path):
    path = write_audio(tmp_path / "a.flac", tone(1.0, kind="noise"))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(BadMediaError) as err:
        load_audio(path)
    assert str(err.value).startswith(f"{path}: unreadable audio")


def test_a_missing_file_is_bad_media(tmp_path):
    with pytest.raises(BadMediaError, match="file not found"):
        load_audio(tmp_path / "nope.wav")


def test_audio_source_prefers_the_audio_file_then_the_mp4():
    rows = pd.DataFrame({"path_audio": ["a.wav", None, None], "path_av": ["a.mp4", "b.mp4", None]})
    assert [source_path(r, "audio") for r in rows.itertuples()] == ["a.wav", "b.mp4", None]


def test_duration_reads_the_header_and_is_zero_when_it_cannot(tmp_path):
    assert duration(write_audio(tmp_path / "a.flac", tone(0.5))) == pytest.approx(0.5)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    assert duration(tmp_path / "bad.wav") == 0.0 and duration(tmp_path / "missing.wav") == 0.0


def test_real_stereo_files_are_stereo_and_load_as_mono(real_ravdess):
    for name in REAL_STEREO:
        path = real_ravdess / f"{name}.flac"
        samples, rate, channels = read_audio(path)
        assert channels == 2 and rate == 48000, name
        wave = load_audio(path, rate=None)
        np.testing.assert_allclose(wave, samples.mean(axis=1), atol=1e-7)
        assert load_audio(path).shape == (int(np.ceil(len(wave) / 3)),)
    _, _, channels = read_audio(real_ravdess / "Actor_01" / "03-01-01-01-01-01-01.flac")
    assert channels == 1


def write_mp4_audio(path, samples, codec, fmt, rate=FAKE_RATE):
    """An mp4 holding only a stereo audio track, encoded from (n, 2) float samples."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        stream.format = fmt
        for i in range(0, len(samples), 1024):
            chunk = samples[i:i + 1024]
            if fmt == "fltp":
                data = chunk.T
            elif fmt == "s16p":
                data = (chunk.T * 32767).astype(np.int16)
            else:  # interleaved
                data = (chunk.reshape(1, -1) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout="stereo")
            frame.rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize("codec, fmt", [("aac", "fltp"), ("alac", "s16p"), ("pcm_s16le", "s16")])
def test_mp4_audio_in_any_sample_format_reads_as_float_channels(tmp_path, codec, fmt):
    """RAVDESS mp4s carry AAC (planar float); integer and interleaved tracks must read the same way."""
    stereo = tone(1.0, channels=2)  # left 0.5, right 0.35 amplitude
    samples, rate, channels = read_audio(write_mp4_audio(tmp_path / f"{codec}.mp4", stereo, codec, fmt))
    assert (rate, channels, samples.shape[1], samples.dtype) == (FAKE_RATE, 2, 2, np.float32)
    middle = slice(4800, 40000)  # away from codec priming and the end
    for c in range(2):
        level = np.abs(samples[middle, c]).max()
        assert level == pytest.approx(0.5 * (1 - 0.3 * c), rel=0.1), (codec, c)
    if codec != "aac":  # lossless: sample for sample (AAC adds a delay)
        np.testing.assert_allclose(samples[:len(stereo)], stereo, atol=2 / 32768)


def test_sf_reads_what_load_audio_reads(tmp_path):
    """load_audio keeps the file's samples untouched at its own rate (no hidden gain or dither)."""
    path = write_audio(tmp_path / "a.flac", tone(0.4, kind="noise", seed=3))
    np.testing.assert_array_equal(load_audio(path, rate=None), sf.read(path, dtype="float32")[0])
