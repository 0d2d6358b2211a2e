"""Variant generators: named, deterministic, composable; no-op and duplicate variants skipped."""

from __future__ import annotations

import json

import pytest

from tokendice.errors import ParameterError
from tokendice.experiments.perturb.variants import (
    GENERATORS,
    KINDS,
    UserVariant,
    apply,
    default_names,
    make_variants,
    parse_names,
    read_variants_file,
    user_variants_of,
)

PROMPT = "The capital of France is"


@pytest.mark.parametrize(
    "name,text",
    [
        ("whitespace.trailing_space", "The capital of France is "),
        ("whitespace.leading_space", " The capital of France is"),
        ("whitespace.double_space", "The  capital  of  France  is"),
        ("whitespace.newline", "The capital of France is\n"),
        ("case.lower", "the capital of france is"),
        ("case.upper", "THE CAPITAL OF FRANCE IS"),
        ("case.title", "The Capital Of France Is"),
        ("punct.period", "The capital of France is."),
        ("punct.question", "The capital of France is?"),
        ("punct.colon", "The capital of France is:"),
        ("quotes.double", '"The capital of France is"'),
        ("quotes.curly", "“The capital of France is”"),
        ("sep.newline", "Text:\nThe capital of France is"),
        ("para.complete", "Complete the sentence: The capital of France is"),
    ],
)
def test_each_generator_makes_its_text(name, text):
    variant = apply(name, PROMPT, chat=False)
    assert variant.prompt == text and variant.name == name and variant.kind == name.split(".")[0]
    assert not variant.chat
    assert apply(name, PROMPT, chat=False) == variant  # deterministic


def test_punctuation_replaces_the_final_mark_and_title_keeps_inner_capitals():
    assert apply("punct.question", "Is it Paris.", False).prompt == "Is it Paris?"
    assert apply("punct.none", "Is it Paris?  ", False).prompt == "Is it Paris"
    assert apply("case.title", "an iPhone's case", False).prompt == "An IPhone's Case"


def test_template_variants_switch_the_encoding_not_the_text():
    chat = apply("template.chat", PROMPT, chat=False)
    assert chat.prompt == PROMPT and chat.chat
    assert not apply("template.raw", PROMPT, chat=True).chat


def test_composition_applies_left_to_right():
    v = apply("case.lower+punct.question+template.chat", PROMPT, chat=False)
    assert v.prompt == "the capital of france is?" and v.chat
    assert v.kind == "case+punct+template"
    assert apply("punct.period+case.upper", "x", False).prompt == "X."


def test_no_op_and_duplicate_variants_are_skipped_with_a_note():
    vset = make_variants("the end", names=["case.lower", "punct.none", "case.upper", "case.upper+case.upper", "template.raw"])
    assert [v.name for v in vset.variants] == ["case.upper"]
    notes = {s["name"]: s["note"] for s in vset.skipped}
    assert notes == {
        "case.lower": "same as the original",
        "punct.none": "same as the original",
        "case.upper+case.upper": "same as case.upper",
        "template.raw": "same as the original",
    }


def test_default_set_kinds_filter_and_unknown_names():
    vset = make_variants(PROMPT)
    names = [v.name for v in vset.variants]
    assert names == [n for n in default_names() if n not in ("punct.none", "template.raw")]
    assert {n.split(".")[0] for n in names} == set(KINDS) - {"user"}
    only_case = make_variants(PROMPT, kinds=["case"])
    assert [v.name for v in only_case.variants] == ["case.lower", "case.upper", "case.title"]
    assert "quotes.single" in [v.name for v in make_variants(PROMPT, kinds=["quotes"]).variants]  # non-default, asked for by kind
    with pytest.raises(ParameterError, match="unknown variant 'case.shouting'"):
        make_variants(PROMPT, names=["case.shouting"])
    with pytest.raises(ParameterError, match="unknown variant kind"):
        make_variants(PROMPT, kinds=["colour"])


def test_user_variants_literal_and_template():
    user = [UserVariant("mine", "Q: {p}\nA:"), UserVariant("fixed", "Paris is the capital of", chat=True)]
    vset = make_variants(PROMPT, names=["mine", "fixed"], user=user)
    mine, fixed = vset.variants
    assert mine.prompt == "Q: The capital of France is\nA:" and mine.kind == "user" and not mine.chat
    assert fixed.prompt == "Paris is the capital of" and fixed.chat
    assert [v.name for v in make_variants(PROMPT, user=user).variants][-2:] == ["mine", "fixed"]  # added to the defaults


def test_read_variants_file_lines_and_jsonl(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("Q: {p}\\nA:\n\n" + json.dumps({"name": "polite", "prompt": "Please: {p}", "chat": True}) + "\nliteral text\n")
    variants = read_variants_file(str(path))
    assert variants == [UserVariant("user.1", "Q: {p}\nA:"), UserVariant("polite", "Please: {p}", True), UserVariant("user.3", "literal text")]
    assert [v.is_template for v in variants] == [True, True, False]


@pytest.mark.parametrize(
    "content,needle",
    [
        ("", "holds no variants"),
        ('{"name": "x"}\n', "expected a JSON object"),
        ('{"prompt": "a", "chat": "yes"}\n', "true or false"),
        ('{"name": "case.lower", "prompt": "a"}\n', "already taken"),
    ],
)
def test_bad_variants_files(tmp_path, content, needle):
    path = tmp_path / "v.txt"
    path.write_text(content)
    with pytest.raises(ParameterError, match=needle):
        read_variants_file(str(path))
    with pytest.raises(ParameterError, match="cannot read"):
        read_variants_file(str(tmp_path / "missing.txt"))


def test_every_builtin_is_named_kind_dot_what():
    for name, generator in GENERATORS.items():
        kind, what = name.split(".")
        assert kind in KINDS and what and generator.description


def test_a_binary_or_non_utf8_variants_file_is_one_line(tmp_path):
    binary = tmp_path / "v.bin"
    binary.write_bytes(b"{p}\x00\x01")
    with pytest.raises(ParameterError, match="is a binary file, not text") as refused:
        read_variants_file(str(binary))
    assert refused.value.param == "user_variants"
    latin = tmp_path / "v.txt"
    latin.write_bytes("Qu\xe9: {p}\n".encode("latin-1"))
    with pytest.raises(ParameterError, match=r"is not UTF-8 text \(byte 2 is not valid\)"):
        read_variants_file(latin)
    with pytest.raises(ParameterError, match="cannot read variants file"):
        read_variants_file(str(tmp_path))  # a directory


def test_user_variants_as_the_api_takes_them(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("Q: {p}\n")
    assert user_variants_of(path) == user_variants_of(str(path)) == [UserVariant("user.1", "Q: {p}")]
    assert user_variants_of(["{p}?", UserVariant("mine", "x {p}")]) == [UserVariant("user.1", "{p}?"), UserVariant("mine", "x {p}")]
    assert user_variants_of(()) == []
    for bad, needle in [(3, "must be a path"), ([""], r"user_variants\[0\]"), ([UserVariant("case.lower", "{p}")], "already taken")]:
        with pytest.raises(ParameterError, match=needle):
            user_variants_of(bad)


def test_names_and_kinds_as_lists_or_comma_separated():
    assert parse_names("case.lower, punct.question") == parse_names(["case.lower", "punct.question"]) == ["case.lower", "punct.question"]
    assert parse_names(None) is None
    with pytest.raises(ParameterError, match="kinds must name at least one variant kind"):
        parse_names(" , ", "kinds")
    with pytest.raises(ParameterError, match="did you mean 'case.lower'"):
        apply("case.lowr", PROMPT, False)
