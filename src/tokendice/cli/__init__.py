"""The tokendice command line: parse, call the API, render. No experiment logic here."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from tokendice import __version__
from tokendice.errors import TokendiceError

COMMANDS = ("trace", "sample", "enumerate", "runs", "models", "audit", "diff", "compare", "perturb")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokendice",
        description="A lab for the randomness of language models. Run 'tokendice COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"tokendice {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tokendice.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 a user error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except TokendiceError as exc:
        print(f"tokendice: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tokendice: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def entry() -> None:
    sys.exit(main())
