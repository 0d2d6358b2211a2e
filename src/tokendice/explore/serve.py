"""Serve the explorer: uvicorn on a loopback address (unless told otherwise), one engine loaded."""

from __future__ import annotations

import socket
import sys
from typing import Any

from tokendice.errors import ParameterError
from tokendice.explore.app import LOOPBACK, build_app


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve(explorer: Any, host: str = "127.0.0.1", port: int | None = None, announce: Any = None) -> None:
    """Run the explorer until interrupted. A host other than a loopback address is served only when
    asked for, and then answers to that host name too."""
    import uvicorn

    if port is not None and not (isinstance(port, int) and 0 < port < 65536):
        raise ParameterError(f"port must be in [1, 65535], got {port!r}", param="port")
    port = port or free_port(host)
    hosts = LOOPBACK if host in LOOPBACK else (*LOOPBACK, host)
    app = build_app(explorer, hosts)
    shown = f"[{host}]" if ":" in host else host
    (announce or (lambda text: print(text, file=sys.stderr, flush=True)))(f"tokendice explore: http://{shown}:{port}/  (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
