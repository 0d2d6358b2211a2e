"""The transformers engine: any causal LM that `AutoModelForCausalLM` loads.

Prompts of different lengths are left-padded; the attention mask and explicit
position ids keep every row's logits those of the row alone (up to kernel
batch-variance, which is what `tokendice audit` measures). States are never
mutated: `select` builds a new cache from indexed tensors.

The engine owns its thread count (engines/threads.py): it sets torch's before every
forward pass, so two engines with different counts in one process each keep theirs.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Sequence

import torch

from tokendice.engines.base import EngineState, as_rows, as_token_matrix, left_pad
from tokendice.engines.catalog import why_not_here
from tokendice.engines.embedded import DEFAULT_MODEL, ensure_converted, is_embedded
from tokendice.engines.quiet import quiet_third_party
from tokendice.engines.spec import DTYPES, HF
from tokendice.engines.threads import default_threads
from tokendice.errors import ModelNotFoundError, ParameterError

TORCH_DTYPES = {name: getattr(torch, name) for name in DTYPES}
default_threads()  # torch's own count, remembered before any engine sets another


class HFTokenizer:
    """Adapter from a transformers tokenizer to tokendice's Tokenizer protocol."""

    def __init__(self, tokenizer: Any, eos_token_ids: Sequence[int]) -> None:
        self._tok = tokenizer
        self.vocab_size = len(tokenizer)
        self.eos_token_ids = tuple(dict.fromkeys(int(i) for i in eos_token_ids))

    def encode(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=True)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def apply_chat_template(self, text: str) -> list[int]:
        if not getattr(self._tok, "chat_template", None):
            raise ParameterError("chat=True: this model's tokenizer has no chat template", param="chat")
        out = self._tok.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
        )
        if isinstance(out, dict) or hasattr(out, "keys"):
            out = out["input_ids"]
        return [int(t) for t in out]


