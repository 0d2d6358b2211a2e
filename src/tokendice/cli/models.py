"""tokendice models: the embedded model(s) and what is cached."""

from __future__ import annotations

import argparse

HELP = "list the embedded models and the converted copies in the cache"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help=HELP, description=HELP)
    p.add_argument("--convert", action="store_true", help="convert the embedded model now (otherwise done on first use)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice.engines.embedded import DEFAULT_MODEL, EMBEDDED_MODELS, converted_dir, ensure_converted, gguf_path, is_converted
    from tokendice.errors import ModelNotFoundError

    for name, m in EMBEDDED_MODELS.items():
        if args.convert:
            ensure_converted(name)
        default = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name}{default}: {m.description}")
        try:
            print(f"  gguf:      {gguf_path(name)}")
        except ModelNotFoundError as exc:
            print(f"  gguf:      not installed ({exc})")
        state = "converted" if is_converted(name) else "not yet converted (happens on first use, ~30 s)"
        print(f"  cache:     {converted_dir(name)} [{state}]")
    return 0
