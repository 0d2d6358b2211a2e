"""The example notebook (examples/seed-notebook.ipynb, the seed notebook's plan done with tokendice)
runs from top to bottom in a real Jupyter kernel, and its results draw as HTML with their charts."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "seed-notebook.ipynb"


def test_the_notebook_is_committed_without_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.model
def test_the_notebook_runs_and_its_results_draw_as_html(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("TOKENDICE_DB", str(tmp_path / "notebook.db"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    html = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.outputs if "text/html" in o.get("data", {})]
    assert len(html) >= 8  # the trace, the sample run, the enumeration, the audit, the perturbation, answers, meaning, the runs
    assert any("Answers" in h and "paris" in h for h in html) and any("Semantic entropy" in h for h in html)
    assert all("<script" not in h for h in html)
    assert sum("<svg" in h for h in html) >= 4  # charts, inline
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
