"""Download RAVDESS from Zenodo, check the published MD5s, and unpack it into data/raw/.

    python experiments/download_ravdess.py                          # audio speech, ~200 MB
    python experiments/download_ravdess.py --what video-speech --actors 1,2,5-8
    python experiments/download_ravdess.py --what all               # everything, ~25 GB

Interrupted downloads resume; finished and unpacked files are skipped on a rerun.
"""

from pathlib import Path

import requests

from emoprobe import cli, config
from emoprobe.data import download
from emoprobe.errors import UserError

# -----------------------------------------------------------------------------
what = ["audio-speech"]  # which archives: audio-speech, audio-song, video-speech, video-song, all
actors = None  # video zips only: e.g. "1,2,5-8"; None = all 24 (song has no actor 18)
dest = str(config.RAW)  # unpack here
zip_dir = None  # keep the zips here; None = zips/ next to dest
md5 = []  # MD5 overrides, NAME=HEX (or a bare HEX when one file is selected); else Zenodo's
verify = True  # check MD5s; --no-verify skips the check (and the Zenodo API)
keep_zips = True  # --delete-zips removes each zip once unpacked
base_url = download.ZENODO  # Zenodo, or a mirror with the same URL layout
# -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, data=False, embeddings=False)
    p.add_argument("--what", nargs="+", default=what, choices=[*download.WHAT, "all"], metavar="KIND",
                   help=f"one or more of: %(choices)s (default: {' '.join(what)})")
    p.add_argument("--actors", default=actors, help="video zips only, e.g. 1,2,5-8 (default: all)")
    p.add_argument("--dest", default=dest, help="unpack into this folder (default: %(default)s)")
    p.add_argument("--zip-dir", default=zip_dir, help="store the zips here (default: zips/ next to --dest)")
    p.add_argument("--md5", action="append", default=list(md5), metavar="[NAME=]HEX",
                   help="expected MD5 instead of Zenodo's; repeatable")
    p.add_argument("--no-verify", dest="verify", action="store_false", default=verify,
                   help="skip the MD5 check")
    p.add_argument("--delete-zips", dest="keep_zips", action="store_false", default=keep_zips,
                   help="delete each zip after unpacking it")
    p.add_argument("--base-url", default=base_url, help="Zenodo or a mirror (default: %(default)s)")
    args = p.parse_args(argv)

    try:
        chosen = download.parse_actors(args.actors) if args.actors else None
        overrides = download.parse_md5_overrides(args.md5, download.ravdess_files(args.what, chosen))
    except ValueError as err:
        p.error(str(err))
    try:
        names = download.download_ravdess(args.what, chosen, args.dest, args.zip_dir, md5=overrides,
                                          verify=args.verify, keep_zips=args.keep_zips,
                                          base_url=args.base_url)
    except (RuntimeError, requests.RequestException) as err:  # ChecksumError is a RuntimeError
        raise UserError(str(err)) from err
    print(f"done: {len(names)} archive(s) in {Path(args.dest).resolve()}")


if __name__ == "__main__":
    cli.run(main)
