"""Browser tests: Playwright (the PyPI wheel) driving Debian's chromium-headless-shell.

`make setup-test` installs the browser (never `playwright install`: its download fails on
machines without internet). Every page is opened from disk; every request it makes and every
console message is recorded, so a test can assert that nothing left `file://` and nothing
went wrong. Screenshots go to build/screenshots/<test name>/.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"


def browser_path() -> str:
    path = shutil.which("chromium-headless-shell")
    if path is None:
        pytest.fail("the browser tests need chromium-headless-shell: run `make setup-test` "
                    "(or apt-get install chromium-headless-shell)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser_path(), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@dataclass
class Opened:
    """A page opened in the browser, with what it asked for and what it logged."""

    page: Any
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    shots: Path | None = None

    def screenshot(self, name: str, **options: Any) -> Path:
        assert self.shots is not None
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=options.pop("full_page", True), **options)
        return path

    def assert_clean(self) -> None:
        """No request left file://, no console error, no script ran a dialog."""
        outside = [r for r in self.requests if not r.startswith(("file://", "data:", "about:"))]
        assert outside == [], f"requests that left the page: {outside}"
        assert self.errors == [], f"page errors: {self.errors}"
        assert [c for c in self.console if c.startswith("error")] == [], self.console
        assert self.dialogs == [], f"a script ran: {self.dialogs}"


@pytest.fixture
def open_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """`open_page(path_or_url, width=1100)`: the page loaded, with its requests and console recorded."""
    contexts = []
    shots = SHOTS / request.node.name.replace("/", "_").replace("[", "-").replace("]", "")

    def open_(target: Any, width: int = 1100, height: int = 900) -> Opened:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        opened = Opened(page, shots=shots)
        page.on("request", lambda r: opened.requests.append(r.url))
        page.on("console", lambda m: opened.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: opened.errors.append(str(e)))
        page.on("dialog", lambda d: (opened.dialogs.append(d.message), d.dismiss()))
        url = target if str(target).startswith(("file://", "http://", "https://")) else Path(target).resolve().as_uri()
        page.goto(url)
        return opened

    yield open_
    for context in contexts:
        context.close()
