"""Black-box engines: a server samples on its side and reports tokens with a few logprobs.

tokendice cannot run its own sampler chain on a black-box engine, so it records
what the server returns (`BlackBoxCompletion`) and checks it: `check_consistency`
flags steps where the chosen token contradicts the reported logprobs under the
settings that were requested — the sign of processing the server applied on its
own (DESIGN.md: llama-cpp-python's default repeat_penalty 1.1 under temperature 0).
"""

from __future__ import annotations

import math
import zlib
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence, TypeVar, runtime_checkable

from tokendice.errors import EngineError, ParameterError
from tokendice.hashing import stream_hash
from tokendice.params import SamplingParams

LOGPROB_DISTRIBUTIONS = ("raw", "temperature-scaled", "processed", "unknown")
"""Which distribution a server's logprobs come from: softmax of the raw logits,
after temperature only, after the whole sampler chain, or not known."""

TOLERANCE = 1e-3
"""Logprob differences below this are ties (servers round and use float16 kernels)."""

SERVERS = ("llama-cpp-python", "llama.cpp", "vllm", "sglang", "openai", "unknown")
# `owned_by` of /v1/models entries, as each server fills it in.
OWNED_BY = {
    "me": "llama-cpp-python",
    "llamacpp": "llama.cpp",
    "vllm": "vllm",
    "sglang": "sglang",
    "openai": "openai",
    "system": "openai",
    "openai-internal": "openai",
}

# Which distribution each server's logprobs come from, and where that is stated.
LOGPROBS_DISTRIBUTION: dict[str, dict[str, str]] = {
    # llama_cpp/llama.py `_create_completion`: logprobs are `Llama.logits_to_logprobs`
    # of `self._scores` (the raw logits kept by eval with logits_all), computed apart
    # from the sampler; DESIGN.md observed raw logprobs under repeat_penalty 1.1.
    "llama-cpp-python": {"distribution": "raw", "source": "llama_cpp/llama.py: logits_to_logprobs(self._scores)"},
    # tools/server/README.md: `post_sampling_probs` "returns the probabilities of top
    # n_probs tokens after applying sampling chain"; tokendice never sets it.
    "llama.cpp": {"distribution": "raw", "source": "llama.cpp tools/server/README.md (post_sampling_probs unset)"},
    # docs.vllm.ai configuration/engine_args, --logprobs-mode: "Raw means the values
    # before applying any logit processors ... Default: raw_logprobs"; a server run
    # with processed_logprobs reports the sampling distribution. Older V0 releases
    # reported values after the sampling parameters (vllm-project/vllm#9453).
    "vllm": {"distribution": "raw", "source": "vLLM --logprobs-mode (default raw_logprobs; processed_* if set)"},
    # sgl-project/sglang#8375: logprobs are temperature-scaled unless the server
    # runs with SGLANG_RETURN_ORIGINAL_LOGPROB=1.
    "sglang": {"distribution": "temperature-scaled", "source": "sglang#8375 (raw with SGLANG_RETURN_ORIGINAL_LOGPROB)"},
    "openai": {"distribution": "unknown", "source": "not documented by OpenAI"},
    "unknown": {"distribution": "unknown", "source": "server not recognised"},
}


def request_seed(seed: int | None, sample_id: int) -> int | None:
    """The seed sent for sample `sample_id` of a run seeded with `seed`: 31 bits,
    which every server accepts, derived like tokendice's per-sample streams."""
    if seed is None:
        return None
    return int(stream_hash(seed, sample_id)[0]) & 0x7FFFFFFF


@dataclass
class BlackBoxCompletion:
    """One completion as a server reported it.

    `logprobs[i]` is the reported logprob of the chosen token i (None where the
    server gave none); `top_logprobs[i]` the reported candidates at step i, best
    first, as (token text, logprob). `token_ids` is filled only when the server
    reports ids. `seed` is the seed sent with the request (None: none sent).
    """

    sample_id: int
    seed: int | None
    text: str = ""
    tokens: list[str] = field(default_factory=list)
    token_ids: list[int] | None = None
    logprobs: list[float | None] = field(default_factory=list)
    top_logprobs: list[list[tuple[str, float]]] = field(default_factory=list)
    finish_reason: str | None = None
    system_fingerprint: str | None = None
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["top_logprobs"] = [[list(pair) for pair in step] for step in self.top_logprobs]
        return data


@runtime_checkable
class BlackBoxEngine(Protocol):
    """A source of sampled completions with reported logprobs (an HTTP server)."""

    name: str
    model_id: str
    kind: Any  # EngineKind, white_box False

    def generate(
        self, prompt: str, params: SamplingParams, seed: int | None, sample_id: int, top_logprobs: int = 5
    ) -> BlackBoxCompletion: ...

    def generate_many(
        self,
        prompt: str,
        params: SamplingParams,
        seed: int | None,
        sample_ids: Sequence[int],
        top_logprobs: int = 5,
        on_result: Callable[[BlackBoxCompletion], None] | None = None,
    ) -> Iterator[BlackBoxCompletion]: ...

    def describe(self) -> dict[str, Any]: ...


T = TypeVar("T")


