"""The OpenAI-compatible black-box engine: vLLM, SGLang, llama.cpp's servers, OpenAI.

The server samples; tokendice sends every sampler parameter explicitly (nothing
is left to server defaults: llama-cpp-python's server applies repeat_penalty 1.1
and min_p 0.05 unless told otherwise), records what comes back, and labels which
distribution the reported logprobs are from. The API key is read from an
environment variable for each request and never kept on the object.
"""

from __future__ import annotations

import os
import random
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence
from urllib.parse import urlsplit

from tokendice.engines.blackbox import LOGPROBS_DISTRIBUTION, OWNED_BY, SERVERS, BlackBoxCompletion, completed_first, request_seed
from tokendice.engines.spec import OPENAI
from tokendice.errors import EngineUnavailableError, ParameterError, ServerError
from tokendice.params import SamplingParams

if TYPE_CHECKING:
    import httpx

ENDPOINTS = ("completions", "chat")
MAX_TOP_LOGPROBS = 20


class OpenAIEngine:
    """Completions from an OpenAI-compatible server, with reported logprobs.

    `base_url` is the API root (".../v1"; a bare "http://host:port" gets "/v1").
    `model` None: the one model the server serves (asked at once; an error if it serves several).
    `server` names the software ("vllm", "llama-cpp-python", ...) when detection
    from /v1/models is not wanted; `sampler_extensions` sends top_k, min_p and the
    repetition penalties, which OpenAI itself rejects (default: off for "openai").
    """

    name = "openai"
    kind = OPENAI
    context_length: int | None = None  # the server checks its own

    def __init__(
        self,
        model: str | None = None,
        base_url: str = "",
        api_key_env: str = "OPENAI_API_KEY",
        endpoint: str = "completions",
        timeout: float = 60,
        max_retries: int = 4,
        concurrency: int = 8,
        server: str | None = None,
        sampler_extensions: bool | None = None,
        require_logprobs: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if endpoint not in ENDPOINTS:
            raise ParameterError(f"endpoint must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}")
        if server is not None and server not in SERVERS:
            raise ParameterError(f"server must be one of {', '.join(SERVERS)}, got {server!r}")
        if not base_url:
            raise ParameterError("the openai engine needs base_url (e.g. http://127.0.0.1:8000/v1)", param="base_url")
        if not (timeout > 0 and max_retries >= 0 and concurrency >= 1):
            raise ParameterError("timeout must be > 0, max_retries >= 0 and concurrency >= 1")
        try:
            import httpx
        except ImportError as exc:
            raise EngineUnavailableError("the openai engine needs httpx: pip install 'tokendice[openai]'") from exc
        self._httpx = httpx
        self.base_url = _normalise_url(base_url)
        self.model_id = model or ""
        self.api_key_env = api_key_env
        self.endpoint = endpoint
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.concurrency = int(concurrency)
        self.require_logprobs = require_logprobs
        self.server = server or ("openai" if urlsplit(self.base_url).hostname == "api.openai.com" else None)
        self._extensions = sampler_extensions
        self._client = httpx.Client(timeout=self.timeout, transport=transport)
        weakref.finalize(self, self._client.close)  # an engine dropped without close() frees its connections
        self._lock = threading.Lock()
        self._verified = False
        self._served: dict[str, Any] | None = None
        self._fingerprints: set[str] = set()
        self._reported_models: set[str] = set()
        self._sleep: Callable[[float], None] = time.sleep
        self._jitter = random.Random()
        self.backoff_base = 0.5
        self.backoff_cap = 30.0
        if not model:
            self.verify()  # picks the one model the server serves

    def __repr__(self) -> str:
        return f"OpenAIEngine(base_url={self.base_url!r}, model={self.model_id!r}, endpoint={self.endpoint!r})"

    # -- public API ------------------------------------------------------------------

    def generate(
        self, prompt: str, params: SamplingParams, seed: int | None, sample_id: int, top_logprobs: int = 5
    ) -> BlackBoxCompletion:
        """One completion; `seed` is the run seed (sample i sends `request_seed(seed, i)`)."""
        self._check_request(params, top_logprobs)
        self.verify()
        rseed = request_seed(seed, sample_id)
        path = "/chat/completions" if self.endpoint == "chat" else "/completions"
        data = self._request("POST", path, self.request_body(prompt, params, rseed, top_logprobs))
        assert data is not None
        return self._parse(data, sample_id, rseed)

    def generate_many(
        self,
        prompt: str,
        params: SamplingParams,
        seed: int | None,
        sample_ids: Sequence[int],
        top_logprobs: int = 5,
        on_result: Callable[[BlackBoxCompletion], None] | None = None,
    ) -> Iterator[BlackBoxCompletion]:
        """Completions for many sample ids, at most `concurrency` requests in flight,
        yielded as they complete. On a failure, completions already received are
        still yielded before the ServerError is raised."""
        self._check_request(params, top_logprobs)
        self.verify()
        return completed_first(
            lambda sid: self.generate(prompt, params, seed, sid, top_logprobs), sample_ids, self.concurrency, on_result
        )

    def request_body(self, prompt: str, params: SamplingParams, seed: int | None, top_logprobs: int = 5) -> dict[str, Any]:
        """The JSON body sent for one completion (what a manifest records, prompt aside)."""
        body: dict[str, Any] = {"model": self.model_id, "n": 1, "stream": False}
        if self.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
            body.update(logprobs=True, top_logprobs=top_logprobs)
        else:
            body.update(prompt=prompt, logprobs=top_logprobs, echo=False)
        body.update(self.sampler_fields(params))
        if seed is not None:
            body["seed"] = seed
        return body

    def sampler_fields(self, params: SamplingParams) -> dict[str, Any]:
        """Every sampler setting sent to the server, explicitly, including neutral ones."""
        self._check_params(params)
        fields: dict[str, Any] = {
            "max_tokens": params.max_new_tokens,
            "temperature": 0.0 if params.greedy else params.temperature,
            "top_p": params.top_p,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
        }
        if self.sampler_extensions:
            # Names differ per server; each ignores the others' (vLLM with a warning).
            fields.update(
                # "off" is 0 for llama-cpp-python (it rejects -1), -1 for vLLM < 0.8 and SGLang.
                top_k=params.top_k or (0 if self.server == "llama-cpp-python" else -1),
                min_p=params.min_p,
                repetition_penalty=params.repetition_penalty,  # vLLM, SGLang
                repeat_penalty=params.repetition_penalty,  # llama.cpp, llama-cpp-python (default 1.1!)
                # llama.cpp's server penalises the last 64 tokens unless told -1 (the whole
                # context, as transformers and vLLM do); llama-cpp-python always uses 64.
                repeat_last_n=-1,
                typical_p=1.0,
                mirostat_mode=0,
            )
            if not params.stop_at_eos:
                fields["ignore_eos"] = True
        return fields

    @property
    def sampler_extensions(self) -> bool:
        return self._extensions if self._extensions is not None else self.server != "openai"

    @property
    def logprobs_distribution(self) -> str:
        return LOGPROBS_DISTRIBUTION[self.server or "unknown"]["distribution"]

    def verify(self) -> None:
        """Check once that the server is reachable and serves the model (GET /models)."""
        with self._lock:
            if self._verified:
                return
            # A server without /models (404, 405): the first completion will tell.
            listing = self._request("GET", "/models", None, missing_ok=True) or {}
            entries = [e for e in listing.get("data") or [] if isinstance(e, dict)]
            ids = [str(e.get("id")) for e in entries]
            if not self.model_id:
                if len(ids) != 1:
                    served = f"serves several models ({', '.join(ids)}): choose" if ids else "does not list its models (GET /models): name"
                    example = repr(ids[0]) if ids else "'NAME'"
                    raise ParameterError(f"{self.base_url} {served} one, e.g. model={example}", param="model")
                self.model_id = ids[0]
            if entries and self.model_id not in ids:
                raise ServerError(
                    f"model {self.model_id!r} is not served by {self.base_url}; it serves: {', '.join(ids)}"
                )
            entry = next((e for e in entries if e.get("id") == self.model_id), {})
            self._served = {k: entry[k] for k in ("id", "owned_by", "created") if k in entry} or None
            if self.server is None:
                self.server = OWNED_BY.get(str(entry.get("owned_by")), "unknown")
            self._verified = True

    def describe(self) -> dict[str, Any]:
        """What a manifest records. Holds the key's variable name, never the key."""
        server = self.server or "unknown"
        return {
            "engine": self.name,
            "base_url": self.base_url,
            "model": self.model_id,
            "endpoint": self.endpoint,
            "api_key_env": self.api_key_env,
            "server": server,
            "served_model": self._served,
            "reported_models": sorted(self._reported_models),
            "system_fingerprint": sorted(self._fingerprints),
            "logprobs_distribution": dict(LOGPROBS_DISTRIBUTION[server]),
            "sampler_extensions": self.sampler_extensions,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "concurrency": self.concurrency,
        }

    def close(self) -> None:
        self._client.close()

    # -- internals ---------------------------------------------------------------------

    def _check_request(self, params: SamplingParams, top_logprobs: int) -> None:
        self._check_params(params)
        if not (isinstance(top_logprobs, int) and 0 <= top_logprobs <= MAX_TOP_LOGPROBS):
            raise ParameterError(f"top_logprobs must be an integer in [0, {MAX_TOP_LOGPROBS}], got {top_logprobs!r}")
        if self.endpoint == "completions" and self.server == "openai" and top_logprobs > 5:
            raise ParameterError("OpenAI's completions endpoint gives at most 5 top logprobs")

    def _check_params(self, params: SamplingParams) -> None:
        if params.no_repeat_ngram_size > 0:
            raise ParameterError(
                "no_repeat_ngram_size has no equivalent on OpenAI-compatible servers: "
                "set it to 0, or use a white-box engine (hf, llamacpp)"
            )
        if not self.sampler_extensions:
            neutral = {"top_k": params.top_k == 0, "min_p": params.min_p == 0,
                       "repetition_penalty": params.repetition_penalty == 1.0, "stop_at_eos": params.stop_at_eos}
            unsupported = [name for name, ok in neutral.items() if not ok]
            if unsupported:
                raise ParameterError(f"{', '.join(unsupported)} cannot be sent to this server (OpenAI API)")

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        """One HTTP request with retries on 429, 5xx, timeouts and connection errors."""
        httpx = self._httpx
        url = self.base_url + path
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                response = self._client.request(method, url, json=body, headers=self._headers())
            except httpx.TimeoutException:
                problem = f"no answer from {url} within {self.timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"cannot reach the server at {self.base_url} ({_reason(exc)}); is it running?"
            else:
                if response.status_code < 400:
                    return _json(response, url)
                if missing_ok and response.status_code in (404, 405):
                    return None
                if response.status_code != 429 and response.status_code < 500:
                    raise self._client_error(response, url)
                problem = f"{url} answered {response.status_code}: {_error_message(response)}"
                retry_after = _retry_after(response)
            if attempt == self.max_retries:
                tries = f" (after {self.max_retries + 1} attempts)" if self.max_retries else ""
                raise ServerError(problem + tries)
            delay = min(self.backoff_cap, self.backoff_base * 2**attempt)
            delay *= 1.0 + 0.5 * self._jitter.random()  # jitter: clients that failed together retry apart
            self._sleep(max(delay, min(retry_after or 0.0, self.backoff_cap)))
        raise AssertionError("unreachable")

    def _client_error(self, response: httpx.Response, url: str) -> ServerError:
        status, message = response.status_code, _error_message(response)
        if status in (401, 403):
            return ServerError(f"{url} refused the request ({status}: {message}); check ${self.api_key_env}")
        if "model" in message.lower() and status in (400, 404, 422):
            return ServerError(f"{url}: model {self.model_id!r} not available ({status}: {message})")
        if status == 404:
            return ServerError(f"{url} answered 404: {message} (the base URL usually ends in /v1)")
        return ServerError(f"{url} answered {status}: {message}")

    def _parse(self, data: dict[str, Any], sample_id: int, seed: int | None) -> BlackBoxCompletion:
        choices = data.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            raise ServerError(f"{self.base_url} returned no choices: {str(data)[:200]}")
        choice = choices[0]
        out = BlackBoxCompletion(sample_id=sample_id, seed=seed, finish_reason=choice.get("finish_reason"),
                                 system_fingerprint=data.get("system_fingerprint"), model=data.get("model"))
        lp = choice.get("logprobs")
        if self.endpoint == "chat":
            out.text = (choice.get("message") or {}).get("content") or ""
            content = lp.get("content") if isinstance(lp, dict) else None
            if content is not None:
                ids = [e.get("id") for e in content]
                out.tokens = [str(e.get("token", "")) for e in content]
                out.logprobs = [_float(e.get("logprob")) for e in content]
                out.top_logprobs = [_ranked((t.get("token", ""), t.get("logprob")) for t in e.get("top_logprobs") or [])
                                    for e in content]
                out.token_ids = [int(i) for i in ids] if ids and all(isinstance(i, int) for i in ids) else None
        elif isinstance(lp, dict) and lp.get("tokens") is not None:
            out.text = choice.get("text") or ""
            out.tokens = [str(t) for t in lp["tokens"]]
            out.logprobs = [_float(v) for v in lp.get("token_logprobs") or [None] * len(out.tokens)]
            out.top_logprobs = [_ranked((d or {}).items()) for d in lp.get("top_logprobs") or []]
        else:
            out.text = choice.get("text") or ""
        if out.token_ids is None and isinstance(choice.get("token_ids"), list):  # vLLM return_token_ids
            out.token_ids = [int(i) for i in choice["token_ids"]]
        if self.require_logprobs and (lp is None or (out.text and not out.tokens)):
            raise ServerError(
                f"{self.base_url} returned no logprobs for model {self.model_id!r}; tokendice needs them "
                "(llama-cpp-python: start the server with --logits_all true)"
            )
        with self._lock:
            if out.system_fingerprint:
                self._fingerprints.add(str(out.system_fingerprint))
            if out.model:
                self._reported_models.add(str(out.model))
        return out


def _normalise_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ParameterError(f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}")
    base = url.strip().rstrip("/")
    return base + "/v1" if parts.path in ("", "/") else base


def _json(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise ServerError(f"{url} answered {response.status_code} with a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise ServerError(f"{url} answered with unexpected JSON: {str(data)[:200]}")
    return data


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return str(err)[:300]
    return str(data)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    return str(exc) or type(exc).__name__


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _ranked(pairs: Any) -> list[tuple[str, float]]:
    return sorted(((str(t), float(v)) for t, v in pairs if v is not None), key=lambda p: -p[1])