class HFEngine:
    """White-box engine over a transformers causal LM with a KV cache."""

    name = "hf"
    kind = HF

    def __init__(
        self,
        model: str | None = None,
        dtype: str = "float32",
        threads: int | None = None,
        attention: str = "sdpa",
        kv_cache: bool = True,
        trust_remote_code: bool = False,
    ) -> None:
        for option, value in (("dtype", dtype), ("threads", threads), ("attention", attention), ("kv_cache", kv_cache)):
            HF.option(option).check(value)
        self.threads = threads or default_threads()
        self.threads_given = threads is not None
        self.model_id = model or DEFAULT_MODEL
        self.dtype = dtype
        self.attention = attention
        self.kv_cache = kv_cache
        path = _resolve(model)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            with quiet_third_party():
                self.model = AutoModelForCausalLM.from_pretrained(
                    path, dtype=TORCH_DTYPES[dtype], attn_implementation=attention,
                    trust_remote_code=trust_remote_code, local_files_only=True,
                )
                hf_tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"cannot load model {self.model_id!r}: {_first_line(exc)}") from exc
        self.model.eval()
        eos = self.model.generation_config.eos_token_id
        eos_ids = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
        if hf_tokenizer.eos_token_id is not None:
            eos_ids.append(hf_tokenizer.eos_token_id)
        self.tokenizer = HFTokenizer(hf_tokenizer, eos_ids)
        self.pad_id = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else self.tokenizer.eos_token_ids[0]
        self.vocab_size = int(self.model.config.vocab_size)
        self.context_length: int | None = getattr(self.model.config, "max_position_embeddings", None)
        # transformers >= 5.2x calls the KV cache `cache`; earlier versions `past_key_values`.
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"

    # -- Engine protocol -------------------------------------------------------------

    def prefill(self, prompts: Sequence[Sequence[int]]) -> EngineState:
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ParameterError("every prompt needs at least one token")
        ids, mask = left_pad(prompts, self.pad_id)
        lengths = mask.sum(dim=1)
        state = _HFPayload(cache=None, mask=torch.zeros((len(prompts), 0), dtype=torch.long), ids=ids[:, :0], logits=None)
        return self._forward(EngineState(len(prompts), lengths - lengths, state), ids, mask, lengths)

    def logits(self, state: EngineState) -> torch.Tensor:
        return state.payload.logits

    def extend(self, state: EngineState, tokens: torch.Tensor) -> EngineState:
        tokens = as_token_matrix(tokens, state.batch_size)
        new_mask = torch.ones_like(tokens)
        return self._forward(state, tokens, new_mask, state.lengths + tokens.shape[1])

    def select(self, state: EngineState, rows: torch.Tensor) -> EngineState:
        rows = as_rows(rows)
        p = state.payload
        cache = None
        if p.cache is not None:
            cache = copy.copy(p.cache)
            cache.layers = [copy.copy(layer) for layer in p.cache.layers]
            cache.batch_select_indices(rows)
        payload = _HFPayload(cache=cache, mask=p.mask[rows], ids=p.ids[rows], logits=p.logits[rows])
        return EngineState(batch_size=len(rows), lengths=state.lengths[rows], payload=payload)

    def rewind(self, state: EngineState, tokens: int) -> EngineState:
        """The state without its last `tokens` tokens (every row's), its KV cache cut back (views,
        no recompute); its logits are unknown until it is extended."""
        p = state.payload
        if tokens <= 0:
            return state
        if tokens >= p.mask.shape[1]:
            raise ValueError(f"cannot rewind {tokens} tokens of a state holding {p.mask.shape[1]}")
        cache = None
        if p.cache is not None:
            cache = copy.copy(p.cache)
            cache.layers = []
            for layer in p.cache.layers:
                if not getattr(layer, "is_croppable", True):
                    raise ValueError("this model's cache cannot be cut back (a sliding window)")
                cut = copy.copy(layer)
                cut.keys, cut.values = layer.keys[..., :-tokens, :], layer.values[..., :-tokens, :]
                cache.layers.append(cut)
        payload = _HFPayload(cache=cache, mask=p.mask[:, :-tokens], ids=p.ids[:, :-tokens], logits=None)
        return EngineState(state.batch_size, state.lengths - tokens, payload)

    def merge(self, states: Sequence[EngineState]) -> EngineState:
        """Stack the rows of several states into one, left-padding shorter sequences."""
        if len(states) == 1:
            return states[0]
        width = max(s.payload.mask.shape[1] for s in states)
        pads = [width - s.payload.mask.shape[1] for s in states]
        pad_seq = lambda t, n: torch.nn.functional.pad(t, (0, 0, n, 0))  # noqa: E731  [b, heads, seq, dim]
        cache = None
        if self.kv_cache:
            cache = copy.copy(states[0].payload.cache)
            cache.layers = []
            for i, layer in enumerate(states[0].payload.cache.layers):
                merged = copy.copy(layer)
                merged.keys = torch.cat([pad_seq(s.payload.cache.layers[i].keys, n) for s, n in zip(states, pads)])
                merged.values = torch.cat([pad_seq(s.payload.cache.layers[i].values, n) for s, n in zip(states, pads)])
                cache.layers.append(merged)
        mask = torch.cat([torch.nn.functional.pad(s.payload.mask, (n, 0)) for s, n in zip(states, pads)])
        ids = torch.cat([torch.nn.functional.pad(s.payload.ids, (n, 0), value=self.pad_id) for s, n in zip(states, pads)])
        logits = torch.cat([s.payload.logits for s in states])
        lengths = torch.cat([s.lengths for s in states])
        return EngineState(len(lengths), lengths, _HFPayload(cache=cache, mask=mask, ids=ids, logits=logits))

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "model": self.model_id,
            "dtype": self.dtype,
            "attention": self.attention,
            "kv_cache": self.kv_cache,
            "threads": self.threads,
            "threads_chosen": "given" if self.threads_given else "torch's default (the physical cores)",
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "vocab_size": self.vocab_size,
            "context_length": self.context_length,
        }

    # -- internals ---------------------------------------------------------------------

    @torch.inference_mode()
    def _forward(self, state: EngineState, tokens: torch.Tensor, new_mask: torch.Tensor, lengths: torch.Tensor) -> EngineState:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        p = state.payload
        mask = torch.cat([p.mask, new_mask], dim=1)
        all_ids = torch.cat([p.ids, tokens], dim=1)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        if self.kv_cache:
            cache = p.cache
            if cache is None:
                from transformers import DynamicCache

                cache = DynamicCache(config=self.model.config)
            else:  # the model appends to the cache in place: fork it so `state` stays valid
                cache = copy.copy(cache)
                cache.layers = [copy.copy(layer) for layer in p.cache.layers]
            out = self.model(
                input_ids=tokens,
                attention_mask=mask,
                position_ids=positions[:, -tokens.shape[1] :],
                use_cache=True,
                **{self._cache_kwarg: cache},
            )
            new_cache = getattr(out, self._cache_kwarg)
        else:  # full recompute of the whole sequence every step (an audit condition)
            out = self.model(input_ids=all_ids, attention_mask=mask, position_ids=positions, use_cache=False)
            new_cache = None
        logits = out.logits[:, -1, :].float()
        if logits.shape[1] > self.vocab_size:
            logits = logits[:, : self.vocab_size]
        payload = _HFPayload(cache=new_cache, mask=mask, ids=all_ids, logits=logits)
        return EngineState(batch_size=state.batch_size, lengths=lengths, payload=payload)


class _HFPayload:
    __slots__ = ("cache", "mask", "ids", "logits")

    def __init__(self, cache: Any, mask: torch.Tensor, ids: torch.Tensor, logits: torch.Tensor | None) -> None:
        self.cache = cache
        self.mask = mask
        self.ids = ids
        self.logits = logits


def _resolve(model: str | None) -> str:
    """A local directory to load: the embedded model (converted on first use), a directory, or a
    hub id already in the local Hugging Face cache. Nothing is downloaded: a model that is not
    here fails at once, naming the models that are."""
    if is_embedded(model):
        with quiet_third_party():
            return str(ensure_converted(model or DEFAULT_MODEL))
    problem = why_not_here(model)
    if problem:
        raise ModelNotFoundError(problem)
    return str(model)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
