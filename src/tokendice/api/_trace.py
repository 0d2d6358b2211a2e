"""`trace`: one generation, every step explained."""

from __future__ import annotations

from typing import Any, Union

from tokendice.api._common import EngineArg, check_context, engine_spec, load, preflight, sampler, store_context
from tokendice.api._registry import loads
from tokendice.errors import StoreError
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.experiments.trace.blackbox import BlackBoxTrace, run_blackbox_trace, store_blackbox_trace
from tokendice.experiments.trace.trace import Trace, run_trace, store_trace
from tokendice.inputs import check_prompt
from tokendice.params import RandomSpec, SamplingParams, require_bool, require_int
from tokendice.store import Store
from tokendice.store.records import RunRecord


def trace(
    prompt: str,
    *,
    engine: EngineArg = None,
    model: str | None = None,
    params: SamplingParams | None = None,
    seed: int = 0,
    rng: str = "per-sample",
    top: int = 5,
    chat: bool = False,
    save: bool = True,
    db: str | None = None,
    **sampling: Any,
) -> Union[Trace, BlackBoxTrace]:
    """Generate one completion and explain every step: a `Trace`.

    At each step: the chosen token's probability under the model (softmax of the raw
    logits) and under the sampling distribution (after the whole sampler chain), both
    entropies, the `top` most likely alternatives, and the probability after each stage
    of the chain (which stage removed a token). `sampling` takes the SamplingParams
    keywords (temperature, top_k, top_p, min_p, repetition_penalty, no_repeat_ngram_size,
    max_new_tokens, do_sample, order, stop_at_eos). On a black-box engine (an
    OpenAI-compatible server) the result is a `BlackBoxTrace` of what the server reported.
    With `save`, the trace is stored as a run (`result.run_id`; `load_run` reads it back).
    """
    chosen = sampler(trace, params, sampling)
    RandomSpec(seed, rng)
    check_prompt(prompt)
    require_int("top", top, 0, 1000)
    require_bool("chat", chat)
    spec = engine_spec(engine, model)
    with store_context(save, db) as store:
        preflight(spec, [prompt], chat, chosen.max_new_tokens)
        loaded = load(spec)
        if not loaded.kind.white_box:
            black = run_blackbox_trace(loaded, prompt, chosen, seed=seed, rng_mode=rng, top=top, chat=chat)  # type: ignore[arg-type]
            if store is not None:
                store_blackbox_trace(store, loaded, black)  # type: ignore[arg-type]
            return black
        check_context(loaded, [encode_prompt(loaded.tokenizer, prompt, chat)], chosen.max_new_tokens)
        result = run_trace(loaded, prompt, chosen, seed=seed, rng_mode=rng, top=top, chat=chat)
        if store is not None:
            store_trace(store, loaded, result, chat)
        return result


@loads("trace")
def _load_trace(store: Store, record: RunRecord) -> Union[Trace, BlackBoxTrace]:
    data = store.get_result(record.id, "trace")
    result: Union[Trace, BlackBoxTrace]
    if data is not None:
        result = Trace.from_dict(data)
    else:
        black = store.get_result(record.id, "blackbox_trace")
        if black is None:
            raise StoreError(f"run {record.id} holds no trace (status {record.status})")
        result = BlackBoxTrace.from_dict(black)
    result.run_id = record.id
    return result
