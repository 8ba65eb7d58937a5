"""The clips table every script starts from: one row per clip with its label, speaker and media.

Columns: key, label (categorical: known emotion names in RAVDESS's order, then others sorted), speaker,
audio, video (paths, NaN where absent), corpus, fold / split (when a manifest gives them), and the
corpus's own attributes (RAVDESS: emotion code, intensity, statement, repetition, actor, sex, channel).
A data root is a RAVDESS folder (any layout) or a manifest .jsonl; both go through the same records.
"""

from __future__ import annotations

import os

import pandas as pd

from .. import config
from ..errors import NoDataError
from . import labels, manifest, ravdess

MODALITY_COLUMN = {"audio": "audio", "video": "video"}  # which column feeds each extractor


def records(data_root=None, channel: str | None = "speech", verbose: bool = True) -> list[dict]:
    """Manifest records of a data root: read from a manifest, or indexed from a RAVDESS folder."""
    root = config.data_root(data_root)
    if manifest.is_manifest(root):
        return manifest.read(root)
    if root.is_file() and root.suffix.lower() in (".csv", ".tsv", ".json", ".txt"):
        raise NoDataError(f"{root}: manifests are JSON lines (.jsonl), one clip per line: {{\"key\": ..., "
                          "\"audio\": ..., \"label\": ..., \"speaker\": ...}} (see emoprobe/data/manifest.py)")
    if not root.is_dir():
        raise NoDataError(f"{root}: no such folder or manifest; give --data-root (a RAVDESS folder or a "
                          "manifest .jsonl) or set $RAVDESS_ROOT")
    return ravdess.records(root, channel, verbose)


def load(data_root=None, channel: str | None = "speech", modality: str | None = None,
         limit: int | None = None, verbose: bool = True) -> pd.DataFrame:
    """The clips table (see above). channel filters RAVDESS-style corpora (a manifest without a channel
    attribute is not filtered). modality "audio" / "video": adds `source`, the file that modality's
    extractor reads, and with limit keeps the first `limit` clips that have one."""
    clips = manifest.to_clips(records(data_root, channel, verbose), label_order=list(labels.EMOTION_NAMES))
    if channel is not None and "channel" in clips:
        clips = clips[clips.channel == channel].reset_index(drop=True)
    if clips.empty:
        raise NoDataError(f"no {channel or ''} clips in {config.data_root(data_root)}")
    if modality:
        clips["source"] = clips[MODALITY_COLUMN[modality]]
    if limit:
        clips = (clips[clips.source.notna()] if modality else clips).head(limit)
    return clips


def data_label(data_root=None) -> str:
    """How results name a data root: its path relative to the repository (no machine-specific path)."""
    return os.path.relpath(config.data_root(data_root), config.REPO)
