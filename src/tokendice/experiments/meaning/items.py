"""What answers and meanings are computed from: the completions of one prompt, sampled or
enumerated, read through an answer spec.

`Outcomes` is the common input: for a sample run (one prompt of it) every sample's text, its
log-probability under the sampling distribution (recorded while sampling) and its length;
for an enumeration every completion found with its exact probability, and the mass left
unexplored. `Outcomes.answers(spec)` groups them by answer: an `Answer` per distinct answer
with its count (samples) and exact probability (the sum over its completions).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from tokendice.analysis.extract import AnswerSpec
from tokendice.errors import ParameterError


@dataclass(frozen=True)
class Outcome:
    """One completion: sampled (`count` times) or enumerated (count 0), with its exact probability
    under the sampling distribution where known, and its length in tokens."""

    text: str
    tokens: tuple[int, ...]
    count: int
    prob: float | None
    n_tokens: int
    end: str = ""  # the text of the end-of-sequence token closing `text` ("" when none: it ran to its length)

    @property
    def body(self) -> str:
        """The completion without its end-of-sequence token's text: what answers are read from
        (" Paris<|im_end|>" and a " Paris" cut at the length limit say the same)."""
        return self.text[: len(self.text) - len(self.end)] if self.end and self.text.endswith(self.end) else self.text

    @property
    def logprob(self) -> float | None:
        return None if self.prob is None else (math.log(self.prob) if self.prob > 0 else -math.inf)


@dataclass
class Answer:
    """One distinct answer: the completions that give it, how many samples did, and its exact
    probability (the sum of its completions' probabilities; None when any is unknown)."""

    answer: str
    count: int
    prob: float | None
    completions: list[Outcome] = field(default_factory=list)


@dataclass
class Outcomes:
    """The completions of one prompt, from a sample run (`n` samples) or an enumeration
    (`unexplored` mass not listed)."""

    prompt: str
    source: str  # "samples" or "enumeration"
    outcomes: list[Outcome]
    n: int = 0  # samples (0 for an enumeration)
    unexplored: float = 0.0  # probability not listed (an enumeration's frontier + pruned mass)
    max_new_tokens: int | None = None
    vocab_size: int | None = None
    sample_texts: list[str] = field(default_factory=list)  # every sample's text, in sample order (samples only)
    sample_logprobs: list[float | None] = field(default_factory=list)  # every sample's log p(sampling)
    sample_lengths: list[int] = field(default_factory=list)  # every sample's tokens

    @property
    def exact(self) -> bool:
        return self.source == "enumeration"

    def answers(self, spec: AnswerSpec | str | None = None) -> list[Answer]:
        """Outcomes grouped by answer (`spec` None: the whole completion, unnormalised), most
        frequent (samples) or most probable (enumeration) first; ties by answer text."""
        read = (lambda text: text) if spec is None else AnswerSpec.parse(spec)  # answers read the body (see Outcome.body)
        grouped: dict[str, list[Outcome]] = defaultdict(list)
        for o in self.outcomes:
            grouped[read(o.text) if spec is None else read(o.body)].append(o)
        out = []
        for answer, members in grouped.items():
            probs = [o.prob for o in members]
            prob = None if any(p is None for p in probs) else math.fsum(probs)  # type: ignore[arg-type]
            out.append(Answer(answer, sum(o.count for o in members), prob, members))
        key = (lambda a: (-a.count, -(a.prob or 0.0), a.answer)) if not self.exact else (lambda a: (-(a.prob or 0.0), a.answer))
        return sorted(out, key=key)


def from_samples(prompt: str, samples: Sequence[Any], max_new_tokens: int | None = None, vocab_size: int | None = None) -> Outcomes:
    """The outcomes of one prompt's samples (`SampleRecord`s): distinct completions with counts and
    the probability recorded while sampling (None where the engine reported none, e.g. a server)."""
    if not samples:
        raise ParameterError("there are no samples to read answers from", param="result")
    distinct: dict[tuple[int, ...], list[Any]] = defaultdict(list)
    for s in samples:
        distinct[tuple(s.tokens)].append(s)
    outcomes = []
    for tokens, group in distinct.items():
        lp = group[0].sampling_logprob
        prob = None if lp is None or math.isnan(lp) else math.exp(lp)
        first = group[0]
        end = first.token_texts[-1] if first.finish_reason == "eos" and first.token_texts else ""
        outcomes.append(Outcome(first.text, tokens, len(group), prob, len(tokens), end))
    return Outcomes(
        prompt, "samples", outcomes, n=len(samples), max_new_tokens=max_new_tokens, vocab_size=vocab_size,
        sample_texts=[s.text for s in samples],
        sample_logprobs=[None if math.isnan(s.sampling_logprob) else s.sampling_logprob for s in samples],
        sample_lengths=[len(s.tokens) for s in samples],
    )  # fmt: skip


def from_enumeration(enumeration: Any, vocab_size: int | None = None) -> Outcomes:
    """The outcomes of an `Enumeration`: every completion found with its exact probability, and
    the unexplored mass."""
    outcomes = [Outcome(c.text, tuple(c.tokens), 0, c.prob, len(c.tokens), _end_text(c.text) if c.finish_reason == "eos" else "")
                for c in enumeration.completions]
    max_new = (enumeration.params or {}).get("max_new_tokens")
    return Outcomes(enumeration.prompt, "enumeration", outcomes, unexplored=enumeration.unexplored_mass,
                    max_new_tokens=max_new, vocab_size=vocab_size)  # fmt: skip


_SPECIAL_TOKEN = re.compile(r"<[^<>\s]{1,40}>$")


def _end_text(text: str) -> str:
    """The end-of-sequence token's text at the end of an enumerated completion. An enumeration keeps
    token ids, not each token's text: tokenizers write their end-of-sequence token as a tag
    ("<|im_end|>", "</s>", "<eos>", "<|endoftext|>"), so a trailing tag is taken for it."""
    found = _SPECIAL_TOKEN.search(text)
    return found.group(0) if found else ""


def outcomes_of(result: Any, prompt_index: int = 0) -> Outcomes:
    """The outcomes of a `SampleRun` (one of its prompts; it must hold its samples) or an `Enumeration`."""
    kind = getattr(result, "kind", None)
    if kind == "enumerate":
        return from_enumeration(result)
    if kind == "sample":
        if not 0 <= prompt_index < len(result.analyses):
            raise ParameterError(f"prompt_index must be in [0, {len(result.analyses) - 1}], got {prompt_index!r}", param="prompt_index")
        samples = [s for s in result.samples if s.prompt_index == prompt_index]
        return from_samples(result.analyses[prompt_index].prompt, samples, (result.params or {}).get("max_new_tokens"))
    raise ParameterError(f"answers and meanings are read from a sample run or an enumeration, not from {type(result).__name__}", param="result")
