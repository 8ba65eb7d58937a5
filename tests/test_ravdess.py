"""File-name parsing and media discovery (emoprobe/data/ravdess.py), and the clips table every script
starts from (emoprobe/data/clips.py), from a RAVDESS folder or its manifest."""

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAKE_GOOD, FAKE_MALFORMED, FAKE_SYMLINK, tone, write_audio

from emoprobe.data import clips as clip_table
from emoprobe.data import labels, manifest, ravdess
from emoprobe.data.ravdess import CLIP_COLUMNS, find_media, index_clips, parse_name
from emoprobe.errors import NoDataError, UserError


def test_parse_name_reads_all_seven_fields():
    name = parse_name("/some/where/Actor_12/03-01-05-02-01-02-12.wav")
    assert (name.modality, name.channel, name.emotion, name.intensity, name.statement,
            name.repetition, name.actor) == (3, 1, 5, 2, 1, 2, 12)
    assert name.clip == "01-05-02-01-02-12"
    song = parse_name("01-02-06-01-02-01-24.mp4")
    assert (song.modality, song.channel, song.emotion, song.actor) == (1, 2, 6, 24)
    assert parse_name("03-01-05-02-01-02-12.flac") == parse_name("03-01-05-02-01-02-12.WAV")


@pytest.mark.parametrize("filename, why", [
    ("03-01-05-02-01-02.wav", "7 two-digit fields"),  # six fields
    ("03-01-05-02-01-02-12-01.wav", "7 two-digit fields"),  # eight fields
    ("03-01-5-02-01-02-12.wav", "7 two-digit fields"),  # one digit
    ("03-01-0a-02-01-02-12.wav", "7 two-digit fields"),  # not a digit
    ("03-01-０５-02-01-02-12.wav", "7 two-digit fields"),  # full-width digits: isdigit() is not enough
    ("foo.wav", "7 two-digit fields"),
    ("04-01-05-02-01-02-12.wav", "modality"),
    ("03-03-05-02-01-02-12.wav", "vocal channel"),
    ("03-01-09-02-01-02-12.wav", "emotion"),
    ("03-01-00-02-01-02-12.wav", "emotion"),
    ("03-01-05-03-01-02-12.wav", "intensity"),
    ("03-01-05-02-03-02-12.wav", "statement"),
    ("03-01-05-02-01-03-12.wav", "repetition"),
    ("03-01-05-02-01-02-25.wav", "actor"),
    ("03-01-05-02-01-02-00.wav", "actor"),
    ("03-01-01-02-01-01-01.wav", "neutral has no strong"),
    ("03-02-07-01-01-01-01.wav", "song has emotions 01-06"),
    ("03-02-08-01-01-01-01.wav", "song has emotions 01-06"),
    ("03-02-03-01-01-01-18.wav", "actor 18 has no song"),
])
def test_parse_name_rejects_malformed_names_naming_the_file(filename, why):
    with pytest.raises(ValueError) as err:
        parse_name(f"/data/Actor_01/{filename}")
    assert filename in str(err.value) and why in str(err.value)


def test_find_media_follows_a_symlinked_folder_once(tmp_ravdess):
    found = find_media(tmp_ravdess)
    names = [p.name for p in found]
    assert len(names) == len(set(names)) == len(FAKE_GOOD) + len(FAKE_MALFORMED)
    assert not any(FAKE_SYMLINK in p.parts for p in found)  # the real folder sorts first and wins


def test_find_media_survives_a_symlink_loop(tmp_ravdess):
    (tmp_ravdess / "Actor_01" / "loop").symlink_to(tmp_ravdess, target_is_directory=True)
    assert len(find_media(tmp_ravdess)) == len(FAKE_GOOD) + len(FAKE_MALFORMED)


def test_index_reports_malformed_names_and_keeps_the_good_ones(tmp_ravdess):
    clips, problems = index_clips(tmp_ravdess)
    assert list(clips.columns) == CLIP_COLUMNS
    assert sorted(Path(p).name for p in problems.path) == sorted(Path(p).name for p in FAKE_MALFORMED)
    for row in problems.itertuples():  # each reason names its file
        assert Path(row.path).name in row.problem
    assert len(clips) == len(FAKE_GOOD) and clips.key.is_unique
    assert list(clips.key) == sorted(clips.key)
    stereo = clips.set_index("key").loc["01-03-01-02-01-02"]
    assert (stereo.emotion, stereo.emotion_name, stereo.intensity, stereo.statement, stereo.repetition,
            stereo.actor, stereo.sex, stereo.channel) == (3, "happy", 1, 2, 1, 2, "female", "speech")
    assert stereo.path_audio.endswith("03-01-03-01-02-01-02.wav") and pd.isna(stereo.path_av)


