"""Bad input is one line on stderr and exit code 2, found before any model loads (issue 12,
defects 3, 4, 5): each case here would otherwise be a traceback or a model load first."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokendice.cli import main


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if anything tries to load an engine: every error here comes first."""

    def refuse(spec):  # type: ignore[no-untyped-def]
        raise AssertionError(f"an engine was loaded: {spec}")

    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", refuse)


def one_line_error(capsys, needle: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert needle in err, err
    return err


def run_cli(*args: str | bytes, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "tokendice", *args], capture_output=True, timeout=timeout)


def test_an_abbreviated_flag_is_not_taken_for_another(tmp_path):
    start = time.perf_counter()
    done = run_cli("sample", "hi", "--mode", "x", "--db", str(tmp_path / "d.db"))
    assert done.returncode == 2 and b"unrecognized arguments: --mode x" in done.stderr
    assert time.perf_counter() - start < 10  # no model, no hub retries (measured: well under 1 s)


def test_a_prompt_that_is_not_utf8(tmp_path):
    done = run_cli("trace", b"The capital \xff of France", "--db", str(tmp_path / "d.db"))
    assert done.returncode == 2
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    assert len(lines) == 1 and "not valid UTF-8" in lines[0] and "Traceback" not in lines[0]


def test_a_binary_prompts_file(tmp_path, capsys, no_model):
    binary = tmp_path / "prompts.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert main(["sample", "--prompts", str(binary), "-n", "2"]) == 2
    one_line_error(capsys, "is not UTF-8 text")


def test_html_output_into_a_missing_folder_or_onto_a_folder(tmp_path, capsys, no_model):
    assert main(["trace", "hi", "--html", str(tmp_path / "missing" / "t.html")]) == 2
    one_line_error(capsys, "does not exist")
    assert main(["trace", "hi", "--html", str(tmp_path)]) == 2
    one_line_error(capsys, "is a directory")
    assert not (tmp_path / "tokendice.db").exists()


def test_a_read_only_store_fails_before_the_model_loads(tmp_path, capsys, no_model):
    from tests.store.test_migrations import read_only
    from tokendice.store import Store

    db = tmp_path / "ro.db"
    Store(db).close()
    with read_only(db):
        assert main(["trace", "hi", "--db", str(db)]) == 2
    one_line_error(capsys, "run store")


def test_a_model_that_is_neither_here_nor_cached_fails_at_once(capsys):
    start = time.perf_counter()
    assert main(["trace", "hi", "--model", "someone/not-a-model-here"]) == 2
    err = one_line_error(capsys, "neither a local directory nor in the Hugging Face cache")
    assert "smollm2-135m" in err  # it says what is available
    assert time.perf_counter() - start < 10


def test_threads_beyond_the_cpus(capsys, no_model):
    assert main(["trace", "hi", "--threads", "999"]) == 2
    one_line_error(capsys, f"--threads must be at most {os.cpu_count()}")


def test_an_option_the_engine_does_not_take(capsys, no_model):
    assert main(["trace", "hi", "--engine", "llamacpp", "--dtype", "bfloat16"]) == 2
    one_line_error(capsys, "the llamacpp engine takes no option --dtype")


@pytest.mark.model
def test_context_length_is_checked_before_the_model_loads(capsys, no_model, hf_engine):
    # hf_engine: the embedded model is converted, so its config and tokenizer are here
    long_prompt = "word " * 10_000
    assert main(["trace", long_prompt]) == 2
    one_line_error(capsys, "exceed the model's context length of 8192 tokens")
    assert main(["trace", "hi", "--max-new-tokens", "100000"]) == 2
    one_line_error(capsys, "--max-new-tokens must be below the model's context length of 8192 tokens")


@pytest.mark.model
def test_no_third_party_loading_bars_unless_verbose(tmp_path, hf_engine):
    args = ["trace", "The capital of France is", "--greedy", "--max-new-tokens", "1", "--db", str(tmp_path / "d.db")]
    quiet = run_cli(*args, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.decode().strip() == ""  # no "Loading weights" bar, no warnings
    loud = run_cli(*args, "--verbose", timeout=300)
    assert loud.returncode == 0 and b"Loading" in loud.stderr


def test_messages_use_flags_in_the_cli_and_keywords_in_python(capsys, no_model):
    import tokendice as td

    assert main(["trace", "hi", "--top-p", "1.5"]) == 2
    one_line_error(capsys, "--top-p must be in (0, 1], got 1.5")
    with pytest.raises(td.ParameterError, match=r"^top_p must be in \(0, 1\], got 1.5"):
        td.trace("hi", top_p=1.5)
    with pytest.raises(td.ParameterError, match="did you mean 'temperature'"):
        td.trace("hi", temprature=0.7)


def test_cli_modules_parse_without_torch():
    code = "import sys; from tokendice.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_root_loads_light_and_lists_the_api():
    code = "import sys, tokendice as td; print('torch' in sys.modules, sorted(set(dir(td)) ^ set(td.__all__)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    assert out.stdout.strip() == "False []"


def test_listing_variants_loads_neither_a_model_nor_torch():
    code = ("import sys; from tokendice.cli import main; main(['perturb', 'The capital of France is', '--list', '--json']); "
            "print('torch' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip().endswith("False") and '"variants"' in out.stdout
