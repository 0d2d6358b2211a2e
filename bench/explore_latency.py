"""Benchmark: the explorer's click-to-first-token latency, over HTTP as the page does it.

Run by hand (not in CI):

    python bench/explore_latency.py                # 20 clicks, the notebook's sampler, 20 new tokens
    python bench/explore_latency.py --clicks 50

Starts `tokendice explore PROMPT --port P` (the embedded SmolLM2-135M, the notebook's sampler)
as a subprocess, exactly as a user would, with its own temporary run store. Then N clicks:
each picks a branch of the tree, a step of it and one of the step's alternative tokens (GET
/api/step first, as the page does when a step is selected: not timed), and POSTs /api/fork the
way the page does (JSON, same Origin). Timed from sending the POST to reading
  - the forced token's line (the token clicked: the fork has rewound the branch's KV cache,
    fed the prefix's last token and scored the step), and
  - the first *generated* token's line (one decode step more: what the target is about),
then the stream is read to its end (the whole continuation). With --browser N, N more clicks
are made in the page itself (Playwright and chromium-headless-shell, as in the browser tests):
a candidate row is clicked and the page's own clock times the moment the forced token and the
first generated token are put on screen. Prints median/min/max, the machine's load, and writes
bench/results/explore_latency.json.

    python bench/explore_latency.py --browser 10
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tokendice.params import NOTEBOOK_PARAMS

PROMPT = "The capital of France is"
TARGET_S = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """The page's requests, over one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.origin = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> Any:
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
        return json.loads(body)

    def fork(self, branch: int, step: int, token_id: int) -> dict[str, Any]:
        body = json.dumps({"branch": branch, "step": step, "token_id": token_id})
        start = time.perf_counter()
        self.conn.request("POST", "/api/fork", body=body, headers={"Content-Type": "application/json", "Origin": self.origin})
        r = self.conn.getresponse()
        if r.status != 200:
            raise RuntimeError(f"POST /api/fork: {r.status} {r.read()[:300]!r}")
        lines: list[tuple[float, dict[str, Any]]] = []
        while True:
            line = r.readline()
            if not line:
                break
            if line.strip():
                lines.append((time.perf_counter() - start, json.loads(line)))
                if lines[-1][1]["type"] != "step":
                    break
        r.read()
        steps = [(t, item) for t, item in lines if item["type"] == "step"]
        last = lines[-1][1]
        if last["type"] != "done":
            raise RuntimeError(f"the fork failed: {last}")
        return {
            "branch": branch, "step": step, "token_id": token_id, "new_branch": last["branch"]["id"],
            "forced_s": steps[0][0], "first_generated_s": steps[1][0] if len(steps) > 1 else None,
            "total_s": lines[-1][0], "tokens": len(steps),
        }  # fmt: skip


def start_explorer(port: int, db: str, max_new_tokens: int) -> subprocess.Popen:
    p = NOTEBOOK_PARAMS
    cmd = [sys.executable, "-m", "tokendice", "explore", PROMPT, "--port", str(port), "--db", db,
           "--temperature", str(p.temperature), "--top-k", str(p.top_k), "--top-p", str(p.top_p),
           "--repetition-penalty", str(p.repetition_penalty), "--no-repeat-ngram-size", str(p.no_repeat_ngram_size),
           "--max-new-tokens", str(max_new_tokens), "--seed", "42"]  # fmt: skip
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)


def wait_ready(server: subprocess.Popen, port: int, timeout: float = 300) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"the explorer exited: {server.stderr.read() if server.stderr else ''}")
        try:
            Client(port).get("/api/tree")
            return time.perf_counter() - start
        except (OSError, RuntimeError, http.client.HTTPException):
            time.sleep(0.2)
    raise RuntimeError("the explorer did not start")


