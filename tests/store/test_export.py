from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokendice.errors import StoreError
from tokendice.store import Store, export_run, export_steps

from ._factory import make_sample

pd = pytest.importorskip("pandas")


@pytest.fixture
def filled(store: Store, run_id: str) -> str:
    store.add_samples(run_id, [make_sample(i, n_steps=i % 4 + 1) for i in range(6)])
    store.add_samples(run_id, [make_sample(0, n_steps=2, prompt_index=1)])
    return run_id


def _expected(store: Store, run_id: str) -> list[dict]:
    return [
        {"run_id": run_id, "prompt_index": s.prompt_index, "sample_id": s.sample_id, "text": s.text,
         "tokens": s.tokens, "model_logprob": s.model_logprob, "sampling_logprob": s.sampling_logprob,
         "finish_reason": s.finish_reason, "n_tokens": s.n_tokens}
        for s in store.samples(run_id)
    ]


def test_jsonl(store: Store, filled: str, tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    assert export_run(store, filled[:6], "jsonl", out) == 7
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == _expected(store, filled)
    df = pd.read_json(out, lines=True)
    assert list(df["sample_id"]) == [0, 1, 2, 3, 4, 5, 0]


def test_csv(store: Store, filled: str, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    assert export_run(store, filled, "csv", out) == 7
    df = pd.read_csv(out, keep_default_na=False)
    expected = _expected(store, filled)
    assert list(df.columns) == list(expected[0])
    assert [json.loads(t) for t in df["tokens"]] == [r["tokens"] for r in expected]
    assert list(df["text"]) == [r["text"] for r in expected]
    assert list(df["model_logprob"]) == [r["model_logprob"] for r in expected]


def test_parquet(store: Store, filled: str, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    out = tmp_path / "s.parquet"
    assert export_run(store, filled, "parquet", out) == 7
    df = pd.read_parquet(out)
    expected = _expected(store, filled)
    assert [list(t) for t in df["tokens"]] == [r["tokens"] for r in expected]
    assert df.drop(columns="tokens").to_dict("records") == [
        {k: v for k, v in r.items() if k != "tokens"} for r in expected
    ]
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(out).metadata[b"tokendice.run"])
    assert meta["id"] == filled and meta["manifest"] == {"top_k": 5, "seed": 0}


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_steps(store: Store, filled: str, tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"steps.{fmt}"
    n = export_steps(store, filled, fmt, out)
    samples = store.samples(filled)
    assert n == sum(s.n_tokens for s in samples)
    df = {"jsonl": lambda: pd.read_json(out, lines=True, precise_float=True), "csv": lambda: pd.read_csv(out, keep_default_na=False),
          "parquet": lambda: pd.read_parquet(out)}[fmt]()
    assert list(df.columns) == ["run_id", "prompt_index", "sample_id", "step", "token_id",
                                "token_text", "model_logprob", "sampling_logprob"]
    expected = [(s.prompt_index, s.sample_id, i, t, txt, m)
                for s in samples for i, (t, txt, m) in enumerate(zip(s.tokens, s.token_texts, s.model_logprobs))]
    got = list(zip(df["prompt_index"], df["sample_id"], df["step"], df["token_id"], df["token_text"],
                   df["model_logprob"]))
    assert got == expected


def test_stdout(store: Store, filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert export_run(store, filled, "jsonl", None) == 7
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and json.loads(lines[0])["sample_id"] == 0
    export_run(store, filled, "csv", "-")
    assert capsys.readouterr().out.startswith("run_id,prompt_index,sample_id,text,tokens,")


def test_non_finite_is_null_in_jsonl(store: Store, run_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tokendice.store import SampleRecord

    store.add_samples(run_id, [SampleRecord(0, [1], ["a"], "a", [float("-inf")], [-0.5], "stop")])
    export_run(store, run_id, "jsonl")
    row = json.loads(capsys.readouterr().out)
    assert row["model_logprob"] is None and row["sampling_logprob"] == -0.5


def test_empty_run(store: Store, run_id: str, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    assert export_run(store, run_id, "parquet", tmp_path / "e.parquet") == 0
    assert len(pd.read_parquet(tmp_path / "e.parquet")) == 0


def test_errors(store: Store, filled: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StoreError, match="unknown export format 'xml'"):
        export_run(store, filled, "xml", tmp_path / "x")
    with pytest.raises(StoreError, match="needs an output file"):
        export_run(store, filled, "parquet", None)
    with pytest.raises(StoreError, match="cannot write"):
        export_run(store, filled, "jsonl", tmp_path / "missing" / "dir" / "x.jsonl")
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    with pytest.raises(StoreError, match=r"pip install 'tokendice\[parquet\]'"):
        export_run(store, filled, "parquet", tmp_path / "x.parquet")
