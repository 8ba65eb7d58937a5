"""EmoBox's metadata read as it ships (emoprobe.data.emobox, make_manifest.py --from-emobox): on its
real RAVDESS and CREMA-D files when ../shared/data is present, and on small corpora written here
(layouts, extensions, malformed files) always."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_RAVDESS, script_main, script_status
from corpus import voice, write_wav

from emoprobe import cli, probes
from emoprobe.data import clips as clip_table
from emoprobe.data import emobox, folds
from emoprobe.probes import discover_feature_sets

SHARED_EMOBOX = SHARED_RAVDESS.parent / "emobox"
needs_shared = pytest.mark.skipif(not SHARED_EMOBOX.is_dir(), reason="../shared/data/emobox is absent")
REPO = Path(__file__).resolve().parents[1]


def make_manifest(*args) -> int:
    return script_status("make_manifest", args)


TOY_MAP = {"Ang": "Angry", "Neu": "Neutral", "Hap": "Happy", "ANG": "Angry", "NEU": "Neutral", "SAD": "Sad"}
VOICE = {"Angry": 0, "Neutral": 1, "Happy": 2, "Sad": 3}  # one voice per shared emotion, whatever the corpus


def small_corpus(root: Path, name="toy", speakers=(1, 2, 3, 4), labels=("Ang", "Neu"), folds_of=None,
                 clips=1) -> Path:
    """An EmoBox corpus folder (metadata) and its audio under root/audio/downloads/<name>/wav/, each
    label's voice set by its EmoBox name (corpus.voice)."""
    folder = root / "meta" / name
    folder.mkdir(parents=True)
    folds_of = folds_of or {s: 1 + i % 2 for i, s in enumerate(speakers)}  # two speaker-disjoint folds
    rows, stm = [], []
    for s in speakers:
        for i, label in enumerate(label for label in labels for _ in range(clips)):
            key = f"{name}-{s}-{i}"
            wav = f"downloads/{name}/wav/{s}_{i}.wav"
            write_wav(root / "audio" / wav, voice(VOICE[TOY_MAP[label]], s, 0.6, seed=100 * s + i))
            rows.append({"key": key, "dataset": name, "wav": wav, "length": 0.6, "emo": label, "channel": 1})
            stm.append(f"{key} 1 {s} 0 0.6 <id={key},spk={s}> {label}")
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / emobox.STM).write_text("\n".join(stm) + "\n")
    (folder / emobox.LABEL_MAP).write_text(json.dumps({label: TOY_MAP[label] for label in labels}))
    for k in sorted(set(folds_of.values())):
        (folder / f"fold_{k}").mkdir()
        for side, keep in (("test", lambda f: f == k), ("train", lambda f: f != k)):
            chosen = [r for r in rows if keep(folds_of[int(r["key"].split("-")[1])])]
            (folder / f"fold_{k}" / f"{name}_{side}_fold_{k}.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in chosen))
    return folder


def test_records_keep_keys_speakers_folds_and_labels(tmp_path):
    folder = small_corpus(tmp_path)
    corpus = emobox.read(folder)
    records, how = emobox.records(corpus, tmp_path / "audio")
    assert len(records) == 8 and not how.missing and how.how == {"as given": 8}
    first = records[0]
    assert (first["key"], first["speaker"], first["label"], first["fold"]) == ("toy-1-0", 1, "ang", 1)
    assert {r["label"] for r in emobox.records(corpus, tmp_path / "audio", emobox_labels=True)[0]} == {"angry", "neutral"}
    clips = clip_table.load(write(records, tmp_path / "toy.jsonl"), channel=None)
    assert folds.load_folds(clips) == {"fold_1": [1, 3], "fold_2": [2, 4]}
    assert folds.describe(clips) == "EmoBox folds"


def write(records, path):
    from emoprobe.data import manifest

    return manifest.write(records, path)


def test_audio_found_whatever_the_layout_and_extension_and_the_rest_listed(tmp_path, capsys):
    folder = small_corpus(tmp_path)
    elsewhere = tmp_path / "mine"
    for wav in sorted((tmp_path / "audio").rglob("*.wav")):  # the user's copy: no downloads/toy/, FLAC
        target = elsewhere / wav.relative_to(tmp_path / "audio" / "downloads" / "toy")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, target.with_suffix(".flac"))
    next(elsewhere.rglob("1_0.flac")).unlink()
    out = tmp_path / "toy.jsonl"
    assert make_manifest("--from-emobox", folder, "--audio-root", elsewhere, "--out", out) == 0
    printed = capsys.readouterr().out
    assert "7 of 8 audio files found: 7 dropped 'downloads/toy/', .flac for .wav" in printed
    assert "not found: downloads/toy/wav/1_0.wav (line 1)" in printed
    assert len(out.read_text().splitlines()) == 7

    assert make_manifest("--from-emobox", folder, "--audio-root", tmp_path / "empty", "--out", out) == 2
    printed = capsys.readouterr()
    assert "0 of 8 audio files found" in printed.out and "not found:" not in printed.out
    assert "no audio of toy under" in printed.err and len(printed.err.strip().splitlines()) == 1


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / emobox.STM).unlink(), "no data.seg.wrd.stm"),
    (lambda f: (f / emobox.STM).write_text("\n".join((f / emobox.STM).read_text().splitlines()[1:])),
     "toy.jsonl line 1: key 'toy-1-0' is not in data.seg.wrd.stm"),
    (lambda f: (f / "toy.jsonl").write_text((f / "toy.jsonl").read_text().replace('"Neu"', '"Bored"', 1)),
     "toy.jsonl line 2: label 'Bored' is not in label_map.json"),
    (lambda f: (f / "fold_2" / "toy_test_fold_2.jsonl").write_text(
        (f / "fold_2" / "toy_test_fold_2.jsonl").read_text() + json.dumps({"key": "toy-9-9"}) + "\n"),
     "fold_2/toy_test_fold_2.jsonl line 5: key 'toy-9-9' is not in toy.jsonl"),
    (lambda f: (f / "toy.jsonl").write_text((f / "toy.jsonl").read_text() + "{oops\n"), "toy.jsonl line 9: not JSON"),
])
def test_malformed_emobox_files_get_one_line_naming_file_and_line(tmp_path, capsys, damage, message):
    folder = small_corpus(tmp_path)
    damage(folder)
    assert make_manifest("--from-emobox", folder, "--audio-root", tmp_path / "audio", "--out", tmp_path / "m.jsonl") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_folds_that_share_speakers_are_left_out(tmp_path, capsys):
    folder = small_corpus(tmp_path, folds_of={1: 1, 2: 1, 3: 1, 4: 1})
    test = folder / "fold_1" / "toy_test_fold_1.jsonl"
    rows = test.read_text().splitlines()
    test.write_text("\n".join(rows[::2]) + "\n")  # half of each speaker's utterances in test ...
    (folder / "fold_1" / "toy_train_fold_1.jsonl").write_text("\n".join(rows[1::2]) + "\n")  # ... half in train
    corpus = emobox.read(folder)
    assert corpus.shared_speakers == {1: 4} and not corpus.speaker_independent
    records, _ = emobox.records(corpus, tmp_path / "audio")
    assert not any("fold" in r or "split" in r for r in records)
    assert make_manifest("--from-emobox", folder, "--audio-root", tmp_path / "audio", "--out", tmp_path / "m.jsonl") == 0
    assert "share speakers between train and test (fold_1: 4 speakers): left out" in capsys.readouterr().out


