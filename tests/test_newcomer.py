"""What a newcomer tried (issue 21's table), each now ending in the right result or one clear line.

The scripts run as a user runs them (cli.run: exit status and stderr), on small generated trees and
manifests; extraction uses the hand-crafted encoders (no model to load).
"""

import json
import shutil

import numpy as np
import pytest
from conftest import script_status
from corpus import ravdess_tree, voice, write_wav

from emoprobe import cli, config
from emoprobe import results as results_schema
from emoprobe.data import clips as clip_table
from emoprobe.store.store import EmbeddingStore


def run(name, argv, capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of experiments/<name>.py."""
    capsys.readouterr()
    status = script_status(name, argv)
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture(autouse=True)
def splits_elsewhere(tmp_path, monkeypatch):
    """Folds generated for the test corpora go to a temporary folder, not the repository's data/splits."""
    monkeypatch.setattr(config, "SPLITS", tmp_path / "splits")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return ravdess_tree(tmp_path_factory.mktemp("ravdess"), actors=range(1, 5), emotions=(1, 5), seconds=0.6, videos=0)


def manifest(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_manifest_key_that_collides_with_a_cached_clip_of_another_file_is_an_error_naming_both(tree, tmp_path, capsys):
    emb = tmp_path / "emb"
    assert run("extract_audio", ["--encoders", "mfcc", "--data-root", tree, "--embeddings-dir", emb], capsys)[0] == 0
    other = write_wav(tmp_path / "mine" / "x.wav", voice(3, 9, 0.6, seed=5))
    rows = [{"key": "01-01-01-01-01-01", "audio": str(other), "label": "neutral", "speaker": "s1"}]
    status, _, err = run("extract_audio", ["--encoders", "mfcc", "--data-root", manifest(tmp_path / "m.jsonl", rows),
                                           "--embeddings-dir", emb], capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "01-01-01-01-01-01" in err and "03-01-01-01-01-01-01.wav" in err and str(other) in err


def test_a_clip_replaced_on_disk_is_embedded_again(tree, tmp_path, capsys):
    copy = shutil.copytree(tree, tmp_path / "tree")
    emb = tmp_path / "emb"
    run("extract_audio", ["--encoders", "mfcc", "--data-root", copy, "--embeddings-dir", emb], capsys)
    replaced = copy / "Actor_01" / "03-01-05-01-01-01-01.wav"
    write_wav(replaced, voice(0, 7, 0.8, seed=3))
    status, out, _ = run("extract_audio", ["--encoders", "mfcc", "--data-root", copy, "--embeddings-dir", emb], capsys)
    assert status == 0 and "1 re-embedded (source file changed)" in out and "1 to embed" in out


def test_clips_from_several_data_roots_are_all_named_in_the_store(tree, tmp_path, capsys):
    emb = tmp_path / "emb"
    run("extract_audio", ["--encoders", "mfcc", "--data-root", tree, "--embeddings-dir", emb], capsys)
    extra = write_wav(tmp_path / "extra" / "y.wav", voice(2, 9, 0.6, seed=6))
    rows = [{"key": "extra-1", "audio": str(extra), "label": "happy", "speaker": "s9"}]
    run("extract_audio", ["--encoders", "mfcc", "--data-root", manifest(tmp_path / "extra.jsonl", rows),
                          "--embeddings-dir", emb], capsys)
    sources = EmbeddingStore("audio", "mfcc", emb).meta()["data_sources"]
    assert len(sources) == 2 and sources[next(k for k in sources if k.endswith("extra.jsonl"))] == 1


def test_an_extraction_where_every_clip_failed_exits_non_zero(tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "empty.wav").write_bytes(b"")
    (tmp_path / "bad" / "text.wav").write_text("not audio")
    rows = [{"key": "a", "audio": "bad/empty.wav", "label": "angry", "speaker": 1},
            {"key": "b", "audio": "bad/text.wav", "label": "sad", "speaker": 2}]
    status, out, err = run("extract_audio", ["--encoders", "mfcc", "--data-root", manifest(tmp_path / "m.jsonl", rows),
                                             "--embeddings-dir", tmp_path / "emb"], capsys)
    assert status == 2 and "nothing could be embedded into audio/mfcc" in err
    assert "2 clip(s) could not be embedded" in out


def test_some_failures_are_counted_and_strict_makes_them_an_error(tree, tmp_path, capsys):
    copy = shutil.copytree(tree, tmp_path / "tree")
    (copy / "Actor_01" / "03-01-01-01-01-01-01.wav").write_bytes(b"RIFF")
    argv = ["--encoders", "mfcc", "--data-root", copy, "--embeddings-dir", tmp_path / "emb"]
    status, out, _ = run("extract_audio", argv, capsys)
    assert status == 0 and "1 clip(s) could not be embedded" in out
    status, _, err = run("extract_audio", [*argv, "--strict"], capsys)
    assert status == 2 and "--strict: 1 clip(s)" in err


def test_face_extraction_on_an_audio_only_tree_says_so_before_loading_a_model(tree, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "build_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    status, out, _ = run("extract_face", ["--data-root", tree, "--embeddings-dir", tmp_path / "emb"], capsys)
    assert status == 0 and "nothing to embed: none of the 8 clip(s)" in out and "failures" not in out


@pytest.mark.parametrize("speakers", [2, 3])
def test_too_few_speakers_for_the_folds_is_one_line_in_the_grid_and_in_check(tmp_path, capsys, speakers):
    rows = [{"key": f"{s}-{label}", "audio": str(write_wav(tmp_path / f"{s}-{label}.wav", voice(i, s, 0.6, seed=s))),
             "label": label, "speaker": f"spk{s}", "corpus": f"tiny{speakers}"}
            for s in range(speakers) for i, label in enumerate(["angry", "sad"])]
    path = manifest(tmp_path / "m.jsonl", rows)
    run("extract_audio", ["--encoders", "mfcc", "--data-root", path, "--embeddings-dir", tmp_path / "emb"], capsys)
    status, _, grid_err = run("train_probes", ["--data-root", path, "--embeddings-dir", tmp_path / "emb",
                                               "--out", tmp_path / "results", "--no-progress"], capsys)
    assert status == 2 and "at least 4 speakers are needed" in grid_err and len(grid_err.strip().splitlines()) == 1
    status, _, check_err = run("make_manifest", ["--check", path], capsys)
    assert status == 2 and grid_err.split("error: ")[1] == check_err.split("error: ")[1]


def test_manifest_labels_are_checked_and_case_normalised(tmp_path, capsys):
    wav = str(write_wav(tmp_path / "a.wav", voice(0, 0, 0.6)))
    rows = [{"key": "a", "audio": wav, "label": "Happy", "speaker": 1}, {"key": "b", "audio": wav, "label": "angy", "speaker": 2}]
    status, _, err = run("make_manifest", ["--check", manifest(tmp_path / "m.jsonl", rows)], capsys)
    assert status == 2 and "line 2: label 'angy' is not a known emotion name: did you mean angry?" in err
    rows[1]["label"] = "ANG"  # a code (CREMA-D's): kept
    assert list(clip_table.load(manifest(tmp_path / "m.jsonl", rows), channel=None).label) == ["happy", "ang"]


@pytest.mark.parametrize("option, message", [
    (["--batch-size", "0"], "--batch-size: 0 must be above 0"),
    (["--limit", "-1"], "--limit: -1 must be above 0"),
    (["--device", "cuda"], "CUDA device(s) visible on this machine"),
])
def test_bad_option_values_are_refused_where_they_are_parsed(tree, tmp_path, capsys, option, message):
    import torch

    if option[1] == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    status, _, err = run("extract_audio", ["--encoders", "mfcc", "--data-root", tree, *option], capsys)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_csv_manifest_is_refused_with_what_a_manifest_is(tmp_path, capsys):
    (tmp_path / "corpus.csv").write_text("key,audio,label,speaker\na,a.wav,angry,1\n")
    status, _, err = run("make_manifest", ["--check", tmp_path / "corpus.csv"], capsys)
    assert status == 2 and "manifests are JSON lines (.jsonl)" in err


def test_a_folder_of_song_files_points_at_the_channel_that_reads_them(tmp_path, capsys):
    songs = ravdess_tree(tmp_path / "songs", actors=(1, 2), emotions=(1, 2), seconds=0.3, videos=0, channel=2)
    status, _, err = run("extract_audio", ["--encoders", "mfcc", "--data-root", songs, "--embeddings-dir", tmp_path], capsys)
    assert status == 2 and "4 song clip(s): --channel song (or all) reads them" in err


def test_an_exception_inside_sklearn_is_one_line_and_debug_shows_the_traceback(capsys):
    from sklearn.model_selection import GroupKFold

    def main(argv):
        list(GroupKFold(3).split(np.zeros((4, 1)), groups=[1, 1, 2, 2]))
    with pytest.raises(SystemExit) as ended:
        cli.run(main, [])
    assert ended.value.code == 2
    assert "sklearn raised ValueError: Cannot have number of splits" in capsys.readouterr().err
    with pytest.raises(ValueError):
        cli.run(main, ["--debug"])


def test_findings_show_progress_and_quiet_hides_it(tmp_path, capsys):
    from test_report import FIXTURE_RESULTS

    argv = ["--results", FIXTURE_RESULTS, "--out", tmp_path / "f.md", "--questions-out", tmp_path / "q.md"]
    from emoprobe.report import findings, questions

    status, out, err = run("make_findings", argv, capsys)
    sections = len(findings.FINDINGS_SECTIONS) + len(questions.QUESTION_SECTIONS)
    assert status == 0 and "findings: 100%" in err and f"{sections}/{sections}" in err and "wrote" in out
    status, out, err = run("make_findings", [*argv, "--quiet"], capsys)
    assert status == 0 and "findings" not in err and "wrote" in out


def test_clips_only_rewrites_the_clips_table_and_folds_and_leaves_stores_alone(tree, tmp_path, capsys):
    from test_report import FIXTURE_RESULTS

    results = shutil.copytree(FIXTURE_RESULTS, tmp_path / "results")
    stores = (results / "stores.csv").read_text()
    (results / "folds.csv").unlink()
    assert run("train_probes", ["--clips-only", "--data-root", tree, "--out", results], capsys)[0] == 0
    assert (results / "stores.csv").read_text() == stores
    clips = clip_table.load(tree)
    written = results_schema.read(results, "clips.csv")
    assert list(written.key) == list(clips.key) and (written.fold == clips.fold).all()
    assert set(results_schema.read(results, "folds.csv").source) == {"EmoBox folds"}
