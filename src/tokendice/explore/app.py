"""The explorer's HTTP routes: a Starlette app over one `Explorer` (tokendice.api).

Security, for a server that runs a model on the user's machine:
- it binds to 127.0.0.1 unless told otherwise (see serve.py);
- a request whose Host header is not a loopback name (or the host it was told to serve) is
  refused with 400: a web page elsewhere cannot reach it through DNS rebinding;
- a request that changes something must come from the explorer's own page: JSON only (so a
  foreign page's form or simple request cannot send it), and an Origin header, when the
  browser sends one, must be the explorer's own;
- model text reaches the page only as text (JSON, or HTML escaped by the views), and the
  page's Content-Security-Policy allows no script but its own file.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tokendice.errors import TokendiceError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def asset(name: str) -> str:
    return resources.files("tokendice.explore").joinpath("static", name).read_text(encoding="utf-8")


class LocalOnly:
    """Refuse a request whose Host is not one this server answers to (DNS rebinding), and a
    request that changes something unless it is JSON from the explorer's own page."""

    def __init__(self, app: ASGIApp, hosts: tuple[str, ...]) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if _hostname(headers.get("host", "")) not in self.hosts:
            await JSONResponse({"error": "refused: unknown Host (the explorer answers to loopback names only)"}, 400)(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            origin = headers.get("origin")
            json_body = headers.get("content-type", "").split(";")[0].strip() == "application/json"
            if not json_body or (origin is not None and _hostname(origin.split("://", 1)[-1]) not in self.hosts):
                await JSONResponse({"error": "refused: not a request from the explorer's page"}, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _hostname(host: str) -> str | None:
    try:
        return urlsplit("//" + host).hostname
    except ValueError:
        return None


def build_app(explorer: Any, hosts: tuple[str, ...] = LOOPBACK) -> Starlette:
    """The explorer app over a live `tokendice.api.Explorer`."""
    from tokendice.explore import views

    state = {"explorer": explorer}

    def current() -> Any:
        return state["explorer"]

    async def page(request: Request) -> Response:
        from tokendice.render.report.page import STYLE

        html = (asset("explorer.html").replace("{{title}}", _escape(f"tokendice explore · {current().tree.prompt}"))
                .replace("{{report_style}}", STYLE))  # the report views' own style, for their HTML
        return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        kinds = {"explorer.js": "text/javascript", "explorer.css": "text/css"}
        if name not in kinds:
            return JSONResponse({"error": "not found"}, 404)
        return Response(asset(name), media_type=kinds[name], headers={"X-Content-Type-Options": "nosniff"})

    async def tree(request: Request) -> Response:
        return await _call(lambda: views.state(current()))

    async def branch(request: Request) -> Response:
        return await _call(lambda: views.branch(current(), _int(request.path_params["branch"], "branch")))

    async def step(request: Request) -> Response:
        q = request.query_params
        return await _call(lambda: views.step(current(), _int(q.get("branch"), "branch"), _int(q.get("step"), "step")))

    async def params(request: Request) -> Response:
        body = await _json(request)
        return await _call(lambda: {"params": current().set_params(**body).to_dict()})

    async def sample(request: Request) -> Response:
        body = await _json(request)
        return await _call(lambda: views.sample(current(), _int(body.get("branch"), "branch"), _int(body.get("step"), "step"),
                                                       _int(body.get("n", 100), "n")))

    async def fork(request: Request) -> Response:
        body = await _json(request)
        args = (_int(body.get("branch"), "branch"), _int(body.get("step"), "step"), _int(body.get("token_id"), "token_id"))
        return await _stream(lambda on_step: views.fork(current(), *args, on_step=on_step))

    async def export(request: Request) -> Response:
        data = current().tree.to_json()
        return Response(data, media_type="application/json",
                        headers={"Content-Disposition": 'attachment; filename="tokendice-tree.json"'})

    async def import_(request: Request) -> Response:
        body = await _json(request)

        def reopen() -> dict[str, Any]:
            state["explorer"] = views.reopen(current(), body)
            return views.state(current())

        return await _call(reopen)

    routes = [
        Route("/", page), Route("/static/{name}", static), Route("/api/tree", tree), Route("/api/branch/{branch}", branch),
        Route("/api/step", step), Route("/api/params", params, methods=["POST"]), Route("/api/sample", sample, methods=["POST"]),
        Route("/api/fork", fork, methods=["POST"]), Route("/api/export", export), Route("/api/import", import_, methods=["POST"]),
    ]  # fmt: skip
    names = tuple(h.strip("[]").lower() for h in hosts)
    return Starlette(routes=routes, middleware=[Middleware(LocalOnly, hosts=names)],
                     exception_handlers={TokendiceError: _error, Exception: _crash})  # type: ignore[dict-item]


async def _error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, 400)


async def _crash(request: Request, exc: Exception) -> Response:
    """A bug, not a user mistake: the page still gets a readable message (the server logs the traceback)."""
    return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, 500)


async def _call(fn: Callable[[], Any]) -> Response:
    """Run `fn` in a thread (the model works there); a tokendice error becomes a 400 (`_error`)."""
    return JSONResponse(await run_in_threadpool(fn))


async def _stream(run: Callable[[Callable[[Any], None]], Any]) -> Response:
    """NDJSON lines: one per step as the model decodes it, then the new branch (or an error).
    A request that fails before its first step (bad input) is a 400 with the message, like
    the other routes; a failure later is the stream's last line."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def on_step(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, {"type": "step", **item})

    def work() -> None:
        try:
            done = run(on_step)
            loop.call_soon_threadsafe(queue.put_nowait, {"type": "done", **done})
        except TokendiceError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, {"type": "error", "error": str(exc), "user": True})
        except BaseException as exc:  # keep the server up; say what failed
            loop.call_soon_threadsafe(queue.put_nowait, {"type": "error", "error": f"{type(exc).__name__}: {exc}"})

    task = loop.run_in_executor(None, work)
    first = await queue.get()
    if first["type"] == "error":
        await task
        return JSONResponse({"error": first["error"]}, 400 if first.get("user") else 500)

    async def lines() -> AsyncIterator[bytes]:
        item = first
        while True:
            item.pop("user", None)
            yield (json.dumps(item, ensure_ascii=False) + "\n").encode("utf-8")
            if item["type"] != "step":
                break
            item = await queue.get()
        await task

    return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        from tokendice.errors import ParameterError

        raise ParameterError("the request body must be a JSON object")
    return body


def _int(value: Any, name: str) -> int:
    from tokendice.errors import ParameterError

    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be an integer, got {value!r}", param=name) from None


def _escape(text: str) -> str:
    from html import escape

    return escape(text)
