"""Answers from completions: what a completion says, not how it says it.

An `AnswerSpec` is parsed from a short spec (the CLI's `--answer SPEC`, the API's `extract=`):

    exact            the whole completion
    first-line       its first line that is not blank (or punctuation only)
    first-word       its first word (that is not punctuation only)
    number           its first number: "12", "12.0", "+12", "1,200", "1.2e3", "12th", "twelve",
                     "twenty-one", "one hundred and five", "minus 3"; written canonically
                     ("12", "-3", "0.5", "1200")
    choice:A,B,C,D   one of the choices: marked ("(B)", "B)", "answer is B", "option B"), else the
                     first word ("b.", "B: because"), else the first stand-alone choice, same case
    regex:PATTERN    the first match of PATTERN in the raw text (the first group that took part
                     in the match, if it has groups; else the whole match)
    json:FIELD       FIELD of the first JSON object in the text that has it (a dotted path:
                     json:answer.value); a number written canonically, an object or list as compact JSON

Normalisation (every kind but number and choice, which have their own canonical forms):
Unicode NFKC, case folded (str.casefold: "Straße" -> "strasse"), whitespace runs collapsed
to one space, and surrounding whitespace and punctuation stripped (Unicode categories P*, and
the backtick): "Paris.", " paris" and "**Paris**" are one answer; "$12" keeps its symbol (but
"12%" reads 12: % is punctuation to Unicode). A completion in which the spec finds nothing, or
whose answer normalises to nothing, has the answer NO_ANSWER: nothing is dropped.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tokendice.errors import ParameterError, suggest

NO_ANSWER = "<no answer>"
KINDS = ("exact", "first-line", "first-word", "number", "choice", "regex", "json")
TAKES_ARGUMENT = ("choice", "regex", "json")

_SPACE = re.compile(r"\s+")
# digits: 1,234,567 or 1234, a decimal part, an exponent, an ordinal or unit may follow ("12th", "5kg");
# not inside a word or a longer number ("x12", "v1.2" -> nothing, "1,0000" -> 1)
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+−])?(?:(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+(?!\d))(?P<frac>\.\d+)?|(?P<bare>\.\d+))"
    r"(?P<exp>[eE][-+]?\d+(?![\w]))?"
)
_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                                     "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000, "trillion": 1_000_000_000_000}
_NEGATIVE = ("minus", "negative")
_WORD = re.compile(r"[^\W\d_]+")


def normalise(text: str) -> str:
    """NFKC, case folded, whitespace collapsed, surrounding whitespace and punctuation stripped."""
    text = _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    start, end = 0, len(text)
    while start < end and _edge(text[start]):
        start += 1
    while end > start and _edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _edge(ch: str) -> bool:
    return ch.isspace() or ch == "`" or unicodedata.category(ch).startswith("P")


def number_text(value: Decimal) -> str:
    """A number as one canonical string: 12, 12.5, -0.25, 1E+21 for huge ones (no trailing zeros, no -0)."""
    if value.is_zero():
        return "0"
    if abs(value) >= Decimal(10) ** 18:
        return format(value.normalize(), "E")
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def first_number(text: str) -> str | None:
    """The first number in `text`, written in digits or in English words, canonically; None if none."""
    text = unicodedata.normalize("NFKC", text)
    digits = _NUMBER.search(text)
    words = _first_number_words(text.casefold())
    if digits is None and words is None:
        return None
    if words is not None and (digits is None or words[0] < digits.start()):
        start, value = words
    else:
        assert digits is not None
        start = digits.start()
        whole = (digits.group("int") or "0").replace(",", "") + (digits.group("frac") or digits.group("bare") or "") + (digits.group("exp") or "")
        try:
            value = Decimal(whole)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            return None
        if digits.group("sign"):
            return number_text(-value if digits.group("sign") in ("-", "−") else value)
    if _negated(text.casefold(), start):
        value = -value
    return number_text(Decimal(value))


def _negated(text: str, start: int) -> bool:
    """Whether the number at `start` (written without a sign) follows the word minus or negative."""
    before = text[:start].rstrip()
    return any(before.endswith(w) and (len(before) == len(w) or not before[-len(w) - 1].isalnum()) for w in _NEGATIVE)


def _first_number_words(text: str) -> tuple[int, int] | None:
    """(position, value) of the first run of English number words: "twelve", "twenty-one",
    "one hundred and five", "two thousand twenty". A word that cannot continue the number
    ("one two", "twenty thirty") ends it; "and" is read only after hundred or thousand."""
    tokens = [(m.start(), m.end(), m.group(0)) for m in _WORD.finditer(text)]
    for i, (pos, _, word) in enumerate(tokens):
        if word not in _UNITS and word not in _TENS:
            continue
        total, current, last = 0, 0, None  # last: "unit", "teen", "ten", "hundred", "scale"
        j = i
        while j < len(tokens):
            w = tokens[j][2]
            if j > i and not _joined(text[tokens[j - 1][1] : tokens[j][0]]):
                break
            if w in _UNITS:
                small = _UNITS[w] < 10
                if last in ("unit", "teen") or (last == "ten" and not (small and _UNITS[w] > 0)):
                    break
                current += _UNITS[w]
                last = "unit" if small else "teen"
            elif w in _TENS:
                if last in ("unit", "teen", "ten"):
                    break
                current += _TENS[w]
                last = "ten"
            elif w == "hundred" and last in ("unit", "teen", "ten") and current % 100 == current:
                current *= 100
                last = "hundred"
            elif w in _SCALES and last in ("unit", "teen", "ten", "hundred"):
                total += current * _SCALES[w]
                current, last = 0, "scale"
            elif w == "and" and last in ("hundred", "scale") and j + 1 < len(tokens) and (tokens[j + 1][2] in _UNITS or tokens[j + 1][2] in _TENS):
                pass
            else:
                break
            j += 1
        return pos, total + current
    return None


def _joined(gap: str) -> bool:
    """Two number words belong to one number when only spaces or a hyphen separate them."""
    return gap.strip() in ("", "-")


@dataclass(frozen=True)
class AnswerSpec:
    """How to read an answer out of a completion (see the module docstring); parse with `AnswerSpec.parse`."""

    kind: str = "exact"
    arg: str = ""

    @classmethod
    def parse(cls, spec: str | AnswerSpec) -> AnswerSpec:
        if isinstance(spec, AnswerSpec):
            return spec
        if not isinstance(spec, str) or not spec.strip():
            raise ParameterError(f"an answer spec is one of {', '.join(KINDS)} (choice:, regex: and json: take an argument), got {spec!r}", param="extract")
        kind, _, arg = spec.partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise ParameterError(f"unknown answer spec {kind!r}: one of {', '.join(KINDS)}{suggest(kind, KINDS)}", param="extract")
        if kind != "regex":
            arg = arg.strip()  # a pattern keeps its spaces: they are part of it
        if kind in TAKES_ARGUMENT and not arg:
            raise ParameterError(f"the answer spec {kind} needs an argument: {kind}:{_EXAMPLES[kind]}", param="extract")
        if kind not in TAKES_ARGUMENT and (arg or ":" in spec):
            raise ParameterError(f"the answer spec {kind} takes no argument, got {spec!r}", param="extract")
        made = cls(kind, arg)
        checked = made._compiled()  # a bad regex, choice list or field fails here
        return cls(kind, ",".join(checked)) if kind == "choice" else made

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.kind in TAKES_ARGUMENT else self.kind

    def __call__(self, completion: str) -> str:
        """The normalised answer of `completion`, or NO_ANSWER."""
        found = self._find(completion)
        if found is None:
            return NO_ANSWER
        answer = found if self.kind in ("number", "choice") or isinstance(found, _Canonical) else normalise(found)
        return str(answer) if answer else NO_ANSWER

    def _compiled(self) -> Any:
        if self.kind == "regex":
            try:
                return re.compile(self.arg)
            except re.error as exc:
                raise ParameterError(f"regex:{self.arg} is not a valid regular expression: {exc}", param="extract") from None
        if self.kind == "choice":
            choices = [c.strip() for c in self.arg.split(",")]
            if any(not re.fullmatch(r"[^\W_]{1,3}", c) for c in choices):
                raise ParameterError(f"choice: takes comma-separated choices of 1 to 3 letters or digits such as A,B,C,D, got {self.arg!r}", param="extract")
            if len({c.casefold() for c in choices}) != len(choices):
                raise ParameterError(f"choice: lists a choice twice (choices are read regardless of case), got {self.arg!r}", param="extract")
            return choices
        if self.kind == "json" and any(not key for key in self.arg.split(".")):
            raise ParameterError(f"json: takes a field name or a dotted path such as answer.value, got {self.arg!r}", param="extract")
        return None

    def _find(self, text: str) -> str | None:
        if self.kind == "exact":
            return text
        if self.kind == "first-line":
            return next((line for line in text.splitlines() if normalise(line)), None)
        if self.kind == "first-word":
            return next((w for w in text.split() if normalise(w)), None)
        if self.kind == "number":
            return first_number(text)
        if self.kind == "choice":
            return _choice(unicodedata.normalize("NFKC", text), self._compiled())
        if self.kind == "regex":
            match = self._compiled().search(text)
            if match is None:
                return None
            return next((g for g in match.groups() if g is not None), match.group(0))
        return _json_field(text, self.arg)


_EXAMPLES = {"choice": "A,B,C,D", "regex": r"answer is (\w+)", "json": "answer"}
_MARKED = (r"\(\s*({c})\s*\)", r"(?<![^\W_])({c})\)", r"\b(?:answer|option|choice)\s*(?:is|:)?\s*[\"'*(\[]*({c})(?![^\W_])")


def _choice(text: str, choices: list[str]) -> str | None:
    """A marked choice, else the first word if it is a choice, else the first stand-alone choice in the
    case the spec writes it (so that the article "a" is not the choice "A")."""
    alternatives = "|".join(re.escape(c) for c in sorted(choices, key=len, reverse=True))
    by_fold = {c.casefold(): c for c in choices}
    found: list[tuple[int, str]] = []
    for pattern in _MARKED:
        match = re.search(pattern.format(c=alternatives), text, re.IGNORECASE)
        if match is not None:
            found.append((match.start(1), match.group(1)))
    if found:
        return by_fold[min(found)[1].casefold()]
    first = next((normalise(w) for w in text.split() if normalise(w)), None)
    if first is not None and first in by_fold:
        return by_fold[first]
    match = re.search(rf"(?<![^\W_])({alternatives})(?![^\W_])", text)
    return match.group(1) if match is not None else None


def _json_field(text: str, path: str) -> str | None:
    """FIELD (a dotted path) of the first JSON object in `text` that has it (objects inside a
    parsed object are not searched again: the path says how deep to look)."""
    decoder = json.JSONDecoder()
    position = 0
    while True:
        start = text.find("{", position)
        if start < 0:
            return None
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        position = end
        found = True
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                found = False
                break
            value = value[key]
        if found:
            return _json_text(value)


class _Canonical(str):
    """A JSON value written canonically already: not normalised again."""


def _json_text(value: Any) -> str | None:
    """A string as it is (it is normalised as any answer), anything else canonically."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return _Canonical("true" if value else "false")
    if isinstance(value, (int, float)):
        try:
            return _Canonical(number_text(Decimal(str(value))))
        except InvalidOperation:  # inf and nan, which Python's json reads
            return _Canonical(str(value).casefold())
    return _Canonical(json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
