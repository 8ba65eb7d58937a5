"""Training on one corpus and testing on another (experiments/transfer.py, emoprobe/probes/transfer.py),
with any corpus brought in through a manifest: two generated corpora with different label names and
file names, a RAVDESS folder against its own manifest, --train-where / --test-where, and user errors
that end in one line, never a traceback."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import script_main
from corpus import ravdess_tree, voice, write_wav

from emoprobe import cli, config
from emoprobe.data import folds, manifest
from emoprobe.probes import normalise
from emoprobe.store.store import EmbeddingStore

SECONDS = 0.6  # long enough for eGeMAPS' pitch and loudness statistics, short enough to stay fast
CLIPS = 3  # per speaker and label
VOICE = {"neutral": 0, "happy": 1, "sad": 2, "angry": 3, "fearful": 4}  # one voice per emotion in both corpora
A_LABELS = ["neutral", "happy", "sad", "angry"]
B_CODES = {"ANG": "angry", "HAP": "happy", "SAD": "sad", "FEA": "fearful"}  # CREMA-D-style label codes
B_SENTENCES = ["DFA", "IEO", "TIE"]  # CREMA-D-style sentence codes: one clip each
LABEL_MAP = ["ANG=angry", "HAP=happy", "SAD=sad"]  # FEA left as it is: A has no fearful
SHARED = {"angry", "happy", "sad"}  # neutral (A only) and fearful (B only) must be left out
AUDIO = ["egemaps", "mfcc"]  # hand-crafted: no model to load


def corpus_a(root):
    """Speakers a1-a6, files spk_a1/a1_happy_2.wav; a sex attribute for --train-where."""
    records = []
    for s in range(6):
        for label in A_LABELS:
            for i in range(CLIPS):
                key = f"a{s + 1}_{label}_{i}"
                wave = voice(VOICE[label], s, SECONDS, seed=1000 + 100 * s + 10 * VOICE[label] + i)
                records.append({"key": key, "audio": write_wav(root / f"spk_a{s + 1}" / f"{key}.wav", wave),
                                "label": label, "speaker": f"a{s + 1}", "corpus": "synth-a",
                                "attributes": {"sex": "male" if s % 2 else "female"}})
    return records


def corpus_b(root):
    """Speakers 1001-1006 (others than A's), files AudioWAV/1001_DFA_ANG_XX.wav, labels as codes."""
    records = []
    for s in range(6):
        speaker = 1001 + s
        for code, label in B_CODES.items():
            for i, sentence in enumerate(B_SENTENCES):
                key = f"{speaker}_{sentence}_{code}_XX"
                wave = voice(VOICE[label], 6 + s, SECONDS, seed=2000 + 100 * s + 10 * VOICE[label] + i)
                records.append({"key": key, "audio": write_wav(root / "AudioWAV" / f"{key}.wav", wave),
                                "label": code, "speaker": speaker, "corpus": "synth-b"})
    return records


@pytest.fixture(scope="module")
def splits_dir(tmp_path_factory):
    """Generated folds of the test corpora go to a temporary folder, not the repository's data/splits.
    EmoBox's folds are still read from there: folds.EMOBOX_FOLDS was set when folds was imported (above)."""
    assert folds.EMOBOX_FOLDS.exists()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "SPLITS", tmp_path_factory.mktemp("splits"))
        yield config.SPLITS


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, splits_dir):
    """Corpora A and B with their manifests, both embedded into one embeddings folder."""
    root = tmp_path_factory.mktemp("corpora")
    a = manifest.write(corpus_a(root / "a"), root / "a.jsonl")
    b = manifest.write(corpus_b(root / "b"), root / "b.jsonl")
    embeddings = root / "embeddings"
    for data in (a, b):  # the same stores hold both corpora: transfer joins them by clip key
        script_main("extract_audio")(["--data-root", str(data), "--embeddings-dir", str(embeddings),
                                      "--encoders", *AUDIO])
    return SimpleNamespace(root=root, a=a, b=b, embeddings=embeddings)


@pytest.fixture(scope="module")
def ravdess(tmp_path_factory, splits_dir):
    """A RAVDESS tree of 8 actors (4 male, odd; 4 female, even) and its manifest, each embedded into
    its own embeddings folder. 8 actors, not 6: a one-sex side then has the 4 training speakers the
    transfer probe needs (emoprobe.probes.transfer.MIN_TRAIN_SPEAKERS)."""
    root = tmp_path_factory.mktemp("ravdess")
    tree = ravdess_tree(root / "tree", actors=range(1, 9), seconds=SECONDS, videos=0)
    path = root / "ravdess.jsonl"
    script_main("make_manifest")(["--data-root", str(tree), "--out", str(path)])
    embeddings = {}
    for name, data in (("folder", tree), ("manifest", path)):
        embeddings[name] = root / f"embeddings_{name}"
        script_main("extract_audio")(["--data-root", str(data), "--embeddings-dir", str(embeddings[name]),
                                      "--encoders", "egemaps"])
    return SimpleNamespace(root=root, tree=tree, manifest=path, embeddings=embeddings)


