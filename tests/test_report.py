"""The generated findings: both files from the fixture, nothing that depends on store names, and a
line saying what is not available (and which command makes it) for every absent results file."""

import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from emoprobe import config
from emoprobe.probes import normalise
from emoprobe.report import document, findings, questions, tables

FIXTURE_RESULTS = config.REPO / "tests" / "fixtures" / "results_small" / "results"
# Renames applied to every store, set and encoder name: characters a label parser would split on,
# and no '-randinit' suffix, so only the explicit columns can say what is what.
RENAMES = [("-randinit", "-rnd"), ("encoder-30s", "encoder-long"), ("fx-", "m+v:")]
REPORT_CODE = [*sorted((config.REPO / "emoprobe" / "report").glob("*.py")), config.REPO / "experiments" / "make_findings.py"]


def generate(results_dir) -> tuple[str, str]:
    res = tables.load(results_dir, normalisation=None)  # every protocol, as make_findings reads them
    return findings.findings(res), questions.questions(res)


def rename(text: str) -> str:
    for old, new in RENAMES:
        text = text.replace(old, new)
    return text


def renamed_copy(source, target):
    """The fixture's results with every name renamed, in every table and in the predictions."""
    target.mkdir()
    for path in source.iterdir():
        if path.suffix not in (".csv", ".parquet"):
            shutil.copy(path, target / path.name)  # settings.json: no names in it
            continue
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
        for column in table.columns:
            if table[column].dtype == object or pd.api.types.is_string_dtype(table[column]):
                table[column] = table[column].astype(str).map(rename)
        if path.suffix == ".parquet":
            table.to_parquet(target / path.name, index=False)
        else:
            table.to_csv(target / path.name, index=False)


@pytest.fixture(scope="module")
def fixture_text():
    return generate(FIXTURE_RESULTS)


def test_both_files_have_every_section_and_no_gap_on_the_fixture(fixture_text, tmp_path):
    out, questions = tmp_path / "findings.md", tmp_path / "research_questions.md"
    subprocess.run([sys.executable, config.REPO / "experiments" / "make_findings.py", "--results", FIXTURE_RESULTS,
                    "--out", out, "--questions-out", questions], check=True)
    text, answers = fixture_text
    assert out.read_text().strip() == text.strip() and questions.read_text().strip() == answers.strip()
    for title in ("Protocols side by side", "What was run", "What was not run", "Single feature sets", "Fusions",
                  "Per-layer UA", "Per-emotion recall", "Shapley values"):
        assert f"## {title}" in text
    for n in range(1, 8):
        assert f"## RQ{n}." in answers
    for name in normalise.DEFAULT:  # every per-protocol section, once under each protocol, labelled
        heading = f"### Under `{name}` ("
        assert text.count(heading) == 5 and answers.count(heading) == 5
    assert "TRANSDUCTIVE" in text and "speaker minus global" in text
    assert re.search(r"reaches half of the gain with \d+ clips?", answers) and "neutral and calm clips" in answers
    assert "not available: results" not in text + answers  # every file is in the fixture
    assert "(AudioSet): ast-audioset; weights from the model hub: none of them runs offline" in text
    assert "Reference: best single set (inner CV)" in text and re.search(r"ahead in \d of 6 folds", answers)
    assert "auto fusion" in answers and "-30s" in answers and "its random twin" in answers
    assert "analysis/figures/02_shapley_modalities.png" in answers
    assert text.count("### Exact values from every subset: select and late fusion") == len(normalise.DEFAULT)


def test_other_store_names_give_the_same_sentences(fixture_text, tmp_path):
    renamed_copy(FIXTURE_RESULTS, tmp_path / "results")
    text, answers = generate(tmp_path / "results")
    original = rename("\n".join(fixture_text)).replace(config.relative(FIXTURE_RESULTS), "RESULTS")
    assert "fx-" not in text + answers and "randinit" not in text + answers
    assert "m+v:encoder-long" in answers and "m+v:encoder-rnd" in answers
    new = "\n".join([text, answers]).replace(config.relative(tmp_path / "results"), "RESULTS")
    assert sorted(new.splitlines()) == sorted(original.splitlines())


def test_absent_files_say_what_is_not_available_and_which_command_makes_it(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS, results)
    for name in ("shapley.csv", "stores.csv", "transfer.csv", "duration.csv", "clips.csv"):
        (results / name).unlink()
    text, answers = generate(results)
    for name, command in [("shapley.csv", "train_probes.py"), ("stores.csv", "train_probes.py"),
                          ("transfer.csv", "transfer.py"), ("duration.csv", "duration.py"), ("clips.csv", "train_probes.py")]:
        assert re.search(rf"not available: \S*{name} is absent \(made by `python experiments/{command}", text + answers), name
    empty = tmp_path / "empty"
    empty.mkdir()
    text, answers = generate(empty)
    assert text.count("not available") >= 8 and answers.count("not available") == 7  # a line per section


