"""Answer extraction: every spec kind, the stated normalisation, numbers in digits and words,
choices, regex groups, JSON fields, and <no answer> for a completion that has none."""

from __future__ import annotations

import pytest

from tokendice.analysis.extract import NO_ANSWER, AnswerSpec, first_number, normalise
from tokendice.errors import ParameterError


def read(spec: str, text: str) -> str:
    return AnswerSpec.parse(spec)(text)


# -- normalisation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        (" Paris.", "paris"),  # surrounding whitespace and punctuation, case
        ("PARIS", "paris"),
        ("**Paris**", "paris"),  # markdown emphasis is punctuation
        ("`Paris`", "paris"),  # the backtick (a symbol to Unicode) too
        ("«Paris»", "paris"),
        ('"Paris"!?', "paris"),
        ("(Paris)", "paris"),
        ("  the  city\n of\tParis! ", "the city of paris"),  # inner whitespace collapsed to one space
        ("Ｐａｒｉｓ", "paris"),  # NFKC: full-width letters
        ("ﬁne", "fine"),  # NFKC: the ligature
        ("Straße", "strasse"),  # casefold, not lower
        ("$12", "$12"),  # a currency sign is a symbol, not punctuation: it stays
        ("12%", "12"),  # % is punctuation to Unicode
        ("C++", "c++"),
        ("don't", "don't"),  # inner punctuation stays
        ("...", ""),
        ("", ""),
    ],
)
def test_normalise(text, expected):
    assert normalise(text) == expected


def test_normalised_answers_are_one_answer():
    spec = AnswerSpec.parse("exact")
    assert {spec(t) for t in (" Paris.", "paris", " PARIS!\n", "**Paris**", "Ｐａｒｉｓ")} == {"paris"}


# -- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("12", "12"), ("12.0", "12"), ("twelve", "12"), (" 12.", "12"), ("It is 12.", "12"), ("+12", "12"),
        ("twenty-one", "21"), ("twenty one", "21"), ("Twenty-One", "21"), ("seventy-seven", "77"), ("ninety nine", "99"),
        ("one hundred and five", "105"), ("one hundred twenty-three", "123"), ("twelve hundred", "1200"),
        ("two thousand and twenty", "2020"), ("one million two hundred thousand", "1200000"), ("zero", "0"),
        ("-5", "-5"), ("−5", "-5"), ("-12.50", "-12.5"), ("-.5", "-0.5"), ("-0", "0"), ("minus five", "-5"),
        ("negative 3", "-3"), ("It is minus 12.5", "-12.5"), ("minus -3", "-3"),
        ("1,000", "1000"), ("1,234.5", "1234.5"), ("1,234,567.89", "1234567.89"), ("-1,000", "-1000"),
        ("3.14", "3.14"), ("0.50", "0.5"), (".5", "0.5"), ("1e3", "1000"), ("1.5e-3", "0.0015"), ("1e400", "1E+400"),
        ("007", "7"), ("１２", "12"), ("12th", "12"), ("5kg", "5"), ("$12", "12"), ("12%", "12"),
    ],
)
def test_numbers_are_written_canonically(text, expected):
    assert first_number(text) == expected
    assert read("number", text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("I have one apple and 3 pears", "1"),  # the first number, words or digits
        ("Seven plus five is twelve", "7"),
        ("Q: 7 plus 5", "7"),
        ("5-3", "5"),  # a hyphen between numbers is no sign
        ("2024-01-01", "2024"),
        ("12,5", "12"),  # a comma not followed by three digits is no thousands separator
        ("1,0000", "1"),
        ("1.2.3", "1.2"),
        ("one and two", "1"),  # "and" joins only after hundred or thousand
        ("one two three", "1"),  # a unit does not follow a unit
        ("twenty thirty", "20"),
        ("five, six", "5"),
        ("one hundred and five apples and two", "105"),
    ],
)
def test_the_first_number_and_where_it_ends(text, expected):
    assert first_number(text) == expected


@pytest.mark.parametrize("text", ["no number", "", "done", "none", "someone", "often", "x12", "v1.2", "abc123", "thousand", "a hundred"])
def test_no_number(text):
    assert first_number(text) is None
    assert read("number", text) == NO_ANSWER