def test_clip_key_joins_the_modalities_of_one_recording(tmp_ravdess):
    actor = tmp_ravdess / "Actor_01"
    for modality in ("01", "02"):  # the index reads names only, so empty mp4s will do
        (actor / f"{modality}-01-05-02-01-02-01.mp4").touch()
    (actor / "03-01-05-02-01-02-01.mp4").touch()  # audio-only cannot be an mp4
    (actor / "01-01-06-01-01-01-01.wav").touch()  # audio-video cannot be a wav
    clips, problems = index_clips(tmp_ravdess)
    row = clips.set_index("key").loc["01-05-02-01-02-01"]
    assert Path(row.path_audio).name == "03-01-05-02-01-02-01.wav"
    assert Path(row.path_av).name == "01-01-05-02-01-02-01.mp4"
    assert Path(row.path_video).name == "02-01-05-02-01-02-01.mp4"
    assert len(clips) == len(FAKE_GOOD)  # joined into the existing row, no new one
    bad = {Path(p).name: why for p, why in zip(problems.path, problems.problem)}
    assert "cannot be a .mp4" in bad["03-01-05-02-01-02-01.mp4"]
    assert "cannot be a .wav" in bad["01-01-06-01-01-01-01.wav"]


def test_duplicate_copies_of_a_recording_keep_one_and_report_the_other(tmp_ravdess):
    write_audio(tmp_ravdess / "Actor_03" / "03-01-04-01-01-02-03.flac", tone(0.3))
    clips, problems = index_clips(tmp_ravdess)
    assert len(clips) == len(FAKE_GOOD)
    kept = clips.set_index("key").loc["01-04-01-01-02-03", "path_audio"]
    dup = problems[problems.problem.str.contains("duplicate")]
    assert len(dup) == 1
    assert {Path(kept).name, Path(dup.path.iloc[0]).name} == {"03-01-04-01-01-02-03.wav",
                                                                "03-01-04-01-01-02-03.flac"}
    assert kept in dup.problem.iloc[0]  # the report says which copy was kept


def test_load_clips_filters_the_vocal_channel(tmp_ravdess, capsys):
    speech = clip_table.load(tmp_ravdess)
    assert set(speech.channel) == {"speech"} and len(speech) == len(FAKE_GOOD) - 1
    assert "skipped 3 file(s)" in capsys.readouterr().out
    song = clip_table.load(tmp_ravdess, "song", verbose=False)
    assert list(song.key) == ["02-03-01-01-01-05"] and song.actor.iloc[0] == 5 and song.speaker.iloc[0] == 5
    assert len(clip_table.load(tmp_ravdess, None, verbose=False)) == len(FAKE_GOOD)


def test_the_clips_table_has_labels_speakers_and_one_source_per_modality(tmp_ravdess):
    clips = clip_table.load(tmp_ravdess, verbose=False)
    row = clips.set_index("key").loc["01-03-01-02-01-02"]
    assert (row.label, row.speaker, row.emotion, row.sex, row.corpus) == ("happy", 2, 3, "female", "ravdess-speech")
    assert row.audio.endswith("03-01-03-01-02-01-02.wav") and pd.isna(row.video)
    assert list(clips.label.cat.categories) == [n for n in labels.EMOTION_NAMES if n in set(clips.label)]
    audio = clip_table.load(tmp_ravdess, modality="audio", limit=2, verbose=False)
    assert len(audio) == 2 and (audio.source == audio.audio).all()
    video = clip_table.load(tmp_ravdess, modality="video", verbose=False)
    assert video.source.isna().all()  # no mp4s here: every clip is "without this modality"


def test_a_ravdess_folder_and_its_manifest_give_the_same_clips_table(tmp_ravdess, tmp_path):
    path = manifest.write(ravdess.records(tmp_ravdess, None, verbose=False), tmp_path / "ravdess.jsonl")
    assert '"audio": "ravdess/Actor_01/' in path.read_text()  # relative to the manifest: no machine paths
    pd.testing.assert_frame_equal(clip_table.load(path, None), clip_table.load(tmp_ravdess, None, verbose=False))


def test_load_clips_on_an_empty_folder_says_how_to_get_the_data(tmp_path):
    with pytest.raises(NoDataError, match="download") as err:
        clip_table.load(tmp_path, verbose=False)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, UserError)
    with pytest.raises(NoDataError, match="no such folder or manifest"):
        clip_table.load(tmp_path / "nowhere", verbose=False)


def test_real_ravdess_speech_set(real_ravdess):
    clips, problems = index_clips(real_ravdess)
    assert problems.empty, problems.problem.tolist()
    assert len(clips) == 1440 and clips.key.is_unique and set(clips.channel) == {"speech"}
    assert Counter(clips.actor) == {a: 60 for a in range(1, labels.N_ACTORS + 1)}
    assert Counter(clips.emotion_name) == {name: 96 if name == "neutral" else 192
                                           for name in labels.EMOTION_NAMES}
    assert clips.path_audio.notna().all() and clips.path_video.isna().all()
    with_av = clips[clips.path_av.notna()]
    assert sorted(with_av.key) == ["01-01-01-01-02-01", "01-01-01-01-02-04",
                                   "01-05-02-02-01-01", "01-06-02-01-02-04"]
    for row in with_av.itertuples():  # the mp4 and the flac are the same recording
        assert Path(row.path_av).name[3:-4] == Path(row.path_audio).name[3:-5]
    assert (clips.sex == clips.actor.map(lambda a: "male" if a % 2 else "female")).all()

