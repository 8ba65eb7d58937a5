"""The one encoder interface and its registry: audio, video and face encoders alike.

An encoder is a class with `encode(inputs) -> [dict of float32 arrays per clip]` and `meta()`,
registered with the facts that everything downstream reads (store meta.json, probe grid, findings,
notebooks, Makefile targets):

    @register("egemaps", modality="audio", input=WAVEFORM, weights=HANDCRAFTED,
              objective="hand-crafted acoustics", default_pooling="functionals",
              feature_set="eGeMAPSv02")          # any other keyword: a constructor default
    class OpenSmileEncoder(Encoder): ...

    get_encoder("egemaps")                        # build it
    get_encoder("whisper-tiny.en", random_init=True)   # its random-init twin (or "whisper-tiny.en-randinit")
    encoder_names(modality="audio", offline=True)      # what runs with no model hub

Per clip, every encoder returns arrays named by pooling (time or frame statistics):
    mean      (layers, D) or (D,)      average over frames / windows / face crops
    meanstd   (layers, 2D) or (2D,)    average and standard deviation
    sequence  (layers, T, D) or (T, D) averages over SEQUENCE_WINDOW_S windows (or per frame)
plus any encoder-specific pooling (openSMILE "functionals", TimeSformer "cls", FER "probs").
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import UserError

# What an encoder takes per clip (the extractor that feeds it follows from this).
WAVEFORM = "waveform"  # mono float32 at the card's sample_rate
FRAMES = "frames"  # uint8 RGB frames (T, H, W, 3), uniformly sampled in time order
FACES = "faces"  # a media.faces.FaceTrack: sampled frames with the detected face in each
OPENFACE = "openface"  # a per-frame OpenFace 2 table (pandas), or per-clip means
INPUTS = (WAVEFORM, FRAMES, FACES, OPENFACE)

# What the weights are: the label every table and figure shows.
PRETRAINED = "pretrained"
RANDOM = "random control"  # same architecture and compute as a pretrained encoder, random weights
HANDCRAFTED = "hand-crafted"
THIRD_PARTY = "third-party features"  # computed elsewhere (OpenFace's trained AU detectors)
WEIGHTS = (PRETRAINED, RANDOM, HANDCRAFTED, THIRD_PARTY)

MODALITIES = ("audio", "video", "face")
RANDOM_SUFFIX = "-randinit"  # store name of a random-init twin
SEQUENCE_WINDOW_S = 0.25  # sequence resolution kept for the temporal analysis (4 windows per second)


class UnknownEncoderError(UserError):
    """A name that is not registered (the message lists those that are)."""


@dataclass(frozen=True)
class EncoderCard:
    """The facts an encoder declares once, at registration."""

    name: str  # registry name = store folder name (a random twin adds RANDOM_SUFFIX)
    modality: str  # audio | video | face
    input: str  # one of INPUTS
    weights: str  # of the encoder itself (its twin is RANDOM)
    objective: str = ""  # what the weights were trained for, e.g. "speech recognition"
    needs_hub: bool = False  # weights come from the model hub at run time
    random_twin: bool = False  # a same-architecture random-init twin can be built
    layered: bool = False  # outputs (layers, D): every hidden layer
    default_pooling: str = "mean"  # the pooling a store contributes to fusions
    sample_rate: int | None = None  # waveform encoders: the rate they take
    in_groups: bool = True  # False: run only when named (a reference path that duplicates another encoder)


class Encoder:
    """Base class. Subclasses implement encode() and meta(); get_encoder() sets `card`."""

    card: EncoderCard
    bf16 = False  # True: encode() runs its model under self.autocast(), so precision="bf16" takes effect
    variant = ""  # appended to the name when an option changes the representation (e.g. "-16f")
    n_layers: int | None = None  # layered encoders: hidden states kept (embedding output + blocks)

    def __init__(self, random_init: bool = False, device: str = "cpu", sequences: bool = True,
                 batch_size: int = 1, precision: str = "fp32", seed: int = 0, first_seconds: float | None = None):
        self.random_init, self.device, self.sequences = random_init, device, sequences
        if precision not in ("fp32", "bf16"):
            raise UserError(f"precision {precision!r}: use fp32 or bf16")
        self.batch_size, self.seed = batch_size, seed
        self.precision = precision if self.bf16 else "fp32"  # encoders without a bf16 path run (and say) fp32
        self.first_seconds = first_seconds  # set: the extractor feeds only each clip's first seconds

    @property
    def name(self) -> str:
        cut = f"-first{self.first_seconds:g}s" if self.first_seconds else ""
        return self.card.name + self.variant + cut + (RANDOM_SUFFIX if self.random_init else "")

    def encode(self, inputs: list) -> list[dict[str, np.ndarray]]:
        raise NotImplementedError

    def autocast(self):
        """bf16 autocast on the encoder's device when precision is bf16, else nothing."""
        import torch

        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def meta(self) -> dict:
        """Provenance specific to this encoder (model id, revision, preprocessing, pooling...)."""
        return {}

    def facts(self) -> dict:
        """What the store's meta.json says about this encoder, read by the grid and the findings."""
        return {"encoder": self.card.name, "modality": self.card.modality, "input": self.card.input,
                "weights": RANDOM if self.random_init else self.card.weights,
                "objective": self.card.objective, "needs_hub": self.card.needs_hub and not self.random_init,
                "twin_of": self.card.name + self.variant if self.random_init else None,
                "layered": self.card.layered, "n_layers": self.n_layers,
                "default_pooling": self.card.default_pooling, "sample_rate": self.card.sample_rate,
                "variant": self.variant or None, "precision": self.precision, "first_seconds": self.first_seconds,
                "base_name": self.card.name + self.variant + (RANDOM_SUFFIX if self.random_init else ""),
                # a member of fusions: the encoder as registered, whole clips, not a control or a reference copy
                "base_set": not (self.random_init or self.variant or self.first_seconds) and self.card.in_groups}