def train_probes(data, embeddings, out):
    # linear only, default poolings, one process: the grid's cheapest run on a loaded machine
    script_main("train_probes")(["--data-root", str(data), "--embeddings-dir", str(embeddings), "--out", str(out),
                                 "--probes", "linear", "--no-extra-poolings", "--jobs", "1"])
    return pd.read_csv(out / "probes.csv")


def test_probes_train_on_a_corpus_given_only_by_a_manifest(corpora, tmp_path, splits_dir):
    probes = train_probes(corpora.a, corpora.embeddings, tmp_path / "results")
    assert len(probes) and set(probes.features) >= {f"audio/{name}" for name in AUDIO}
    assert probes.groupby("features").ua.mean().max() > 0.5  # label-dependent voices: far above chance (0.25)
    # the stores also hold B's clips: the grid probes only A's, on A's 4 labels
    recalls = pd.read_parquet(tmp_path / "results" / "recalls.parquet")
    assert set(recalls["class"]) == set(A_LABELS) and len(recalls) == len(probes) * len(A_LABELS)
    assert (splits_dir / "synth-a_speaker6.json").exists()  # folds generated for A, saved as data


def test_transfer_between_corpora_scores_only_the_labels_they_share(corpora, tmp_path):
    out = tmp_path / "transfer.csv"
    script_main("transfer")(["--train", str(corpora.a), "--test", str(corpora.b), "--label-map", *LABEL_MAP,
                             "--embeddings-dir", str(corpora.embeddings), "--out", str(out)])
    table = pd.read_csv(out)
    assert sorted(table.store) == sorted(f"audio/{name}" for name in AUDIO for _ in normalise.DEFAULT)
    assert sorted(table.normalisation) == sorted(normalise.DEFAULT * len(AUDIO))  # one row per store and protocol
    for row in table.to_dict("records"):
        assert row["n_test"] == 6 * len(SHARED) * CLIPS  # B's fearful clips are not tested
        assert row["n_train"] == 6 * len(SHARED) * CLIPS  # nor A's neutral ones trained on
        assert row["n_folds"] == 1  # no speaker in both corpora: nothing to hold out
        assert 0 <= row["ua"] <= 1 and 0 <= row["ua_within_test"] <= 1
    per_fold = pd.read_csv(tmp_path / "transfer_folds.csv")  # each fold's score and inner CV's choice beside
    assert per_fold.groupby(["store", "normalisation"]).n_test.sum().eq(6 * len(SHARED) * CLIPS).all()
    assert set(per_fold.chosen_candidate) == {"all"} and per_fold.chosen_layer.isna().all()  # no layered store here
    recalls = pd.read_csv(tmp_path / "transfer_recalls.csv")  # each shared label's recall, a row each
    assert recalls.groupby(["store", "normalisation"])["class"].agg(set).eq(SHARED).all() and recalls.recall.notna().all()
    assert table.ua.max() > 0.5  # the same voice per emotion in both corpora: it transfers (chance 1/3)
    assert table.train.str.contains("a.jsonl").all() and table.test.str.contains("b.jsonl").all()


def test_a_ravdess_folder_and_its_manifest_give_identical_stores_and_probes(ravdess, tmp_path):
    stores = {name: EmbeddingStore("audio", "egemaps", root) for name, root in ravdess.embeddings.items()}
    pooling = stores["folder"].meta().get("default_pooling", "mean")
    (keys_f, X_f), (keys_m, X_m) = (stores[name].load(pooling) for name in ("folder", "manifest"))
    assert keys_f == keys_m and len(keys_f) == 8 * 8
    np.testing.assert_array_equal(X_f, X_m)
    columns = ["features", "candidate", "layer", "probe", "fusion", "fold", "ua"]
    folder, from_manifest = (train_probes(data, ravdess.embeddings[name], tmp_path / name)[columns]
                             for name, data in (("folder", ravdess.tree), ("manifest", ravdess.manifest)))
    assert len(folder) and folder.fold.nunique() == 6  # RAVDESS actors: EmoBox's six folds, from either
    pd.testing.assert_frame_equal(folder, from_manifest)


