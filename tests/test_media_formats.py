"""Audio and video in the containers users bring (issue: any corpus through a manifest): each kind is
written here with PyAV from known content and read back through the same functions the extractors use."""

from fractions import Fraction

import numpy as np
import pytest

from emoprobe.media.audio import load_audio
from emoprobe.media.video import decode_frames

RATE = 16000
AUDIO_FORMATS = {".wav": ("pcm_s16le", "s16"), ".flac": ("flac", "s16"), ".mp3": ("libmp3lame", "fltp"),
                 ".ogg": ("libopus", "s16"), ".m4a": ("aac", "fltp")}  # container -> (codec, sample format)
VIDEO_FORMATS = {".mp4": "libx264", ".avi": "mpeg4", ".mkv": "libx264", ".flv": "flv", ".webm": "libvpx"}


def sine(seconds=1.0, freq=440.0):
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path, wave, codec, fmt):
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=RATE)
        stream.layout = "mono"
        data = (wave * 32767).astype(np.int16) if fmt == "s16" else wave
        packets = []
        for start in range(0, len(data), 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[None, start:start + 1024]), format=fmt,
                                               layout="mono")
            frame.sample_rate = RATE
            packets += stream.encode(frame)
        out.mux(packets + stream.encode())
    return path


def write_video(path, codec, n=12, size=(64, 48)):
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(25) if codec in ("flv", "mpeg4") else Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        packets = []
        for i in range(n):
            img = np.zeros((size[1], size[0], 3), np.uint8)
            img[:, : size[0] // 2] = (200, 30, 30)  # red left half: RGB order must survive
            img[:, size[0] // 2:] = 20 * i % 256  # brightness steps with the frame index
            packets += stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24"))
        out.mux(packets + stream.encode())
    return path


@pytest.mark.parametrize("suffix", AUDIO_FORMATS)
def test_audio_containers_decode_to_the_same_signal(tmp_path, suffix):
    wave = sine()
    path = write_audio(tmp_path / f"clip{suffix}", wave, *AUDIO_FORMATS[suffix])
    got = load_audio(path, RATE)
    assert abs(len(got) - len(wave)) < 0.1 * RATE  # codecs pad by a frame or two
    spectrum = np.abs(np.fft.rfft(got))
    assert abs(np.argmax(spectrum) * RATE / len(got) - 440) < 5  # the tone is still 440 Hz
    assert 0.2 < np.abs(got).max() < 0.6


@pytest.mark.parametrize("suffix", VIDEO_FORMATS)
def test_video_containers_decode_to_sampled_rgb_frames(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", VIDEO_FORMATS[suffix])
    clip = decode_frames(path, 4)
    assert clip.frames.shape == (4, 48, 64, 3)
    left = clip.frames[:, :, :16].reshape(-1, 3).mean(0)
    assert left[0] > 150 and left[1] < 80 and left[2] < 80  # red stays red: RGB, not BGR
    brightness = clip.frames[:, :, 40:].mean(axis=(1, 2, 3))
    assert np.all(np.diff(brightness) > 0)  # frames come in time order