@dataclass(frozen=True)
class _Entry:
    card: EncoderCard
    cls: type
    defaults: dict


REGISTRY: dict[str, _Entry] = {}


def register(name: str, **facts_and_defaults):
    """Class decorator: register `cls` under `name`. Keywords that are EncoderCard fields are its
    facts; the others are constructor defaults (stack decorators to register one class twice)."""
    fields = set(EncoderCard.__dataclass_fields__)
    card = EncoderCard(name=name, **{k: v for k, v in facts_and_defaults.items() if k in fields})
    defaults = {k: v for k, v in facts_and_defaults.items() if k not in fields}
    if card.modality not in MODALITIES or card.input not in INPUTS or card.weights not in WEIGHTS:
        raise ValueError(f"{name}: modality, input or weights not one of {MODALITIES}, {INPUTS}, {WEIGHTS}")

    def decorate(cls):
        if name in REGISTRY and REGISTRY[name].cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"encoder {name!r} is registered twice")
        REGISTRY[name] = _Entry(card, cls, defaults)
        return cls
    return decorate


def _split_name(name: str) -> tuple[str, bool]:
    """'whisper-tiny.en-randinit' -> ('whisper-tiny.en', True)."""
    if name not in REGISTRY and name.endswith(RANDOM_SUFFIX) and name[:-len(RANDOM_SUFFIX)] in REGISTRY:
        return name[:-len(RANDOM_SUFFIX)], True
    return name, False


