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
# Other names corpora give these emotions (EmoBox's shared names among them): read as the names above.
ALIASES = {"anger": "angry", "happiness": "happy", "sadness": "sad", "fear": "fearful", "surprise": "surprised",
           "disgusted": "disgust", "calmness": "calm", "neutrality": "neutral"}
# Emotions other corpora have and RAVDESS has not (EmoBox's label maps), kept as they are.
OTHER_EMOTIONS = ("contempt", "frustrated", "frustration", "excited", "excitement", "bored", "boredom", "other",
                  "pleasant surprise", "sleepy", "amused", "anxious", "anxiety", "pain", "confused")
CODE_LENGTH = 3  # labels this short are a corpus's codes (CREMA-D's ANG, HAP...), never taken for typos
TYPO_CUTOFF = 0.8  # difflib similarity above which an unknown label is taken for a misspelt known one
CHANCE_UA = 1 / len(EMOTIONS)


def normalise(label) -> str:
    """A label as every table holds it: trimmed, lower-case, an alias read as the name above."""
    text = " ".join(str(label).split()).lower()
    return ALIASES.get(text, text)


def misspelt(label) -> list[str]:
    """The known names a label is probably a misspelling of (empty: a known name, a code, or a label
    of the corpus's own, far from every known name)."""
    import difflib

    text = normalise(label)
    known = (*EMOTION_NAMES, *ALIASES, *OTHER_EMOTIONS)
    if text in known or len(text) <= CODE_LENGTH:
        return []
    return difflib.get_close_matches(text, known, n=3, cutoff=TYPO_CUTOFF)


def actor_sex(actor: int) -> str:
    """Odd-numbered actors are male, even-numbered female (dataset README)."""
    return "male" if actor % 2 else "female"
