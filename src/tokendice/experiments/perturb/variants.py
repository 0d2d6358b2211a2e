"""Prompt variants: small, meaning-preserving edits of a prompt, each named and deterministic.

A generator maps the prompt text to a new text (and may switch the chat template
on or off). Names have the form `kind.what` (`case.lower`, `punct.question`);
`+` composes them, applied left to right (`case.lower+punct.question`). User
variants come from a file: a literal prompt, or a template in which `{p}` stands
for the original prompt. A variant whose text and encoding equal the original's,
or an earlier variant's, is skipped with a note rather than measured twice.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Sequence

from tokendice.errors import ParameterError, suggest
from tokendice.experiments.results import Result, clip

FINAL_PUNCT = ".!?:;,"
PLACEHOLDER = "{p}"


@dataclass(frozen=True)
class Generator:
    """One named edit. `chat` None keeps the encoding; True/False switches the chat template on/off."""

    name: str
    description: str
    transform: Callable[[str], str]
    chat: bool | None = None
    default: bool = True

    @property
    def kind(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class Variant:
    """A prompt to measure: its text, whether it is wrapped in the chat template, and how it was made."""

    name: str
    kind: str
    prompt: str
    chat: bool = False
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Variant:
        """The inverse of `to_dict`: a stored run's variants are measured again on resume."""
        return cls(**data)


@dataclass(frozen=True)
class UserVariant:
    """A variant from a --variants file: a literal prompt, or a template holding `{p}`."""

    name: str
    text: str
    chat: bool | None = None

    @property
    def is_template(self) -> bool:
        return PLACEHOLDER in self.text


@dataclass
class VariantSet:
    original: Variant
    variants: list[Variant]
    skipped: list[dict[str, str]]  # {"name", "prompt", "note"}

    def to_dict(self) -> dict[str, Any]:
        return {"original": self.original.to_dict(), "variants": [v.to_dict() for v in self.variants], "skipped": self.skipped}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantSet:
        """The inverse of `to_dict`: a resumed suite measures the variants its manifest lists, not
        variants rebuilt from today's generators (which may have changed since)."""
        return cls(
            Variant.from_dict(data["original"]),
            [Variant.from_dict(v) for v in data["variants"]],
            [dict(s) for s in data["skipped"]],
        )


def _words_capitalised(text: str) -> str:
    return re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), text)


