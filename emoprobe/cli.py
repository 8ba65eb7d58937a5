"""What every script shares: the common options and the way user errors end a run.

    parser = cli.parser(__doc__, extraction=True)      # --data-root --embeddings-dir --limit --shard --device --debug
    ...
    if __name__ == "__main__":
        cli.run(main)          # a UserError (bad path, name, manifest, option) -> one line on stderr, exit 2

`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import config
from .errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the usage block: the user asked for --help if they want it
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser(doc: str, data: bool = True, embeddings: bool = True, extraction: bool = False) -> argparse.ArgumentParser:
    """An argument parser with the options its kind of script always has.

    data: --data-root (a RAVDESS folder or a manifest, else $RAVDESS_ROOT, else data/raw);
    embeddings: --embeddings-dir; extraction: the extract scripts' options (--encoders, --random-init,
    --channel, --limit, --shard, --device, --batch-size, --precision, --set, --list; the script sets
    the default of --encoders with p.set_defaults(encoders=[...])).
    """
    p = _Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if data:
        p.add_argument("--data-root", metavar="PATH",
                       help="a RAVDESS folder (any layout) or a manifest .jsonl (default: $RAVDESS_ROOT or data/raw)")
    if embeddings:
        p.add_argument("--embeddings-dir", metavar="DIR", help="embedding stores (default: $EMOPROBE_EMBEDDINGS "
                       "or data/embeddings)")
    if extraction:
        p.add_argument("--encoders", nargs="+", metavar="NAME", help="registered names (a random-init twin is "
                       "NAME-randinit) or groups: offline, hub, controls, all (see --list)")
        p.add_argument("--random-init", action="store_true", help="the random-init twins of the encoders listed")
        p.add_argument("--channel", default="speech", choices=["speech", "song", "all"],
                       help="the clips' `channel` attribute to keep (RAVDESS's vocal channel; a manifest without "
                       "one is not filtered; default: %(default)s)")
        p.add_argument("--no-sequences", dest="sequences", action="store_false",
                       help="do not keep per-window / per-frame sequences (saves disk)")
        p.add_argument("--limit", type=positive(int), metavar="N", help="only the first N clips (a quick try)")
        p.add_argument("--shard", metavar="I/N", type=shard_spec,
                       help="embed only shard I of N (from 0; 'auto' reads torchrun/SLURM variables), then run "
                       "experiments/merge_shards.py once all N are done")
        p.add_argument("--device", type=device, default=default_device(),
                       help="cpu, cuda, cuda:1... (default: %(default)s)")
        p.add_argument("--batch-size", type=positive(int), default=1,
                       help="clips per forward pass (1 is fastest on CPU; 8-16 on a GPU)")
        p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                       help="bf16 autocast where the benchmark shows fidelity (default fp32)")
        p.add_argument("--set", dest="settings", action="append", type=_setting, default=[], metavar="KEY=VALUE",
                       help="an encoder option, e.g. --set context=30s (Whisper); repeatable")
        p.add_argument("--list", action="store_true", help="list the registered encoders of this modality and exit")
        p.add_argument("--strict", action="store_true", help="exit non-zero if any clip could not be embedded "
                       "(without it: only if a store got none)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-item lines, only results")
    return p


def positive(kind=int):
    """An argparse type: a number of `kind` above zero."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be above 0")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def device(text: str) -> str:
    """An argparse type: a torch device that exists here (a CUDA device needs a visible GPU)."""
    import torch

    try:
        parsed = torch.device(text)
    except RuntimeError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0 or (parsed.index or 0) >= count:
            raise argparse.ArgumentTypeError(f"{text}: {count} CUDA device(s) visible on this machine; use --device cpu")
    elif parsed.type not in ("cpu", "mps"):
        raise argparse.ArgumentTypeError(f"{text}: use cpu, cuda or cuda:N")
    return text


def shard_spec(spec: str) -> str:
    """A --shard value ('i/n' or 'auto'), checked where it is parsed (store.shards.parse_shard)."""
    from .store.shards import parse_shard

    try:
        parse_shard(spec)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return spec


