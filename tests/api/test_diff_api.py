"""td.diff's contract: one result class (RunDiff), the CLI's --json, the table, the views."""

from __future__ import annotations

import json
import math
import os

import pytest

import tokendice as td
from tokendice.cli import main
from tokendice.engines.fake import FakeEngine

VOCAB = ["<eos>", "x", "a", "b", "c", "<script>alert(1)</script>"]
DIFF_COLUMNS = ["step", "token_a", "token_b", "logprob_a", "logprob_b", "abs_diff", "diverged"]


def engine(tail: dict[str, float]) -> FakeEngine:
    """'a' for sure, then `tail` (b or c), then the end."""
    return FakeEngine.from_table(VOCAB, {(): {"a": 1.0}, ("a",): tail, ("a", "b"): {"<eos>": 1.0}, ("a", "c"): {"<eos>": 1.0}})


@pytest.fixture
def traces() -> tuple[td.Trace, td.Trace]:
    """Two stored greedy traces that fork at step 1: b (0.6) against c (0.7)."""
    a = td.trace("x", engine=engine({"b": 0.6, "c": 0.4}), do_sample=False, max_new_tokens=4, top=3)
    b = td.trace("x", engine=engine({"b": 0.3, "c": 0.7}), do_sample=False, max_new_tokens=4, top=3)
    return a, b


def test_two_stored_traces_fork_where_expected(traces) -> None:  # type: ignore[no-untyped-def]
    a, b = traces
    d = td.diff(a.run_id, b.run_id)
    assert type(d) is td.RunDiff and d.run_id is None and not d.identical
    assert d.first_divergence == 1 and d.common_steps == 1 and d.max_drift == 0.0
    assert d.divergence["margin_a"] == pytest.approx(math.log(0.6 / 0.4), abs=1e-6)
    assert d.divergence["margin_b"] == pytest.approx(math.log(0.7 / 0.3), abs=1e-6)
    assert d.rows() == [
        {"step": 0, "token_a": "a", "token_b": "a", "logprob_a": 0.0, "logprob_b": 0.0, "abs_diff": 0.0, "diverged": False},
        {"step": 1, "token_a": "b", "token_b": "c", "logprob_a": pytest.approx(math.log(0.6), abs=1e-6),
         "logprob_b": pytest.approx(math.log(0.7), abs=1e-6), "abs_diff": None, "diverged": True},
    ]  # fmt: skip
    # a Trace object or its JSON file are sides too, and give the same diff
    same = td.diff(a, b)
    assert same.rows() == d.rows() and same.a.source == f"trace {a.run_id}"


def test_to_dict_is_what_the_cli_prints(traces, capsys) -> None:  # type: ignore[no-untyped-def]
    a, b = traces
    assert main(["diff", a.run_id, f"{b.run_id}:0", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    live = td.diff(a.run_id, f"{b.run_id}:0")
    assert printed == live.to_dict() and printed["kind"] == "diff" and printed["run_id"] is None
    assert td.RunDiff.from_dict(printed).to_dict() == printed
    assert main(["diff", a.run_id, b.run_id]) == 0
    out = capsys.readouterr().out
    assert "first divergence at step 1" in out and "top candidates at step 1" in out and "log-prob drift" in out


def test_dataframe_repr_and_html(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prompt = "<script>alert(1)</script>"
    a = td.trace(prompt, engine=engine({"b": 1.0}), do_sample=False, save=False)
    b = td.trace(prompt, engine=engine({"b": 0.5, "c": 0.5}), do_sample=False, save=False)
    path_a, path_b = tmp_path / "a.json", tmp_path / "b.json"
    path_a.write_text(a.to_json())
    path_b.write_text(b.to_json())
    d = td.diff(path_a, str(path_b))
    assert not os.path.exists(os.environ["TOKENDICE_DB"])  # two files: the store is not even opened
    assert d.identical and d.max_drift == pytest.approx(math.log(2), abs=1e-6)  # b: 1.0 against 0.5
    df = d.to_dataframe()
    assert list(df.columns) == DIFF_COLUMNS == list(td.RunDiff.COLUMNS) and len(df) == 3 and not df["diverged"].any()
    html = d._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    text = repr(d)
    assert text.count("\n") == 0 and len(text) < 200 and text.startswith("<RunDiff: ") and "identical (3 tokens)" in text


def test_a_side_that_ended_early(tmp_path) -> None:  # type: ignore[no-untyped-def]
    short = td.trace("x", engine=FakeEngine.from_table(VOCAB, {(): {"a": 1.0}}), do_sample=False, save=False)
    long = td.trace("x", engine=engine({"b": 1.0}), do_sample=False, save=False)
    d = td.diff(short, long)
    assert d.first_divergence == 1 and d.divergence["a"]["text"] == "<eos>"
    d = td.diff(td.trace("x", engine=engine({"b": 1.0}), do_sample=False, max_new_tokens=1, save=False), long)
    assert d.rows()[-1] == {"step": 1, "token_a": None, "token_b": "b", "logprob_a": None, "logprob_b": 0.0,
                            "abs_diff": None, "diverged": True}  # fmt: skip
    assert 'first divergence at step 1: "(end)" vs "b"' in repr(d)


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: td.diff("abcd", "abcd", dbb="x.db"), "unexpected keyword 'dbb'; did you mean 'db'?"),
        (lambda: td.diff("", "abcd"), "a must be a run id"),
        (lambda: td.diff("abcd", 3), "b must be a run id"),
        (lambda: td.diff("abcd", "abcd", db=3), "db must be a path"),
        (lambda: td.diff("not a run!", "abcd"), "neither a trace JSON file nor a run id"),
    ],
)
def test_bad_input(call, needle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(td.ParameterError) as caught:
        call()
    assert needle in str(caught.value)


def test_a_run_without_generations_says_so() -> None:
    report = td.compare("x", engines=[engine({"b": 1.0}), engine({"c": 1.0})], max_new_tokens=2, completions=False)
    with pytest.raises(td.StoreError, match="is a compare run with no stored generation to diff"):
        td.diff(report.run_id, report.run_id)
