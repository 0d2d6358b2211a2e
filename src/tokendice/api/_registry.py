"""How stored runs of each kind are read back (`load_run`) and finished (`resume`): each API
module registers its kinds here, and api/runs.py looks them up."""

from __future__ import annotations

from typing import Any, Callable

Loader = Callable[..., Any]  # (store, run record) -> the result
Resumer = Callable[..., Any]  # (run id, db=, progress=, **settings) -> the result

LOADERS: dict[str, Loader] = {}
RESUMERS: dict[str, Resumer] = {}


def loads(kind: str) -> Callable[[Loader], Loader]:
    """Register how runs of `kind` are read back as results."""

    def register(fn: Loader) -> Loader:
        LOADERS[kind] = fn
        return fn

    return register


def resumes(kind: str) -> Callable[[Resumer], Resumer]:
    """Register how an interrupted run of `kind` is finished."""

    def register(fn: Resumer) -> Resumer:
        RESUMERS[kind] = fn
        return fn

    return register