def completed_first(
    fn: Callable[[int], T], ids: Iterable[int], concurrency: int, on_result: Callable[[T], None] | None = None
) -> Iterator[T]:
    """`fn(i)` for every id, at most `concurrency` calls in flight (threads), yielded
    as they complete. After a failure no new call starts; the calls in flight are
    still yielded if they succeed (so a caller can store them), then the first
    failure is raised."""
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tokendice-blackbox")
    todo = iter(ids)
    pending: set[Future[T]] = set()
    failure: BaseException | None = None

    def submit() -> None:
        for i in todo:
            pending.add(pool.submit(fn, i))
            return

    try:
        for _ in range(concurrency):
            submit()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                pending.discard(fut)
                if fut.exception() is not None:
                    failure = failure or fut.exception()
                    continue
                if on_result is not None:
                    on_result(fut.result())
                yield fut.result()
                if failure is None:
                    submit()
        if failure is not None:
            raise failure
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def check_consistency(
    completion: BlackBoxCompletion, params: SamplingParams, distribution: str = "raw", prompt: str = ""
) -> list[str]:
    """Warnings for steps whose chosen token the reported logprobs contradict.

    Checks only what the reported top candidates can prove: under greedy
    decoding the chosen token must be the most probable one (unless a requested
    repetition penalty can explain the difference: the better token occurred
    before); when sampling, it must survive the requested top-k and min-p.
    `distribution` says which distribution the logprobs are from (see
    LOGPROB_DISTRIBUTIONS); "unknown" is checked as "raw".
    """
    warnings: list[str] = []
    seen = prompt
    for step, (piece, chosen_lp, top) in enumerate(_steps(completion)):
        if chosen_lp is None or not top:
            warnings.append(f"step {step}: the server reported no logprobs for {piece!r}")
            seen += piece
            continue
        better = [(tok, lp) for tok, lp in top if lp > chosen_lp + TOLERANCE and tok != piece]
        if params.greedy:
            message = _greedy_contradiction(step, piece, chosen_lp, better, params, distribution, seen)
        else:
            message = _sampling_contradiction(step, piece, chosen_lp, top, better, params, distribution)
        if message:
            warnings.append(message)
        seen += piece
    return warnings


def _steps(completion: BlackBoxCompletion) -> Iterator[tuple[str, float | None, list[tuple[str, float]]]]:
    for i, piece in enumerate(completion.tokens):
        lp = completion.logprobs[i] if i < len(completion.logprobs) else None
        top = completion.top_logprobs[i] if i < len(completion.top_logprobs) else []
        yield piece, lp, top


def _greedy_contradiction(
    step: int,
    piece: str,
    chosen_lp: float,
    better: list[tuple[str, float]],
    params: SamplingParams,
    distribution: str,
    seen: str,
) -> str | None:
    if not better:
        return None
    best_tok, best_lp = max(better, key=lambda pair: pair[1])
    if distribution != "processed" and params.repetition_penalty != 1.0:
        # A requested penalty lowers tokens that occurred before; if every better
        # candidate did occur, the choice is explained. Text matching is approximate.
        if all(tok and tok in seen for tok, _ in better):
            return None
    return (
        f"step {step}: greedy decoding chose {piece!r} (logprob {chosen_lp:.3f}) over {best_tok!r} "
        f"(logprob {best_lp:.3f}): the server applied processing that was not requested "
        "(e.g. a default repeat penalty) or its logprobs are not the distribution it decoded from"
    )


def _sampling_contradiction(
    step: int,
    piece: str,
    chosen_lp: float,
    top: list[tuple[str, float]],
    better: list[tuple[str, float]],
    params: SamplingParams,
    distribution: str,
) -> str | None:
    penalised = params.repetition_penalty != 1.0 and distribution != "processed"
    if penalised:
        return None  # a penalty can move any token past another: nothing provable from top-n
    if params.top_k > 0 and len(better) >= params.top_k:
        return (
            f"step {step}: sampled {piece!r} (logprob {chosen_lp:.3f}) although {len(better)} reported "
            f"tokens are more probable and top_k={params.top_k}"
        )
    if params.min_p > 0 and distribution != "processed":
        best_lp = max(lp for _, lp in top)
        # min-p compares p(token) / p(best); temperature T raises that ratio to 1/T.
        # Servers differ on whether min-p acts before or after temperature: warn
        # only if the token fails under both.
        ratio = chosen_lp - best_lp
        scaled = ratio / params.temperature if distribution == "raw" else ratio
        floor = math.log(params.min_p)
        if ratio < floor - TOLERANCE and scaled < floor - TOLERANCE:
            return (
                f"step {step}: sampled {piece!r} with probability {math.exp(ratio):.4f} of the best "
                f"token's, below min_p={params.min_p}"
            )
    return None


def check_blackbox_request(engine: Any, rng_mode: str, chat: bool, method: str = "independent") -> None:
    """What a server can run: per-sample seeds, independent samples, chat only through its chat endpoint."""
    if rng_mode != "per-sample":
        raise ParameterError("rng='torch' draws from torch's generator, which a server does not use: use rng='per-sample'", param="rng")
    if method != "independent":
        raise EngineError(
            "the branching sampler splits samples by next-token distributions, which needs logits; "
            f"the {engine.name} engine only returns samples: use method='independent'"
        )
    if chat != (getattr(engine, "endpoint", "completions") == "chat"):
        raise ParameterError("on the openai engine chat=True means the server's chat endpoint (endpoint='chat'), and only it", param="chat")


def text_token_id(text: str) -> int:
    """A stand-in id for a token the server named only by its text: -1 - crc32(text),
    negative so it never passes for a real id; the same text always gets the same id."""
    return -1 - zlib.crc32(text.encode("utf-8"))


def finish_reason(reported: str | None) -> str:
    """tokendice's names: a server's "stop" (no stop strings are sent) is the end-of-sequence token."""
    return {"stop": "eos", "length": "length", None: "unknown"}.get(reported, str(reported))