def test_transfer_from_male_to_female_actors(ravdess, tmp_path):
    out = tmp_path / "transfer.csv"
    tree = str(ravdess.tree)
    script_main("transfer")(["--train", tree, "--test", tree, "--train-where", "sex=male", "--test-where",
                             "sex=female", "--embeddings-dir", str(ravdess.embeddings["folder"]), "--out", str(out)])
    table = pd.read_csv(out)
    row = table.iloc[0]
    assert "sex=male" in row.train and "sex=female" in row.test
    # Disjoint speakers: one fold, every male clip trained on and every female clip tested.
    assert (row.n_folds, row.n_train, row.n_test) == (1, 4 * 8, 4 * 8)
    assert pd.read_csv(tmp_path / "transfer_recalls.csv")["class"].nunique() == 8  # a recall per emotion


# -- user errors: one line on stderr, exit status 2 -------------------------------------------------

def manifest_lines(path) -> list[dict]:
    """The records of a manifest, media paths made absolute: a copy elsewhere still finds its files."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [{**r, "audio": str(path.parent / r["audio"])} for r in records]


def edited(path, out, line: int, **fields):
    """A copy of the manifest at `path` with `fields` set on line `line` (1-based)."""
    records = manifest_lines(path)
    records[line - 1].update(fields)
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    return out


def with_folds(path, out, moved_line: int):
    """A copy with a fold per speaker, except on line `moved_line`: that clip's speaker (a1, as on line 1)
    is in another fold there. A blank line after line 1, so a message counting clips instead of lines
    would name the wrong one."""
    records = manifest_lines(path)
    fold_of = {s: i % 3 + 1 for i, s in enumerate(dict.fromkeys(r["speaker"] for r in records))}
    text = [json.dumps({**r, "fold": fold_of[r["speaker"]]}) for r in records]
    text.insert(1, "")
    moved = json.loads(text[moved_line - 1])
    text[moved_line - 1] = json.dumps({**moved, "fold": moved["fold"] % 3 + 1})
    out.write_text("\n".join(text) + "\n")
    return out


MANIFEST_ERRORS = {  # case -> (the bad manifest, from corpus A's, and what its message must say)
    "unknown field": (lambda a, out: edited(a, out, 3, emotion="happy"), ["line 3", "emotion", "attributes"]),
    "empty label": (lambda a, out: edited(a, out, 2, label=""), ["line 2", "'label'"]),
    "missing audio": (lambda a, out: edited(a, out, 4, audio="nowhere/gone.wav"), ["line 4", "gone.wav"]),
    "key twice": (lambda a, out: edited(a, out, 5, key="a1_neutral_0"), ["line 5", "a1_neutral_0", "line 1"]),
    "speaker in two folds": (lambda a, out: with_folds(a, out, 5), ["line 5", "line 1", "speaker-disjoint"]),
}


def run_script(name: str, argv: list[str], capsys) -> str:
    """What a user sees running experiments/<name>.py with argv: the exit status must be 2, stderr one
    line (returned) and no traceback."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        cli.run(script_main(name), argv)
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("script", ["make_manifest", "transfer"])
@pytest.mark.parametrize("case", MANIFEST_ERRORS)
def test_a_bad_manifest_line_is_named_in_one_line(corpora, tmp_path, capsys, case, script):
    make, expected = MANIFEST_ERRORS[case]
    bad = make(corpora.a, tmp_path / "bad.jsonl")
    argv = (["--check", str(bad)] if script == "make_manifest" else
            ["--train", str(corpora.a), "--test", str(bad), "--embeddings-dir", str(corpora.embeddings),
             "--out", str(tmp_path / "transfer.csv")])
    err = run_script(script, argv, capsys)
    assert "bad.jsonl" in err and all(text in err for text in expected), err
    assert not (tmp_path / "transfer.csv").exists()


@pytest.mark.parametrize("options, expected", [
    (["--label-map", "ANG", "HAP=happy"], ["--label-map", "FROM=TO"]),
    (["--label-map", "XYZ=angry"], ["share 1 label(s)", "sad", "--label-map"]),  # SAD reads as sad; ANG, HAP unmapped
    (["--train-where", "sex=nobody"], ["--train-where sex=nobody", "no clip"]),
    (["--train-where", "nocolumn=x"], ["--train-where nocolumn=x", "COLUMN=VALUE", "sex"]),  # names the columns
    (["--test-where", "sex"], ["--test-where sex", "COLUMN=VALUE"]),
])
def test_bad_transfer_options_end_in_one_line(corpora, tmp_path, capsys, options, expected):
    argv = ["--train", str(corpora.a), "--test", str(corpora.b), "--embeddings-dir", str(corpora.embeddings),
            "--out", str(tmp_path / "transfer.csv"), *options]
    err = run_script("transfer", argv, capsys)
    assert all(text in err for text in expected), err
