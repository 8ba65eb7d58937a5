"""The clips table every script starts from: labels, speaker, and the file each modality reads."""

from __future__ import annotations

import pandas as pd

from .. import config
from . import ravdess


def load(data_root=None, channel: str | None = "speech", modality: str | None = None,
         limit: int | None = None, verbose: bool = True) -> pd.DataFrame:
    """Clips under the data root (see config.data_root) for one vocal channel (None: all).

    modality "audio" / "video": adds a `source` column, the file that modality's extractor reads
    (NaN where the clip has no such file), and with limit keeps the first `limit` clips that have one.
    """
    clips = ravdess.load_clips(config.data_root(data_root), channel, verbose)
    if modality:
        clips["source"] = [ravdess.source_path(row, modality) for row in clips.itertuples()]
    if limit:
        clips = clips[clips.source.notna()].head(limit) if modality else clips.head(limit)
    return clips
