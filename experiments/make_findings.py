"""Regenerate findings.md and research_questions.md from a results folder.

    python experiments/make_findings.py
    python experiments/make_findings.py --results tests/fixtures/results_small/results --out /tmp/findings.md \\
        --questions-out /tmp/research_questions.md

Every number in them comes from emoprobe.report (findings.py and questions.py); edit those, not the markdown. A results file
that is absent turns its section into a line saying which command makes it.
"""

from pathlib import Path

from emoprobe import cli, config, timing
from emoprobe.report import findings, questions, tables

OUT = config.REPO / "findings.md"
QUESTIONS = config.REPO / "research_questions.md"


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--results", metavar="DIR", help="results folder (default: $EMOPROBE_RESULTS or results)")
    p.add_argument("--out", default=OUT, help="findings file (default: %(default)s)")
    p.add_argument("--questions-out", default=QUESTIONS, help="research questions file (default: %(default)s)")
    args = p.parse_args(argv)
    res = tables.load(args.results, args.data_root, normalisation=None)  # every protocol, side by side
    sections = len(findings.FINDINGS_SECTIONS) + len(questions.QUESTION_SECTIONS)
    with timing.progress(sections, "findings", args.quiet, unit="section") as bar:
        Path(args.out).write_text(findings.findings(res, bar.update) + "\n")
        Path(args.questions_out).write_text(questions.questions(res, bar.update) + "\n")
    print(f"wrote {config.relative(args.out)} and {config.relative(args.questions_out)} from {config.relative(res.dir)}")


if __name__ == "__main__":
    cli.run(main)