def pick(client: Client, rng: random.Random, max_new_tokens: int) -> tuple[int, int, int]:
    """A click a user might make: some branch, some step of it (one that leaves a token to
    generate), one of the alternatives the sampler keeps there (any, when it keeps only one)."""
    tree = client.get("/api/tree")
    branch = rng.choice(tree["branches"])
    step = rng.randrange(0, min(branch["n_tokens"], max_new_tokens - 1))
    view = client.get(f"/api/step?branch={branch['id']}&step={step}")
    kept = [c for c in view["candidates"][1:] if c["sampling_prob"] > 0]
    others = kept or view["candidates"][1:]
    return branch["id"], step, rng.choice(others)["token_id"]


WATCH = """() => {
  window.__seen = [];
  new MutationObserver((changes) => {
    for (const c of changes) for (const n of c.addedNodes)
      if (n.classList && n.classList.contains("ex-tok")) window.__seen.push(performance.now());
  }).observe(document.getElementById("ex-trace"), {childList: true, subtree: true});
}"""
CLICK = """(selector) => { window.__seen = []; window.__t0 = performance.now(); document.querySelector(selector).click(); }"""


def browser_clicks(port: int, n: int, rng: random.Random, max_new_tokens: int) -> list[dict[str, Any]]:
    """Clicks in the page: select a branch and a step, click an alternative; the page's clock
    from the click to each streamed token's element being added to the page."""
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium-headless-shell")
    if path is None:
        raise SystemExit("--browser needs chromium-headless-shell (make setup-test)")
    clicks = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("body[data-ready=true]")
        page.evaluate(WATCH)
        for _ in range(n):
            nodes = page.locator(".ex-node")
            branch = rng.randrange(nodes.count())
            page.locator(f'.ex-node[data-branch="{branch}"]').click()
            page.wait_for_selector("body[data-idle=true]")
            page.locator(".ex-branch h2", has_text=f"Branch {branch}").wait_for()
            tokens = page.locator("#ex-trace .td-tokens.td-by-model a[data-step]").count()
            step = rng.randrange(0, min(tokens, max_new_tokens - 1))
            page.locator(f'#ex-trace .td-tokens.td-by-model a[data-step="{step}"]').click()
            page.wait_for_selector("body[data-idle=true]")
            page.wait_for_selector(f'#ex-step[data-branch="{branch}"][data-step="{step}"]')
            rows = page.locator("#ex-step .ex-candidates tr.td-forkable:not(.td-chosen):not(.td-removed)")
            if rows.count() == 0:
                rows = page.locator("#ex-step .ex-candidates tr.td-forkable:not(.td-chosen)")
            token = rows.nth(rng.randrange(rows.count())).get_attribute("data-token")
            before = nodes.count()
            page.evaluate(CLICK, f'#ex-step .ex-candidates tr.td-forkable[data-token="{token}"]')
            page.locator(".ex-node").nth(before).wait_for(timeout=120000)
            page.locator("#ex-step .ex-done").wait_for(timeout=120000)
            t0, seen = page.evaluate("() => [window.__t0, window.__seen]")
            clicks.append({"branch": branch, "step": step, "token_id": int(token), "forced_s": (seen[0] - t0) / 1000,
                           "first_generated_s": (seen[1] - t0) / 1000 if len(seen) > 1 else None, "tokens": len(seen)})  # fmt: skip
            c = clicks[-1]
            first = "-" if c["first_generated_s"] is None else f"{c['first_generated_s']:.3f}"
            print(f"page click {len(clicks):3}: branch {branch:3} step {step:2}  forced on screen {c['forced_s']:.3f} s  "
                  f"first generated {first} s")  # fmt: skip
        browser.close()
    return clicks


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clicks", type=int, default=20, help="timed clicks (default 20)")
    ap.add_argument("--warmup", type=int, default=1, help="clicks before the timed ones, not counted (default 1)")
    ap.add_argument("--max-new-tokens", type=int, default=NOTEBOOK_PARAMS.max_new_tokens, help="tokens per branch (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="which clicks (default 0)")
    ap.add_argument("--browser", type=int, default=0, metavar="N", help="N more clicks in the page itself (default 0)")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    port = free_port()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tokendice-bench-") as tmp:
        server = start_explorer(port, str(Path(tmp) / "runs.db"), args.max_new_tokens)
        try:
            ready_s = wait_ready(server, port)
            client = Client(port)
            for _ in range(args.warmup):
                client.fork(*pick(client, rng, args.max_new_tokens))
            clicks = []
            for i in range(args.clicks):
                click = client.fork(*pick(client, rng, args.max_new_tokens))
                clicks.append(click)
                first = "-" if click["first_generated_s"] is None else f"{click['first_generated_s']:.3f}"
                print(f"click {i + 1:3}: branch {click['branch']:3} step {click['step']:2} token {click['token_id']:6}  "
                      f"forced {click['forced_s']:.3f} s  first generated {first} s  all {click['tokens']:2} tokens {click['total_s']:.2f} s")  # fmt: skip
            in_page = browser_clicks(port, args.browser, rng, args.max_new_tokens) if args.browser else []
        finally:
            server.terminate()
            server.wait(30)
    load_after = os.getloadavg()

    forced = summary([c["forced_s"] for c in clicks])
    generated = summary([c["first_generated_s"] for c in clicks if c["first_generated_s"] is not None])
    per_token = summary([c["total_s"] / c["tokens"] for c in clicks])
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
               "load_before": load_before, "load_after": load_after}  # fmt: skip
    print()
    print(f"tokendice explore {PROMPT!r}, embedded SmolLM2-135M (hf, float32), notebook sampler, max_new_tokens {args.max_new_tokens}; "
          f"{args.clicks} clicks over HTTP after {args.warmup} warm-up; explorer ready in {ready_s:.1f} s")  # fmt: skip
    print(f"{'from the click to':34} {'median':>8} {'min':>8} {'max':>8}")
    print(f"{'the forced token on the wire':34} {forced['median']:8.3f} {forced['min']:8.3f} {forced['max']:8.3f}")
    print(f"{'the first generated token':34} {generated['median']:8.3f} {generated['min']:8.3f} {generated['max']:8.3f}"
          f"   (target < {TARGET_S} s; {generated['n']} clicks)")  # fmt: skip
    print(f"{'(per streamed token, whole fork)':34} {per_token['median']:8.3f} {per_token['min']:8.3f} {per_token['max']:8.3f}")
    if in_page:
        shown = summary([c["forced_s"] for c in in_page])
        shown_gen = summary([c["first_generated_s"] for c in in_page if c["first_generated_s"] is not None])
        print(f"{'in the page: forced token shown':34} {shown['median']:8.3f} {shown['min']:8.3f} {shown['max']:8.3f}")
        print(f"{'in the page: first generated shown':34} {shown_gen['median']:8.3f} {shown_gen['min']:8.3f} {shown_gen['max']:8.3f}"
              f"   ({shown_gen['n']} clicks in chromium-headless-shell)")  # fmt: skip
    print(f"machine: {machine['processor']}, {machine['cpu_count']} cores, load average (1/5/15 min) "
          f"before {' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in load_after)}")  # fmt: skip
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "explore_latency.json").write_text(json.dumps({
        "prompt": PROMPT, "params": {**NOTEBOOK_PARAMS.to_dict(), "max_new_tokens": args.max_new_tokens}, "clicks": clicks,
        "warmup": args.warmup, "seed": args.seed, "ready_s": ready_s, "forced_s": forced, "first_generated_s": generated,
        "per_token_s": per_token, "target_s": TARGET_S, "machine": machine,
        "page_clicks": in_page,
        "page_forced_s": summary([c["forced_s"] for c in in_page]) if in_page else None,
        "page_first_generated_s": summary([c["first_generated_s"] for c in in_page if c["first_generated_s"] is not None]) if in_page else None,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