def test_the_protocol_names_where_the_folds_come_from(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS, results)
    text, _ = generate(results)
    assert "6 speaker-disjoint folds (EmoBox folds)." in text
    (results / "folds.csv").unlink()
    text, _ = generate(results)
    assert "6 speaker-disjoint folds." in text  # no folds.csv: nothing said
    pd.DataFrame({"fold": ["fold_1", "fold_2"], "speaker": [1, 2], "source": "EmoBox folds"}
                 ).to_csv(results / "folds.csv", index=False)
    text, _ = generate(results)
    assert "speaker-disjoint folds (EmoBox folds)." in text


def test_report_code_parses_no_label_or_store_name():
    """Members come from feature_sets.csv, twins from twin_of, weights from the weights column."""
    forbidden = [r'\.split\("\+"\)', r'":" in ', r"randinit", r"int\(float\(", r"\.split\(\":\"\)"]
    for path in REPORT_CODE:
        source = path.read_text()
        for pattern in forbidden:
            assert not re.search(pattern, source), f"{path.name}: {pattern}"


def test_transfers_tested_on_song_are_named_as_such(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS, results)
    transfer = pd.read_csv(results / "transfer.csv")
    transfer.assign(test_channel="song").to_csv(results / "transfer.csv", index=False)
    _, answers = generate(results)
    assert "- Tested on song: " in answers and "song data was not available" not in answers


def test_results_made_from_other_stores_do_not_stand_in(tmp_path):
    """transfer.csv and duration.csv rows count only when their store's `finalized` stamp is the one
    stores.csv describes: a file left from other stores (e.g. a committed one) is left out."""
    from emoprobe.report import tables

    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS, results)
    stores = pd.read_csv(results / "stores.csv")
    stores.assign(finalized="made here").to_csv(results / "stores.csv", index=False)
    transfer = pd.read_csv(results / "transfer.csv")
    transfer.assign(finalized="elsewhere").to_csv(results / "transfer.csv", index=False)
    assert tables.load(results, normalisation=None)["transfer.csv"] is None
    transfer.assign(finalized="made here").to_csv(results / "transfer.csv", index=False)
    assert len(tables.load(results, normalisation=None)["transfer.csv"]) == len(transfer)
    assert len(tables.load(results)["transfer.csv"]) == (transfer.normalisation == "global").sum()  # one protocol


def test_losses_beyond_noise_are_judged_by_the_paired_speaker_bootstrap():
    """Every fusion below its best member gets the paired interval of the difference; chance alone
    would put 2.5 % of all fusions below beyond a 95 % interval."""
    res = tables.load(FIXTURE_RESULTS)
    gaps = tables.fusion_gaps(res).query("fusion == 'auto'")
    losses, by_chance = tables.losses_beyond_noise(res)
    assert sorted(losses.features) == sorted(gaps[gaps.gap < 0].features)
    assert (losses.ci_low <= losses["diff"]).all() and (losses["diff"] <= losses.ci_high).all()
    assert by_chance == pytest.approx(0.025 * len(gaps))
    line = document.beyond_noise(res)
    assert f"{(losses.ci_high < 0).sum()} of them beyond the 95 % paired speaker-bootstrap interval" in line


def test_predictions_come_from_one_read_of_the_file_and_equal_a_filtered_read():
    """Results.predictions reads predictions.parquet once and indexes it; each system's rows are what a
    filtered read of the file gives (the way it was read before, once per question)."""
    from emoprobe import probes
    res = tables.load(FIXTURE_RESULTS, normalisation=None)
    path = FIXTURE_RESULTS / "predictions.parquet"
    systems = pd.read_parquet(path, columns=["features", "normalisation", "probe", "fusion"]).drop_duplicates()
    assert len(systems) > 20
    for system in systems.to_dict("records"):
        view = res.under(system.pop("normalisation"))
        expected = tables.headline(probes.read_predictions(path, **system, normalisation=view.normalisation))
        pd.testing.assert_frame_equal(view.predictions(system), expected)
    assert res.under("global").predictions({"features": "no such set", "probe": "linear", "fusion": "none"}).empty
    assert view.tables["predictions.parquet"] is res.tables["predictions.parquet"]  # one read for every view


def test_enrolment_rows_of_systems_the_grid_did_not_probe_are_left_out(tmp_path, capsys):
    """A committed enrolment.csv beside a user's own first grid (other sets) must not stand in for theirs."""
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS, results)
    enrolment = pd.read_csv(results / "enrolment.csv")
    assert len(enrolment)
    assert len(tables.load(results, normalisation=None)["enrolment.csv"]) == len(enrolment)
    stranger = enrolment.assign(features="audio/a set this grid never probed")
    pd.concat([enrolment, stranger]).to_csv(results / "enrolment.csv", index=False)
    kept = tables.load(results, normalisation=None)["enrolment.csv"]
    assert len(kept) == len(enrolment) and "row(s) left out" in capsys.readouterr().out
    probes_csv = pd.read_csv(results / "probes.csv")
    probes_csv[~probes_csv.features.isin(set(enrolment.features))].to_csv(results / "probes.csv", index=False)
    assert tables.load(results, normalisation=None)["enrolment.csv"] is None  # none of its systems here
