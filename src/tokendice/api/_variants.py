"""`variants`: what `perturb` would measure for a prompt, without loading a model (nor torch)."""

from __future__ import annotations

import os
from typing import Any, Sequence, Union

from tokendice.api._common import prompts_of
from tokendice.errors import ParameterError, suggest
from tokendice.experiments.perturb.variants import UserVariant, VariantList, VariantSet, build_variant_sets, parse_names, user_variants_of
from tokendice.params import require_bool

Names = Union[str, Sequence[str], None]
UserVariants = Union[str, "os.PathLike[str]", Sequence[Union[UserVariant, str]]]


def variants(
    prompt: str | Sequence[str],
    *,
    names: Names = None,
    kinds: Names = None,
    user_variants: UserVariants = (),
    chat: bool = False,
    **unknown: Any,
) -> VariantList:
    """The variants `perturb` would measure for a prompt (or a list of prompts), and the ones it
    would skip and why (a no-op edit, a duplicate); loads no model.

    `names` picks variants (a list or a comma-separated string; `+` composes,
    `case.lower+punct.question`), `kinds` keeps variant kinds (whitespace, case, punct, quotes,
    sep, template, para, user); `user_variants` adds your own: a path to a variants file, or a
    list of templates holding `{p}` (or literal prompts) or `UserVariant`s.
    """
    if unknown:
        name = next(iter(unknown))
        raise ParameterError(f"variants() got an unexpected keyword {name!r}{suggest(name, ['names', 'kinds', 'user_variants', 'chat'])}", param=name)
    texts = prompts_of(prompt, "prompt")
    return VariantList(variant_sets(texts, names, kinds, user_variants, chat, "names"))


def variant_sets(texts: Sequence[str], names: Names, kinds: Names, user: Any, chat: Any, names_param: str) -> list[VariantSet]:
    """Every prompt's variants, checked: each prompt keeps at least one to measure."""
    require_bool("chat", chat)
    chosen = parse_names(names, names_param)
    kept = parse_names(kinds, "kinds")
    vsets = build_variant_sets(texts, chat, chosen, kept, user_variants_of(user))
    for vset in vsets:
        if not vset.variants:
            why = "; ".join(f"{s['name']}: {s['note']}" for s in vset.skipped) or "none is selected"
            raise ParameterError(f"no variant of {vset.original.prompt!r} is left to measure ({why})", param=names_param)
    return vsets
