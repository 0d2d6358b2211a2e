"""tokendice sample / enumerate / runs on the embedded model, through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tokendice.cli import main
from tokendice.store import Store

pytestmark = pytest.mark.model

NOTEBOOK = ["--temperature", "0.7", "--top-p", "0.9", "--top-k", "50", "--repetition-penalty", "1.2", "--no-repeat-ngram-size", "2", "--max-new-tokens", "20", "--seed", "42"]
PROMPT = "The capital of France is"


def test_sample_1000_notebook_stores_run_with_manifest(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    code = main(["sample", PROMPT, "-n", "1000", "--method", "branching", "--at-prefix", " Paris.", "--json", "--db", db, *NOTEBOOK])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    analysis = report["prompts"][0]
    assert analysis["n"] == 1000 and sum(c["count"] for c in analysis["completions"]) == 1000
    assert analysis["goodness_of_fit"]["p_value"] > 1e-3
    rows = {r["token"]: r for r in analysis["at_prefix"]["rows"]}
    assert rows["\n"]["predicted_sampling_prob"] == pytest.approx(0.794, abs=0.01)
    with Store(db) as store:
        run = store.get_run(report["run_id"])
        assert run.status == "complete" and run.n_samples == 1000
        manifest = run.manifest
        assert manifest["params"]["top_p"] == 0.9 and manifest["sample"]["seed"] == 42
        assert manifest["engine"]["dtype"] == "float32" and "torch" in json.dumps(manifest["environment"])
    assert main(["runs", "export", report["run_id"], "--format", "csv", "--db", db, "-o", str(tmp_path / "s.csv")]) == 0
    assert (tmp_path / "s.csv").read_text().count("\n") >= 1001


def test_enumerate_reports_mass_found_and_left(tmp_path, capsys):
    db = str(tmp_path / "e.db")
    assert main(["enumerate", PROMPT, "--json", "--db", db, "--max-nodes", "60", *NOTEBOOK]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["found_mass"] + data["unexplored_mass"] == pytest.approx(1.0, abs=1e-9)
    assert data["found_mass"] >= 0.99 or "budget" in data["stopped_because"]
    assert data["completions"][0]["text"].startswith(" Paris")


def test_low_entropy_enumeration_reaches_99_percent(tmp_path, capsys):
    db = str(tmp_path / "l.db")
    assert main(["enumerate", PROMPT, "--json", "--db", db, "--temperature", "0.5", "--top-k", "5", "--max-new-tokens", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["found_mass"] >= 0.99 and data["stopped_because"] == "reached the target mass"


def _sample_cmd(db: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tokendice", "sample", PROMPT, "-n", "200", "--batch-size", "10", "--max-new-tokens", "8",
            "--temperature", "0.9", "--seed", "5", "--json", "--db", db, *extra]


def test_kill_9_then_resume_gives_the_uninterrupted_samples(tmp_path):
    killed_db = str(tmp_path / "killed.db")
    proc = subprocess.Popen(_sample_cmd(killed_db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    stored = 0
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(killed_db):
            try:
                with Store(killed_db) as store:
                    runs = store.list_runs()
                    stored = store.count_samples(runs[0].id) if runs else 0
            except Exception:
                stored = 0
            if stored >= 20:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(killed_db) as store:
        run_id = store.list_runs()[0].id
        before = store.count_samples(run_id)
    assert 0 < before < 200, "the kill must land mid-run"
    assert before % 10 == 0, "only whole batches are committed"
    subprocess.run([sys.executable, "-m", "tokendice", "sample", "--resume", run_id, "--db", killed_db, "--json"], check=True, capture_output=True)
    clean_db = str(tmp_path / "clean.db")
    subprocess.run(_sample_cmd(clean_db), check=True, capture_output=True)
    with Store(killed_db) as a, Store(clean_db) as b:
        resumed = [(s.sample_id, s.tokens) for s in a.samples(run_id)]
        clean = [(s.sample_id, s.tokens) for s in b.samples(b.list_runs()[0].id)]
        assert a.get_run(run_id).status == "complete"
    assert len(resumed) == 200 and resumed == clean
