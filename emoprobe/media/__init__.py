"""Media: reading audio and video files, and finding faces in frames."""


class BadMediaError(ValueError):
    """The file cannot give usable audio/video; the message says why. The batch records and moves on."""
