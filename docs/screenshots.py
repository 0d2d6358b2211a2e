"""Draw the README's pictures: reports of real runs on the embedded model, screenshotted in
chromium-headless-shell. Run by hand: `.venv/bin/python docs/screenshots.py` (about a minute)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import tokendice as td

DOCS = Path(__file__).resolve().parent
PROMPT = "The capital of France is"


def shoot(path: Path, name: str, height: int = 1100, selector: str | None = None) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium-headless-shell"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1040, "height": height})
        page.goto(path.resolve().as_uri())
        target = page.locator(selector).first if selector else page
        target.screenshot(path=str(DOCS / name), **({} if selector else {"full_page": False}))
        browser.close()


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="tokendice-docs-"))
    db = str(work / "docs.db")
    t = td.trace(PROMPT, params=td.NOTEBOOK_PARAMS, seed=42, db=db)
    shoot(t.save_html(work / "trace.html"), "report-trace.png", height=980)
    run = td.sample(PROMPT, n=1000, params=td.NOTEBOOK_PARAMS.with_(max_new_tokens=8), method="branching", seed=42,
                    at_prefix=" Paris.", db=db)
    shoot(run.save_html(work / "sample.html"), "report-sample.png", height=1250)
    shift = td.perturb(PROMPT, variants=["whitespace.trailing_space", "case.lower", "punct.question", "quotes.double"],
                       max_new_tokens=4, samples=200, db=db)
    shoot(shift.save_html(work / "perturb.html"), "report-perturb.png", height=1150)
    seven = "Q: What is 7 plus 5?\nA: 7 plus 5 is"
    run7 = td.sample(seven, n=200, max_new_tokens=3, top_k=5, seed=0, db=db)
    exact7 = td.enumerate_completions(seven, max_new_tokens=3, top_k=5, max_nodes=400, db=db)
    shoot(td.answers(run7, "number", exact=exact7).save_html(work / "answers.html"), "report-answers.png", height=900)
    shoot(td.semantic(run7, extract="number", exact=exact7).save_html(work / "semantic.html"), "report-semantic.png", height=1250)
    print(f"wrote {', '.join(p.name for p in sorted(DOCS.glob('report-*.png')))} (runs in {db})")


if __name__ == "__main__":
    main()
