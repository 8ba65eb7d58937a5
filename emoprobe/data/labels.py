"""RAVDESS label codes and names: the one place they are defined.

Codes follow the dataset's README (Livingstone & Russo 2018): each file name has seven two-digit
fields, modality-channel-emotion-intensity-statement-repetition-actor.
"""

MODALITIES = {1: "audio_video", 2: "video_only", 3: "audio_only"}
CHANNELS = {1: "speech", 2: "song"}
EMOTIONS = {1: "neutral", 2: "calm", 3: "happy", 4: "sad", 5: "angry", 6: "fearful", 7: "disgust", 8: "surprised"}
INTENSITIES = {1: "normal", 2: "strong"}
STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
REPETITIONS = {1: "first", 2: "second"}
N_ACTORS = 24

# The song channel has only these emotions and no Actor_18 (dataset README).
SONG_EMOTIONS = (1, 2, 3, 4, 5, 6)
SONG_MISSING_ACTORS = (18,)

EMOTION_NAMES = tuple(EMOTIONS.values())  # class order used by every probe and confusion matrix
CHANCE_UA = 1 / len(EMOTIONS)


def actor_sex(actor: int) -> str:
    """Odd-numbered actors are male, even-numbered female (dataset README)."""
    return "male" if actor % 2 else "female"
