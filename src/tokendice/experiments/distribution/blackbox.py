"""Sampling on a black-box engine (an OpenAI-compatible server): completions as stored samples.

The server samples; tokendice stores what it reports, each reported logprob in the
column of the distribution it comes from, and checks every completion against its
reported logprobs (`check_consistency`). The check's tally is stored with every
batch of samples, in the same transaction, so a killed run keeps it whole.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

from tokendice.engines.blackbox import BlackBoxCompletion, BlackBoxEngine, check_blackbox_request, check_consistency, finish_reason, text_token_id
from tokendice.params import SamplingParams
from tokendice.store import SampleRecord

SAMPLE_TOP_LOGPROBS = 5
"""Top logprobs asked for each sampled token: enough for the consistency check."""


MAX_EXAMPLES = 5


def completion_record(c: BlackBoxCompletion, prompt_index: int, distribution: str) -> SampleRecord:
    """A completion as a stored sample (see `sample_record`)."""
    return sample_record(c.sample_id, prompt_index, c.tokens, c.token_ids, c.logprobs, c.text, c.finish_reason, distribution)


def sample_record(
    sample_id: int, prompt_index: int, tokens: Sequence[str], token_ids: Sequence[int] | None,
    logprobs: Sequence[float | None], text: str, reported_finish: str | None, distribution: str,
) -> SampleRecord:
    """A stored sample: each reported logprob goes in the column of its distribution (model if
    raw, sampling if processed, otherwise neither: null); ids the server did not report are
    `text_token_id`s."""
    ids = list(token_ids) if token_ids is not None and len(token_ids) == len(tokens) else [text_token_id(t) for t in tokens]
    reported = [float(v) if v is not None else math.nan for v in list(logprobs)[: len(tokens)]]
    reported += [math.nan] * (len(tokens) - len(reported))
    nan = [math.nan] * len(tokens)
    return SampleRecord(
        sample_id=sample_id, tokens=[int(t) for t in ids], token_texts=list(tokens), text=text,
        model_logprobs=reported if distribution == "raw" else nan,
        sampling_logprobs=reported if distribution == "processed" else nan,
        finish_reason=finish_reason(reported_finish), prompt_index=prompt_index,
    )  # fmt: skip


def request_info(engine: Any) -> dict[str, Any]:
    return {
        "endpoint": getattr(engine, "endpoint", None),
        "seed_rule": "sample i of seed s sends request_seed(s, i): 31 bits of tokendice's per-sample stream hash",
    }


def blackbox_manifest(engine: BlackBoxEngine, spec: Any) -> dict[str, Any]:
    """Manifest entries of a black-box sample run. Checks the spec, and asks the server
    (GET /models) which software it is, since the fields sent depend on it."""
    check_blackbox_request(engine, spec.rng, spec.chat, spec.method)
    engine.verify()  # type: ignore[attr-defined]
    fields = engine.sampler_fields(spec.params)  # type: ignore[attr-defined]
    return {"request": {"sampler_fields": fields, "top_logprobs": SAMPLE_TOP_LOGPROBS, **request_info(engine)}}


class BlackBoxSampling:
    """Samples from a server as stored records, with the consistency check on each."""

    def __init__(self, engine: BlackBoxEngine, params: SamplingParams, seed: int) -> None:
        self.engine, self.params, self.seed = engine, params, seed
        self.distribution: str = engine.logprobs_distribution  # type: ignore[attr-defined]
        self.checked = 0
        self.contradicting: list[str] = []  # "prompt_index:sample_id"
        self.examples: list[str] = []

    def batches(self, prompt: str, prompt_index: int, sample_ids: Sequence[int], batch_size: int) -> Iterator[list[SampleRecord]]:
        """Records in batches of at most min(batch_size, concurrency), as completions arrive.
        When the server fails, the completions already received are yielded first."""
        size = max(1, min(batch_size, getattr(self.engine, "concurrency", batch_size)))
        batch: list[SampleRecord] = []
        stream = self.engine.generate_many(prompt, self.params, self.seed, list(sample_ids), top_logprobs=SAMPLE_TOP_LOGPROBS)
        try:
            for c in stream:
                self._check(c, prompt, prompt_index)
                batch.append(completion_record(c, prompt_index, self.distribution))
                if len(batch) >= size:
                    full, batch = batch, []
                    yield full
        except GeneratorExit:
            raise
        except BaseException:
            if batch:  # keep what arrived before the failure
                yield batch
            raise
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if batch:
            yield batch

    def _check(self, c: BlackBoxCompletion, prompt: str, prompt_index: int) -> None:
        self.checked += 1
        warnings = check_consistency(c, self.params, self.distribution, prompt)
        if warnings:
            self.contradicting.append(f"{prompt_index}:{c.sample_id}")
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(f"sample {c.sample_id}: {warnings[0]}")

    def report(self, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the server reported and what the check found, merged with an earlier report (a resume)."""
        before = (previous or {}).get("consistency") or {}
        contradicting = sorted(set(before.get("contradicting", [])) | set(self.contradicting))
        return {
            "server": self.engine.describe(),
            "consistency": {
                "checked": int(before.get("checked", 0)) + self.checked,
                "contradicting": contradicting,
                "examples": (list(before.get("examples", [])) + self.examples)[:MAX_EXAMPLES],
                "distribution": self.distribution,
            },
        }


def consistency_warning(report: dict[str, Any] | None) -> str | None:
    """One line for stderr when sampled completions contradict the reported logprobs."""
    found = (report or {}).get("consistency") or {}
    bad = found.get("contradicting") or []
    if not bad:
        return None
    example = (found.get("examples") or [""])[0]
    return (f"{len(bad)} of {found.get('checked', '?')} samples contradict the reported logprobs under the requested "
            f"settings (the server processed them in a way not requested); e.g. {example}")  # fmt: skip
