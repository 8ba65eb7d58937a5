"""emoprobe: what frozen encoders know about emotion, probed on RAVDESS (or any corpus).

The pipeline, one subpackage per stage:
    data      labels, the RAVDESS index, folds, the downloader
    media     reading audio and video; finding and aligning faces
    encoders  one interface and one registry for audio, video and face encoders
    store     the per-encoder embedding stores and the extraction loop that fills them
    probes    linear and MLP probes, fusions, the grid over every feature set
    report    tables, statistics, figures and the generated findings
"""
