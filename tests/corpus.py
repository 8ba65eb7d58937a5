"""Synthetic corpora for the end-to-end tests: media whose content depends on the label, so probes
have something to learn, written under RAVDESS names or any other (with a manifest).

Audio: a voiced tone whose pitch, vibrato rate and loudness contour are set by the emotion and whose
pitch register is set by the speaker, plus a little noise; each clip jitters them a little.
Video: an mp4 (H.264 + AAC, the clip's own audio) of a real face photograph (scikit-image's
astronaut, so MTCNN finds a face) on a background whose brightness follows the emotion.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
RATE = 16000  # written at 16 kHz: what every encoder reads, so no resampling cost in the tests
VIDEO_RATE = Fraction(30000, 1001)  # RAVDESS's 29.97 frames/s
VIDEO_SIZE = (192, 144)  # width, height: small, but a face MTCNN can find


def voice(label_index: int, speaker_index: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Mono float32 at RATE: pitch, vibrato and loudness depend on the label, register on the speaker."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = (110 + 18 * label_index) * (1 + 0.12 * (speaker_index % 4)) * rng.uniform(0.97, 1.03)
    vibrato = 1 + 0.03 * np.sin(2 * np.pi * (2 + label_index) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))  # a few harmonics: voice-like spectra
    envelope = 0.3 + 0.2 * np.sin(np.pi * t / seconds) ** (1 + label_index % 3)
    wave = envelope * wave / 3 + 0.01 * (1 + label_index % 4) * rng.standard_normal(len(t))
    return wave.astype(np.float32)


def write_wav(path: Path, wave: np.ndarray, rate: int = RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate, subtype="PCM_16")
    return path


def face_frames(label_index: int, n_frames: int) -> np.ndarray:
    """(n, H, W, 3) uint8: the astronaut's face, drifting slightly, on a label-dependent background."""
    from PIL import Image
    from skimage import data

    w, h = VIDEO_SIZE
    face = np.asarray(Image.fromarray(data.astronaut()[20:230, 140:330]).resize((96, 106)))
    frames = np.full((n_frames, h, w, 3), 40 + 20 * label_index, np.uint8)
    for i in range(n_frames):
        x, y = 48 + i % 4, 19
        frames[i, y:y + face.shape[0], x:x + face.shape[1]] = face
    return frames


def write_mp4(path: Path, frames: np.ndarray | None = None, audio: np.ndarray | None = None,
              audio_rate: int = 48000) -> Path:
    """An mp4 with H.264 video of `frames` ((n, H, W, 3) uint8 RGB) and/or AAC audio of `audio`
    ((samples, channels) float32 at audio_rate), like a RAVDESS audio-video clip; None leaves a stream out."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:  # every stream is added before the first packet is muxed
        packets = []
        vs = out.add_stream("libx264", rate=VIDEO_RATE) if frames is not None else None
        aus = out.add_stream("aac", rate=audio_rate) if audio is not None else None
        if vs is not None:
            vs.height, vs.width = frames.shape[1:3]
            vs.pix_fmt = "yuv420p"
            for frame in frames:
                packets += vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24"))
            packets += vs.encode()
        if aus is not None:
            layout = "stereo" if audio.shape[1] == 2 else "mono"
            aus.layout = layout
            planar = np.ascontiguousarray(audio.T, dtype=np.float32)
            for start in range(0, planar.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, start:start + 1024]),
                                                   format="fltp", layout=layout)
                chunk.sample_rate = audio_rate
                packets += aus.encode(chunk)
            packets += aus.encode()
        out.mux(packets)
    return path


def ravdess_tree(root: Path, actors=range(1, 9), emotions=range(1, 9), repetitions=(1,), seconds: float = 1.0,
                 videos: int = 2, channel: int = 1) -> Path:
    """A RAVDESS-named tree: Actor_XX/03-CC-EE-01-01-RR-AA.wav for every actor x emotion x repetition
    (normal intensity, statement 1), and the first `videos` clips also as 01- audio-video mp4s."""
    n = 0
    for actor in actors:
        for emotion in emotions:
            for rep in repetitions:
                fields = f"{channel:02d}-{emotion:02d}-01-01-{rep:02d}-{actor:02d}"
                wave = voice(emotion - 1, actor - 1, seconds, seed=actor * 100 + emotion * 10 + rep)
                write_wav(root / f"Actor_{actor:02d}" / f"03-{fields}.wav", wave)
                if n < videos:  # the mp4's track: the same recording at 48 kHz stereo, as RAVDESS's
                    stereo = np.repeat(np.interp(np.arange(len(wave) * 3) / 3, np.arange(len(wave)), wave)[:, None], 2, 1)
                    write_mp4(root / f"Actor_{actor:02d}" / f"01-{fields}.mp4",
                              face_frames(emotion - 1, int(seconds * 30)), stereo)
                n += 1
    return root


def clean_checkout(dest: Path) -> Path:
    """The repository's tracked and untracked-but-not-ignored files, copied to dest."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest
