"""`perturb`: how far small, meaning-preserving prompt edits move the output."""

from __future__ import annotations

from typing import Any

from tokendice.api._legacy import _check_prompt, get_engine, make_params  # noqa: F401
from tokendice.engines.base import Engine  # noqa: F401
from tokendice.params import SamplingParams  # noqa: F401


def perturb(
    prompt: str | None = None,
    *,
    prompts: list[str] | None = None,
    variants: str | list[str] | None = None,
    kinds: str | list[str] | None = None,
    user_variants: Any = (),
    model: str | None = None,
    engine: str | Engine = "hf",
    chat: bool = False,
    samples: int = 200,
    mass: float = 0.95,
    max_nodes: int = 300,
    distribution: bool = True,
    seed: int = 0,
    params: SamplingParams | None = None,
    engine_options: dict[str, Any] | None = None,
    save: bool = True,
    db: str | None = None,
    progress: Any = None,
    **sampling: Any,
):
    """How far small, meaning-preserving edits of the prompt move the output; returns a `PerturbReport`.

    Give `prompt`, or `prompts` for a suite. `variants` picks variant names (a list
    or a comma-separated string; `+` composes), `kinds` variant kinds; `user_variants`
    adds `UserVariant`s (or a path to a variants file). `max_new_tokens` defaults to 8
    here. `progress(units, label)` hears of 100 units per prompt. With `save`, the
    report is stored as a run of kind 'perturb' (result 'report') and `report.run_id` set.
    """
    from tokendice.errors import ParameterError
    from tokendice.experiments.perturb.perturb import PerturbSettings
    from tokendice.experiments.perturb.suite import run_perturb
    from tokendice.experiments.perturb.variants import build_variant_sets, parse_names, read_variants_file

    if (prompt is None) == (prompts is None):
        raise ParameterError("give a prompt or prompts (one of the two)")
    if params is None:
        sampling.setdefault("max_new_tokens", 8)
    settings = PerturbSettings(make_params(params, **sampling), seed, samples, mass, max_nodes, distribution)
    texts = [prompt] if prompt is not None else list(prompts or [])
    for p in texts:
        _check_prompt(p)
    user = read_variants_file(user_variants) if isinstance(user_variants, str) else list(user_variants)
    names = parse_names(variants) if isinstance(variants, str) else variants
    kind_list = parse_names(kinds) if isinstance(kinds, str) else kinds
    vsets = build_variant_sets(texts, chat, names, kind_list, user)
    eng = get_engine(engine, model, **(engine_options or {}))
    if not save:
        return run_perturb(eng, vsets, settings, progress, None, chat)
    from tokendice.store.db import Store

    with Store(db) as store:
        return run_perturb(eng, vsets, settings, progress, store, chat)
