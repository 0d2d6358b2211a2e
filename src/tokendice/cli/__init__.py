"""The tokendice command line: parse, call the API, render. No experiment logic here.

Errors are one line on stderr and exit code 2; messages name parameters as the API
does (`top_p`), and are shown here with the flags (`--top-p`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from typing import Sequence

from tokendice._version import __version__
from tokendice.errors import ParameterError, RunInterrupted, TokendiceError

COMMANDS = ("trace", "sample", "enumerate", "answers", "semantic", "runs", "models", "audit", "diff", "compare", "perturb", "report", "explore")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokendice",
        description="A lab for the randomness of language models. Run 'tokendice COMMAND --help' for a command's options.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"tokendice {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tokendice.cli.{name}").add_parser(sub)
    _no_abbreviations(parser)
    return parser


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """`--mode x` must not be read as `--model x`: no parser accepts abbreviated flags."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _no_abbreviations(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 a user error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    if getattr(args, "verbose", False):
        os.environ["TOKENDICE_VERBOSE"] = "1"
    try:
        return int(args.run(args) or 0)
    except TokendiceError as exc:
        print(f"tokendice: error: {in_flags(exc, parser)}", file=sys.stderr)
        return 2
    except RunInterrupted as exc:
        hint = f"; continue with: {exc.resume_hint}" if exc.resume_hint else ""
        print(f"tokendice: interrupted: {exc.message}{hint}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("tokendice: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def in_flags(exc: TokendiceError, parser: argparse.ArgumentParser) -> str:
    """The message with API keywords written as the CLI's flags: `top_p` -> `--top-p`,
    `rng='per-sample'` -> `--rng per-sample`, `chat=True` -> `--chat`, `chat=False` -> `no --chat`."""
    message = str(exc)
    flags = _flags(parser)
    param = getattr(exc, "param", None) if isinstance(exc, ParameterError) else None

    def keyword_value(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(3)
        if name not in flags:
            return m.group(0)
        flag, sets = flags[name]
        if sets is None:
            return f"{flag} {value}"
        if value in ("True", "False"):
            return flag if value == str(sets) else f"no {flag}"
        return m.group(0)

    message = re.sub(r"\b([a-z_]+)=(['\"]?)([^'\",;:)\s]+)\2", keyword_value, message)
    if param in flags:
        flag = flags[param][0]
        quoted = re.sub(rf"'{re.escape(param)}'", flag, message, count=1)
        message = quoted if quoted != message else re.sub(rf"(?<![-\w]){re.escape(param)}(?![\w=])", flag, message, count=1)
    return message


INVERTED = {"do_sample": ("--greedy", False), "stop_at_eos": ("--no-stop", False)}
"""Keywords whose flag has another name: --greedy means do_sample=False."""


def _flags(parser: argparse.ArgumentParser) -> dict[str, tuple[str, bool | None]]:
    """API keyword -> (the long flag that sets it, the value a flag without an argument sets, else None)."""
    found: dict[str, tuple[str, bool | None]] = dict(INVERTED)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                for dest, value in _flags(child).items():
                    found.setdefault(dest, value)
        elif action.option_strings:
            long = [o for o in action.option_strings if o.startswith("--")]
            if long and action.dest not in found:
                sets = action.const if isinstance(action.const, bool) and action.nargs == 0 else None
                found[action.dest] = (long[0], sets)
    found.pop("help", None)
    found.setdefault("n", ("-n", None))
    return found


def entry() -> None:
    sys.exit(main())