def _setting(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as JSON when it is (numbers, true/false), else as a string."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def extraction_plan(args, modality: str, input: str, source: str):
    """What an extract script runs: None after printing the encoders (--list), else (encoder names,
    the clips table with `source`: the file that feeds `source` ("audio" or "video"))."""
    from . import encoders
    from .data import clips

    if args.list:
        print(encoders.describe(modality=modality))
        return None
    names = encoders.expand(args.encoders, modality=modality, input=input)
    table = clips.load(args.data_root, None if args.channel == "all" else args.channel, source, args.limit)
    if table.source.isna().all():  # said before any model is loaded
        print(f"[{modality}] nothing to embed: none of the {len(table)} clip(s) of {data_label(args)} has {source}")
        return None
    return names, table


def check_outcome(metas: dict[str, dict], strict: bool = False) -> None:
    """The exit status an extraction earns (run_extraction's metas of every store it ran): a store with
    nothing embedded is an error; failed clips are counted (an error with --strict)."""
    failed = {store: meta.get("n_failures", 0) for store, meta in metas.items() if meta.get("n_failures")}
    if failed:
        print(f"[extract] {sum(failed.values())} clip(s) could not be embedded ("
              + ", ".join(f"{store} {n}" for store, n in failed.items()) + "): see each store's failures.json")
    empty = [store for store, meta in metas.items() if meta.get("n_clips") == 0]
    if empty:
        raise UserError(f"nothing could be embedded into {', '.join(empty)}: every clip failed (the lines above "
                        "and each store's failures.jsonl say why)")
    if strict and failed:
        raise UserError(f"--strict: {sum(failed.values())} clip(s) could not be embedded")


def build_encoder(name: str, args, **options):
    """The encoder `name` with the script's options, or None (said in one line) when its pretrained
    weights are on a model hub that cannot be reached: the other encoders still run."""
    from . import encoders
    from .errors import HubUnavailableError

    try:
        return encoders.get_encoder(name, args.random_init, dict(args.settings), device=args.device,
                                    sequences=args.sequences, batch_size=args.batch_size,
                                    precision=args.precision, **options)
    except HubUnavailableError as err:
        print(f"[{encoders.get_card(name).modality}/{name}] not run: {err}")
        return None


def data_label(args) -> str:
    """The data root as store meta records it (relative to the repository)."""
    return config.relative(config.data_root(args.data_root))


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


LIBRARIES = ("sklearn", "torch", "numpy", "pandas")  # their exceptions in a script come from the data or options given


def run(main, argv=None) -> None:
    """Run a script's main(argv): a UserError, or an exception raised inside a library the data and
    options flow into (LIBRARIES: e.g. sklearn refusing too few groups), ends it with one line on
    stderr and exit status 2; --debug shows the traceback instead."""
    argv = sys.argv[1:] if argv is None else argv
    prog = sys.argv[0].rsplit("/", 1)[-1]
    quiet_before = os.environ.get("EMOPROBE_QUIET")
    if "--quiet" in argv:
        os.environ["EMOPROBE_QUIET"] = "1"  # every progress bar of the run (config.quiet), the extraction loop's too
    try:
        main(argv)
    except UserError as err:
        if "--debug" in argv:
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished clips are kept; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except Exception as err:
        library = raised_in(err)
        if library is None or "--debug" in argv:
            raise
        text = " ".join(str(err).split()) or "(no message)"
        print(f"{prog}: error: {library} raised {type(err).__name__}: {text} (--debug shows where)", file=sys.stderr)
        sys.exit(2)
    finally:  # a caller in the same process (a test, a notebook) keeps its own setting
        if quiet_before is None:
            os.environ.pop("EMOPROBE_QUIET", None)
        else:
            os.environ["EMOPROBE_QUIET"] = quiet_before


def raised_in(err: BaseException) -> str | None:
    """The library of LIBRARIES whose code raised err (the innermost frame), or None."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    top = module.split(".")[0]
    return top if top in LIBRARIES else None


def add_normalisations(p: argparse.ArgumentParser) -> None:
    """--normalisations: the protocols a probing script runs (emoprobe.probes.normalise), all by default."""
    from .probes import normalise
    p.add_argument("--normalisations", nargs="+", default=list(normalise.DEFAULT), choices=list(normalise.NORMALISATIONS),
                   metavar="NAME", help=f"run under each of these ({', '.join(normalise.NORMALISATIONS)}; default: all): "
                   "'speaker' is transductive (each test speaker normalised with its own unlabelled clips)")
