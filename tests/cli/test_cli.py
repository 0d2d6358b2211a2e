from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tokendice.cli import main


@pytest.mark.parametrize(
    "args,needle",
    [
        (["trace", ""], "prompt"),
        (["trace", "hi", "--temperature", "-1"], "temperature"),
        (["trace", "hi", "--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (["trace", "hi", "--top-p", "0"], "--top-p"),
        (["trace", "hi", "--top-k", "-3"], "--top-k"),
        (["trace", "hi", "--repetition-penalty", "0"], "--repetition-penalty"),
        (["trace", "hi", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["trace", "hi", "--model", "/no/such/dir"], "not found"),
        (["trace", "hi", "--engine", "nope"], "--engine must be one of hf, llamacpp, openai"),
        (["trace", "hi", "--engine", "llamacpp", "--dtype", "bfloat16"], "the llamacpp engine takes no option --dtype"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_help_is_fast_and_does_not_import_torch():
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from tokendice.cli import main; main(['--help']) if False else None; import tokendice.cli, tokendice.cli.trace; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"
    help_run = subprocess.run([sys.executable, "-m", "tokendice", "--help"], capture_output=True, text=True)
    assert help_run.returncode == 0 and "trace" in help_run.stdout
    assert time.perf_counter() - start < 10  # generous: two interpreter starts on a loaded machine


@pytest.mark.model
def test_trace_json_from_the_cli(capsys):
    import json

    code = main(["trace", "The capital of France is", "--greedy", "--max-new-tokens", "3", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["steps"][0]["chosen"]["text"] == " Paris"
    assert data["steps"][0]["chosen"]["model_prob"] == pytest.approx(0.7725, abs=5e-4)


@pytest.mark.model
def test_trace_table_from_the_cli(capsys):
    code = main(["trace", "The capital of France is", "--seed", "42", "--temperature", "0.7", "--top-p", "0.9", "--top-k", "50",
                 "--repetition-penalty", "1.2", "--no-repeat-ngram-size", "2", "--max-new-tokens", "5"])
    assert code == 0
    out = capsys.readouterr().out
    assert "p(model)" in out and "p(sampling)" in out and '" Paris"' in out