def _final(mark: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        return text.rstrip().rstrip(FINAL_PUNCT).rstrip() + mark

    return edit


def _wrap(left: str, right: str) -> Callable[[str], str]:
    return lambda text: f"{left}{text}{right}"


def _template(template: str) -> Callable[[str], str]:
    return lambda text: template.replace(PLACEHOLDER, text)


_BUILTIN = [
    Generator("whitespace.trailing_space", "append a space", lambda t: t + " "),
    Generator("whitespace.leading_space", "prepend a space", lambda t: " " + t, default=False),
    Generator("whitespace.double_space", "double every space", lambda t: t.replace(" ", "  ")),
    Generator("whitespace.newline", "append a newline", lambda t: t + "\n"),
    Generator("case.lower", "lower-case everything", str.lower),
    Generator("case.upper", "upper-case everything", str.upper),
    Generator("case.title", "capitalise every word", _words_capitalised),
    Generator("punct.period", "end with a period", _final(".")),
    Generator("punct.question", "end with a question mark", _final("?")),
    Generator("punct.colon", "end with a colon", _final(":"), default=False),
    Generator("punct.none", "drop the final punctuation", _final("")),
    Generator("quotes.double", 'wrap in "double quotes"', _wrap('"', '"')),
    Generator("quotes.single", "wrap in 'single quotes'", _wrap("'", "'"), default=False),
    Generator("quotes.curly", "wrap in “curly quotes”", _wrap("“", "”"), default=False),
    Generator("sep.colon", 'field and separator "Text: "', _template("Text: {p}"), default=False),
    Generator("sep.newline", 'field and separator "Text:\\n"', _template("Text:\n{p}")),
    Generator("sep.dash", 'field and separator "Text - "', _template("Text - {p}"), default=False),
    Generator("template.chat", "the model's chat template instead of raw text", lambda t: t, chat=True),
    Generator("template.raw", "raw text instead of the chat template", lambda t: t, chat=False),
    Generator("para.complete", 'instruction "Complete the sentence: "', _template("Complete the sentence: {p}")),
    Generator("para.continue", 'instruction "Continue the text: "', _template("Continue the text: {p}"), default=False),
    Generator("para.answer", 'instruction "Answer briefly. "', _template("Answer briefly. {p}"), default=False),
]
GENERATORS: dict[str, Generator] = {g.name: g for g in _BUILTIN}
KINDS = tuple(dict.fromkeys(g.kind for g in _BUILTIN)) + ("user",)


def default_names() -> list[str]:
    """The variants measured when none are chosen."""
    return [g.name for g in _BUILTIN if g.default]


def apply(name: str, prompt: str, chat: bool) -> Variant:
    """The variant `name` (built-in generators joined by `+`) of `prompt`."""
    parts = [part.strip() for part in name.split("+")]
    text, encoded_chat, kinds, words = prompt, chat, [], []
    for part in parts:
        generator = GENERATORS.get(part)
        if generator is None:
            raise ParameterError(f"unknown variant {part!r}{suggest(part, GENERATORS)} (known: {', '.join(GENERATORS)}; join with '+')", param="variants")
        text = generator.transform(text)
        if generator.chat is not None:
            encoded_chat = generator.chat
        kinds.append(generator.kind)
        words.append(generator.description)
    return Variant("+".join(parts), "+".join(dict.fromkeys(kinds)), text, encoded_chat, ", then ".join(words))


def user_variant(item: UserVariant, prompt: str, chat: bool) -> Variant:
    text = item.text.replace(PLACEHOLDER, prompt)
    encoded_chat = chat if item.chat is None else item.chat
    how = f"template {item.text!r}" if item.is_template else "literal prompt from the variants file"
    return Variant(item.name, "user", text, encoded_chat, how)


def make_variants(
    prompt: str,
    chat: bool = False,
    names: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    user: Sequence[UserVariant] = (),
) -> VariantSet:
    """The original and its variants, in a fixed order; duplicates and no-op edits are skipped with a note.

    `names` picks variants (built-in names, `+` compositions, user variant names);
    by default every default built-in and every user variant is used. `kinds`
    keeps only variants all of whose parts are of those kinds (without `names`,
    out of every built-in, the non-default ones included).
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ParameterError("prompt must be a non-empty string", param="prompt")
    check_kinds(kinds)
    by_user_name = {u.name: u for u in user}
    if names is not None:
        chosen = list(names)
    else:
        chosen = (default_names() if kinds is None else list(GENERATORS)) + list(by_user_name)
    original = Variant("original", "original", prompt, chat, "the prompt as given")
    seen: dict[tuple[str, bool], str] = {(prompt, chat): "the original"}
    variants, skipped = [], []
    for name in dict.fromkeys(chosen):
        variant = user_variant(by_user_name[name], prompt, chat) if name in by_user_name else apply(name, prompt, chat)
        if kinds is not None and not set(variant.kind.split("+")) <= set(kinds):
            continue
        key = (variant.prompt, variant.chat)
        if not variant.prompt.strip():
            skipped.append({"name": variant.name, "prompt": variant.prompt, "note": "empty prompt"})
        elif key in seen:
            skipped.append({"name": variant.name, "prompt": variant.prompt, "note": f"same as {seen[key]}"})
        else:
            seen[key] = variant.name
            variants.append(variant)
    return VariantSet(original, variants, skipped)


def check_kinds(kinds: Iterable[str] | None) -> None:
    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown:
        raise ParameterError(f"unknown variant kind(s) {', '.join(unknown)}{suggest(unknown[0], KINDS)} (known: {', '.join(KINDS)})", param="kinds")


def parse_names(text: str | Sequence[str] | None, param: str = "variants") -> list[str] | None:
    """Variant names (or kinds): a list, or one comma-separated string; None stays None."""
    if text is None:
        return None
    if isinstance(text, str):
        names = [n.strip() for n in text.split(",") if n.strip()]
    elif isinstance(text, (list, tuple)) and all(isinstance(n, str) for n in text):
        names = [n.strip() for n in text if n.strip()]
    else:
        raise ParameterError(f"{param} must be a list of names or a comma-separated string, got {text!r}", param=param)
    if not names:
        raise ParameterError(f"{param} must name at least one variant{' kind' if param == 'kinds' else ''}", param=param)
    return names


def read_variants_file(path: str | os.PathLike[str]) -> list[UserVariant]:
    """One variant a line (a literal prompt, or a template with {p}; `\\n` stands for a newline), or
    JSONL objects {"name": ..., "prompt": ..., "chat": ...} ("name" and "chat" optional; a line
    starting with `{"` is JSON). Blank lines are skipped. Every problem is a one-line ParameterError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ParameterError(f"cannot read variants file {path}: {exc.strerror}", param="user_variants") from None
    if b"\0" in data:
        raise ParameterError(f"variants file {path} is a binary file, not text: one variant a line, or JSONL", param="user_variants")
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParameterError(f"variants file {path} is not UTF-8 text (byte {exc.start} is not valid)", param="user_variants") from None
    out: list[UserVariant] = []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        name, text, chat = f"user.{len(out) + 1}", line.replace("\\n", "\n"), None
        if line.lstrip().startswith('{"'):
            try:
                item = json.loads(line)
                text = str(item["prompt"])
                name = str(item.get("name") or name)
                chat = item.get("chat")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ParameterError(f"{path}:{number}: expected a JSON object with a \"prompt\" field", param="user_variants") from exc
            if chat is not None and not isinstance(chat, bool):
                raise ParameterError(f"{path}:{number}: \"chat\" must be true or false", param="user_variants")
        if name in GENERATORS or name == "original" or any(u.name == name for u in out):
            raise ParameterError(f"{path}:{number}: variant name {name!r} is already taken", param="user_variants")
        out.append(UserVariant(name, text, chat))
    if not out:
        raise ParameterError(f"variants file {path} holds no variants", param="user_variants")
    return out


def user_variants_of(value: Any) -> list[UserVariant]:
    """`user_variants` as the API takes it: a path to a variants file, or a list of
    UserVariant or strings (a string is a template holding {p}, or a literal prompt)."""
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        return read_variants_file(os.fsdecode(value))
    if not isinstance(value, (list, tuple)):
        raise ParameterError(f"user_variants must be a path to a variants file or a list of variants, got {value!r}", param="user_variants")
    out: list[UserVariant] = []
    for i, item in enumerate(value, 1):
        if isinstance(item, str) and item.strip():
            item = UserVariant(f"user.{i}", item)
        if not isinstance(item, UserVariant) or not isinstance(item.text, str) or not item.text.strip():
            raise ParameterError(f"user_variants[{i - 1}] must be a non-empty string or a UserVariant, got {item!r}", param="user_variants")
        if item.name in GENERATORS or item.name == "original" or any(u.name == item.name for u in out):
            raise ParameterError(f"user_variants[{i - 1}]: variant name {item.name!r} is already taken", param="user_variants")
        out.append(item)
    return out


def build_variant_sets(
    prompts: Sequence[str],
    chat: bool = False,
    names: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    user: Sequence[UserVariant] = (),
) -> list[VariantSet]:
    """The variants of every prompt of a suite; literal user variants only make sense for one prompt."""
    if not prompts:
        raise ParameterError("give at least one prompt", param="prompts")
    literal = [u.name for u in user if not u.is_template]
    if literal and len(prompts) > 1:
        raise ParameterError(f"variant(s) {', '.join(literal)} are literal prompts; with several prompts use templates holding {{p}}", param="user_variants")
    return [make_variants(p, chat, names, kinds, user) for p in prompts]


def kind_of(name: str) -> str:
    """The kind of a variant named `name`: its built-in parts' kinds, else "user"."""
    parts = [part.strip() for part in name.split("+")]
    if all(part in GENERATORS for part in parts):
        return "+".join(dict.fromkeys(GENERATORS[part].kind for part in parts))
    return "user"


@dataclass(repr=False)
class VariantList(Result):
    """The variants of one prompt or of several (`tokendice.variants`, `tokendice perturb --list`):
    what `perturb` would measure, and what it would skip and why. No model is loaded."""

    kind: ClassVar[str] = "variants"
    COLUMNS: ClassVar[tuple[str, ...]] = ("prompt_index", "prompt", "variant", "kind", "chat", "text", "description", "skipped")

    sets: list[VariantSet] = field(default_factory=list)
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "run_id": self.run_id, "prompts": [v.to_dict() for v in self.sets]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantList:
        return cls([VariantSet.from_dict(v) for v in data["prompts"]], data.get("run_id"))

    def rows(self) -> list[dict[str, Any]]:
        """One row per variant of each prompt; a skipped one has its note in `skipped`."""
        rows: list[dict[str, Any]] = []
        for index, vset in enumerate(self.sets):
            base = {"prompt_index": index, "prompt": vset.original.prompt}
            for v in vset.variants:
                rows.append({**base, "variant": v.name, "kind": v.kind, "chat": v.chat, "text": v.prompt,
                             "description": v.description, "skipped": None})
            for s in vset.skipped:
                rows.append({**base, "variant": s["name"], "kind": kind_of(s["name"]), "chat": None, "text": s["prompt"],
                             "description": None, "skipped": s["note"]})
        return rows

    def headline(self) -> str:
        measured = sum(len(v.variants) for v in self.sets)
        skipped = sum(len(v.skipped) for v in self.sets)
        counts = f"{measured} variants" + (f", {skipped} skipped" if skipped else "")
        if len(self.sets) == 1:
            return f"{clip(self.sets[0].original.prompt, 50)} · {counts}"
        first = clip(self.sets[0].original.prompt, 30) if self.sets else ""
        return f"{len(self.sets)} prompts ({first}, …) · {counts}"