@needs_shared
def test_emobox_ravdess_gives_every_clip_and_the_committed_folds(tmp_path):
    corpus = emobox.read(SHARED_EMOBOX / "ravdess")
    records, how = emobox.records(corpus, SHARED_RAVDESS)
    assert len(records) == 1440 and not how.missing
    clips = clip_table.load(write(records, tmp_path / "ravdess.jsonl"), channel=None)
    made = folds.load_folds(clips)
    committed = folds.load_folds(clip_table.load(SHARED_RAVDESS), "emobox6")
    assert {k: sorted(v) for k, v in made.items()} == {k: sorted(v) for k, v in committed.items()}
    assert folds.describe(clips) == "EmoBox folds"
    assert folds.describe(clip_table.load(SHARED_RAVDESS)) == "EmoBox folds"


@needs_shared
def test_emobox_cremad_metadata_parses_whole(tmp_path, capsys):
    corpus = emobox.read(SHARED_EMOBOX / "cremad")
    assert len(corpus.utterances) == 7442 and len(set(corpus.speaker.values())) == 91
    assert sorted(set(corpus.label_map.values())) == ["Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad"]
    assert len(corpus.folds) == 1 and corpus.shared_speakers == {1: 91}  # EmoBox's CREMA-D split is not speaker-independent
    assert make_manifest("--from-emobox", SHARED_EMOBOX / "cremad", "--audio-root", tmp_path,
                         "--out", tmp_path / "c.jsonl") == 2
    printed = capsys.readouterr()
    assert printed.out.strip() == "[emobox] cremad: 0 of 7442 audio files found"
    assert len(printed.err.strip().splitlines()) == 1