def get_card(name: str) -> EncoderCard:
    base, twin = _split_name(name)
    if base not in REGISTRY:
        raise UnknownEncoderError(f"unknown encoder {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    card = REGISTRY[base].card
    if twin and not card.random_twin:  # e.g. "egemaps-randinit": names nothing that can be built
        raise UnknownEncoderError(f"{base} has no random-init twin ({card.weights} features)")
    return card


def get_encoder(name: str, random_init: bool = False, settings: dict | None = None, **options) -> Encoder:
    """Build a registered encoder. `options` go to its constructor (device, sequences, batch_size,
    precision...); those it does not take are dropped, so one set of options serves every encoder.
    `settings` are options the user named for this encoder (--set KEY=VALUE): one it does not take
    is an error, not dropped."""
    base, twin = _split_name(name)
    get_card(base)
    unknown = sorted(set(settings or {}) - (_accepted_keywords(REGISTRY[base].cls) or set(settings or {})))
    if unknown:
        raise UnknownEncoderError(f"{name} takes no option {', '.join(unknown)}")
    options = {**options, **(settings or {})}
    card = get_card(base)
    random_init = random_init or twin
    if random_init and not card.random_twin:
        raise UnknownEncoderError(f"{base} has no random-init twin ({card.weights} features)")
    entry = REGISTRY[base]
    accepted = _accepted_keywords(entry.cls)
    kwargs = {**entry.defaults, **{k: v for k, v in options.items() if accepted is None or k in accepted}}
    if random_init:
        kwargs["random_init"] = True
    encoder = entry.cls(**kwargs)
    encoder.card = card
    return encoder


def _accepted_keywords(cls) -> set[str] | None:
    """Keyword arguments cls(...) takes, following **kwargs up to Encoder; None: anything."""
    accepted = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        accepted |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return accepted - {"self"}
    return None


def encoder_names(modality: str | None = None, input: str | None = None, offline: bool | None = None,
                  weights: str | None = None) -> list[str]:
    """Registered names, filtered: offline=True keeps those that need no model hub."""
    return [name for name, e in sorted(REGISTRY.items()) if e.card.in_groups
            and (modality is None or e.card.modality == modality) and (input is None or e.card.input == input)
            and (offline is None or e.card.needs_hub != offline) and (weights is None or e.card.weights == weights)]


GROUPS = {  # names the extractors' --encoders also take, expanded within the script's modality
    "offline": "every encoder that runs with no model hub",
    "hub": "every encoder whose weights come from the model hub",
    "controls": "the random-init twin of every offline pretrained encoder",
    "all": "offline + hub",
}


def expand(names: list[str], modality: str | None = None, input: str | None = None) -> list[str]:
    """Encoder names (twins as name-randinit) from names and GROUPS, in order, each once; unknown
    names raise UnknownEncoderError, names of another modality or input too."""
    out = []
    for name in names:
        if name in ("offline", "hub", "all"):
            out += encoder_names(modality, input, offline={"offline": True, "hub": False, "all": None}[name])
        elif name == "controls":
            out += [n + RANDOM_SUFFIX for n in encoder_names(modality, input, offline=True, weights=PRETRAINED)
                    if REGISTRY[n].card.random_twin]
        else:
            card = get_card(name)
            if (modality and card.modality != modality) or (input and card.input != input):
                wanted = encoder_names(modality, input)
                raise UnknownEncoderError(f"{name} is a {card.modality} encoder taking {card.input}; this "
                                          f"script runs: {', '.join(wanted)} (or a group: {', '.join(GROUPS)})")
            out.append(name)
    return list(dict.fromkeys(out))


def cards() -> list[dict]:
    """Every registered encoder's facts, one dict each (for tables and --list)."""
    return [asdict(REGISTRY[n].card) for n in sorted(REGISTRY)]


def describe(modality: str | None = None) -> str:
    """A plain-text list of the registered encoders (the scripts' --list)."""
    lines = [f"{'name':24} {'modality':8} {'weights':22} {'hub':4} {'twin':5} objective"]
    for c in cards():
        if modality is None or c["modality"] == modality:
            lines.append(f"{c['name']:24} {c['modality']:8} {c['weights']:22} {'yes' if c['needs_hub'] else 'no':4} "
                         f"{'yes' if c['random_twin'] else 'no':5} {c['objective']}")
    return "\n".join(lines + [f"groups: {', '.join(f'{k} ({v})' for k, v in GROUPS.items())}"])


def pool(frames: np.ndarray, frames_per_second: float, sequences: bool = True) -> dict[str, np.ndarray]:
    """Pool frames over time (axis -2): mean, mean+std, and window means for the sequence."""
    frames = np.asarray(frames, dtype=np.float32)
    mean, std = frames.mean(axis=-2), frames.std(axis=-2)
    out = {"mean": mean, "meanstd": np.concatenate([mean, std], axis=-1)}
    if sequences:
        # Window w covers [w, w+1) * SEQUENCE_WINDOW_S seconds for every frame rate: at 50 frames/s a
        # window holds 12 or 13 frames (12.5 on average), so window index -> time is the same in all models.
        n = frames.shape[-2]
        per_window = max(1.0, SEQUENCE_WINDOW_S * frames_per_second)
        edges = [math.floor(w * per_window) for w in range(max(1, math.ceil(n / per_window)))] + [n]
        out["sequence"] = np.stack([frames[..., a:b, :].mean(axis=-2) for a, b in zip(edges, edges[1:])], axis=-2)
    return out
