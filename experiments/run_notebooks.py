"""Execute the analysis notebooks in place on the current results/ and stores.

    python experiments/run_notebooks.py                 # all of analysis/*.ipynb
    python experiments/run_notebooks.py 02 05           # only those whose name contains 02 or 05
"""

from emoprobe import cli
from emoprobe.report import notebooks


def main(argv=None):
    p = cli.parser(__doc__, data=False, embeddings=False)
    p.add_argument("names", nargs="*", help="only notebooks whose file name contains one of these")
    p.add_argument("--keep-images", action="store_true", help="keep inline figures in the saved notebooks")
    p.add_argument("--jobs", type=cli.positive(int), default=notebooks.JOBS, help="notebooks executed at once")
    args = p.parse_args(argv)
    notebooks.execute(args.names, keep_images=args.keep_images, quiet=args.quiet, jobs=args.jobs)


if __name__ == "__main__":
    cli.run(main)
