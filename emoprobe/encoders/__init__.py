"""Encoders: one interface (base.Encoder) and one registry for audio, video and face models.

Importing this package registers every encoder; heavy libraries load only when one is built.
"""

from . import face, handcrafted, keyword, openface, pitch, quality, speaker, speech, video, whisper  # noqa: F401
from .base import (FACES, FRAMES, HANDCRAFTED, OPENFACE, PRETRAINED, RANDOM, THIRD_PARTY, WAVEFORM,  # noqa: F401
                   Encoder, EncoderCard, UnknownEncoderError, cards, describe, encoder_names, expand, get_card,
                   get_encoder, pool, register)
