"""Data: RAVDESS labels and index, folds, the downloader (and manifests of any corpus)."""