# -- the other kinds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,text,expected",
    [
        ("exact", " Paris.", "paris"),
        ("exact", "", NO_ANSWER),
        ("exact", " ...\n", NO_ANSWER),
        ("first-line", "\n\n Paris.\nLondon", "paris"),
        ("first-line", "\n...\nRome", "rome"),  # a punctuation-only line is no line
        ("first-line", "a\r\nb", "a"),
        ("first-line", "\n \n", NO_ANSWER),
        ("first-word", " Paris, France", "paris"),
        ("first-word", "... Paris", "paris"),
        ("first-word", '"Yes", he said', "yes"),
        ("first-word", "twenty-one apples", "twenty-one"),
        ("first-word", "   ", NO_ANSWER),
    ],
)
def test_exact_lines_and_words(spec, text, expected):
    assert read(spec, text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("(B)", "B"), ("( c )", "C"), ("B)", "B"), ("b.", "B"), ("A", "A"), ("**C**", "C"),  # marked, or the first word
        ("Answer: B", "B"), ("answer: d", "D"), ("The answer is C", "C"), ("The correct option is b", "B"),
        ("Answer: (D) because A is wrong", "D"),  # a marked choice wins over an earlier bare letter
        ("I think a good answer is C", "C"),  # the article "a" is not the choice A
        ("I think a", NO_ANSWER),  # an unmarked lower-case letter inside the text is no choice
        ("a and b", "A"),  # but the first word is
        ("A good one", "A"),  # (an article at the start is read as a choice: the spec cannot tell)
        ("E", NO_ANSWER), ("Bob", NO_ANSWER), ("ABC", NO_ANSWER), ("", NO_ANSWER),
    ],
)
def test_choice(text, expected):
    assert read("choice:A,B,C,D", text) == expected


def test_choice_answers_are_spelled_as_the_spec_spells_them():
    assert read("choice:yes,no", "Yes, it is") == "yes"
    assert read("choice:yes,no", "I would say no.") == "no"
    assert read("choice:Yes,No", "no") == "No"
    assert read("choice:1,2,3", "Option 2") == "2"


@pytest.mark.parametrize(
    "spec,text,expected",
    [
        (r"regex:answer is (\w+)", "The answer is Paris.", "paris"),  # the first group, normalised
        (r"regex:answer is (\w+)", "nope", NO_ANSWER),
        (r"regex:\d+", "x 42 y 7", "42"),  # no group: the whole first match
        ("regex:(a)|(b)", "b", "b"),  # the first group that took part in the match
        (r"regex:(?P<x>\d+) apples", "3 apples", "3"),
        (r"regex: is (\w+)", "Paris is Big", "big"),  # a pattern keeps its leading space
        (r"regex:(x?)", "abc", NO_ANSWER),  # an empty match is no answer
    ],
)
def test_regex(spec, text, expected):
    assert read(spec, text) == expected


@pytest.mark.parametrize(
    "spec,text,expected",
    [
        ("json:answer", '{"answer": "Paris"}', "paris"),
        ("json:answer", 'Sure: {"answer": 12}', "12"),
        ("json:answer", '{"answer": 12.0}', "12"),  # numbers canonically
        ("json:answer", '{"answer": true}', "true"),
        ("json:answer", '{"answer": {"v": 1, "a": "X"}}', '{"a":"X","v":1}'),  # structures as compact JSON, keys sorted
        ("json:answer", '{"answer": [1, "x"]}', '[1,"x"]'),
        ("json:answer", '{"answer": null}', NO_ANSWER),
        ("json:answer", '{"answer": " "}', NO_ANSWER),
        ("json:answer", "{bad json} then {\"answer\": \"X\"}", "x"),
        ("json:answer", 'first {"q": 1} then {"answer": "Y"}', "y"),  # the first object that has the field
        ("json:answer", '{"a": {"answer": 1}}', NO_ANSWER),  # not searched inside an object: the path says how deep
        ("json:a.b", '{"a": {"b": " Yes! "}}', "yes"),
        ("json:answer", "no json", NO_ANSWER),
        ("json:answer", '{"other": 1}', NO_ANSWER),
    ],
)
def test_json(spec, text, expected):
    assert read(spec, text) == expected


# -- parsing specs -----------------------------------------------------------------------------


def test_parse_and_print_specs():
    assert AnswerSpec.parse("Number") == AnswerSpec("number")
    assert str(AnswerSpec.parse(" choice: A, B ,C ")) == "choice:A,B,C"
    assert AnswerSpec.parse(" choice: A, B ,C ")("(b)") == "B"
    assert str(AnswerSpec.parse("regex: x (\\d)")) == "regex: x (\\d)"
    spec = AnswerSpec.parse("json:answer")
    assert AnswerSpec.parse(spec) is spec


@pytest.mark.parametrize(
    "spec,message",
    [
        ("numbr", "unknown answer spec 'numbr': one of exact, .*did you mean 'number'"),
        ("", "an answer spec is one of"),
        (None, "an answer spec is one of"),
        (12, "an answer spec is one of"),
        ("choice", "needs an argument: choice:A,B,C,D"),
        ("regex:", "needs an argument"),
        ("json: ", "needs an argument"),
        ("number:3", "takes no argument"),
        ("exact:", "takes no argument"),
        ("regex:(unclosed", "not a valid regular expression"),
        ("choice:A,,B", "comma-separated choices"),
        ("choice:A,a", "lists a choice twice"),
        ("choice:ABCD", "1 to 3 letters"),
        ("json:a..b", "dotted path"),
    ],
)
def test_bad_specs_name_the_keyword(spec, message):
    with pytest.raises(ParameterError, match=message) as caught:
        AnswerSpec.parse(spec)
    assert caught.value.param == "extract"