@needs_shared
def test_the_grid_on_the_emobox_manifest_reproduces_the_ravdess_folder(tmp_path):
    """MFCCs extracted from the RAVDESS folder and from the manifest EmoBox's metadata gives: the same
    features under other keys, the same folds, so the same results, row for row."""
    import runpy
    import sys

    write(emobox.records(emobox.read(SHARED_EMOBOX / "ravdess"), SHARED_RAVDESS)[0], tmp_path / "emobox.jsonl")
    results = {}
    for name, root in (("folder", SHARED_RAVDESS), ("emobox", tmp_path / "emobox.jsonl")):
        embeddings = tmp_path / name
        sys.argv = ["extract_audio.py", "--encoders", "mfcc", "--data-root", str(root), "--embeddings-dir",
                    str(embeddings), "--no-sequences"]
        runpy.run_path(str(REPO / "experiments" / "extract_audio.py"), run_name="__main__")
        clips = clip_table.load(root, channel="speech" if name == "folder" else None)
        base, extra = discover_feature_sets(embeddings)
        results[name] = probes.run_grid(clips, base, extra, seeds=(0,), probes=("linear",), log=lambda *_: None)[0]
    pd.testing.assert_frame_equal(results["folder"], results["emobox"])


def test_transfer_between_emobox_corpora_on_the_labels_their_maps_share(tmp_path):
    manifests = {}
    for name, labels, speakers in (("alpha", ("Ang", "Neu", "Hap"), (1, 2, 3, 4)), ("beta", ("ANG", "NEU", "SAD"), (5, 6, 7, 8))):
        folder = small_corpus(tmp_path / name, name, speakers, labels, clips=3)
        manifests[name] = tmp_path / f"{name}.jsonl"
        assert make_manifest("--from-emobox", folder, "--audio-root", tmp_path / name / "audio", "--emobox-labels",
                             "--out", manifests[name]) == 0
        cli.run(script_main("extract_audio"), ["--encoders", "mfcc", "--data-root", str(manifests[name]),
                                               "--embeddings-dir", str(tmp_path / "emb"), "--no-sequences"])
    out = tmp_path / "transfer.csv"
    cli.run(script_main("transfer"), ["--train", str(manifests["alpha"]), "--test", str(manifests["beta"]),
                                      "--embeddings-dir", str(tmp_path / "emb"), "--out", str(out)])
    table = pd.read_csv(out)
    recalls = pd.read_csv(tmp_path / "transfer_recalls.csv")
    assert set(recalls["class"]) == {"angry", "neutral"}  # happy (alpha only) and sad (beta only) left out
    row = table.iloc[0]
    assert row["n_test"] == 4 * 2 * 3 and row["ua"] > 0.75  # one voice per emotion in both: it transfers
