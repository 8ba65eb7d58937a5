"""The markdown a user reads names code and protocol facts that exist: paths, fold schemes, inner folds."""

import re
from pathlib import Path

import pytest

from emoprobe.data import folds
from emoprobe.probes import linear

REPO = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "data_notes.md", "limitations.md", "benchmarks/README.md"]


@pytest.mark.parametrize("doc", DOCS)
def test_code_paths_named_in_docs_exist(doc):
    text = (REPO / doc).read_text()
    named = set(re.findall(r"`((?:emoprobe|experiments|benchmarks|analysis|tests|data/splits)/[\w./-]+\.(?:py|ipynb|json))`", text))
    missing = [path for path in named if not (REPO / path).exists()]
    assert not missing, f"{doc} names files that do not exist: {missing}"


def test_data_notes_state_the_protocol_the_code_runs():
    text = (REPO / "data_notes.md").read_text()
    assert f"{linear.INNER_FOLDS}-fold" in text
    for scheme in re.findall(r"--scheme (\w+)", text):
        assert scheme in folds.SCHEMES, f"data_notes.md names an unknown fold scheme: {scheme}"
