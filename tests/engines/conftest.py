"""Session fixtures for engine tests: the embedded model in the llama.cpp engine, and a
real OpenAI-compatible server (llama-cpp-python's) on 127.0.0.1. (`hf_engine` comes
from tests/conftest.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

SERVER_MODEL = "smollm2-135m"
STARTUP_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaCppServer:
    """A llama-cpp-python server process on the embedded GGUF, on a free loopback port."""

    def __init__(self, gguf: Path, threads: int = 1, port: int | None = None) -> None:
        self.port = port or free_port()  # a port: restart a stopped server where it was
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = tempfile.NamedTemporaryFile(prefix="tokendice-llamacpp-server-", suffix=".log", delete=False)
        # One thread: deterministic, and no llama.cpp thread stalls on a busy 2-core machine.
        # Fixed seed; logits_all for logprobs; no prompt cache across requests.
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(gguf), "--model_alias", SERVER_MODEL,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--logits_all", "true", "--n_threads", str(threads), "--n_threads_batch", str(threads),
            "--seed", "0", "--cache", "false", "--verbose", "false",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server not ready after {STARTUP_TIMEOUT:g} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.log.closed:
            self.log.close()
            os.unlink(self.log.name)


def _require_llama_cpp() -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        pytest.skip("llama_cpp is not importable: pip install 'tokendice[llamacpp,server]' (CI installs it)")


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    from tokendice.engines.embedded import gguf_path

    return gguf_path()


@pytest.fixture(scope="session")
def start_llamacpp_server(embedded_gguf: Path) -> Callable[..., LlamaCppServer]:
    """A factory for extra, short-lived servers (tests that kill one; they stop it).
    `port=` restarts one on the port of a stopped one."""
    _require_llama_cpp()
    return lambda port=None: LlamaCppServer(embedded_gguf, port=port)


@pytest.fixture(scope="session")
def llamacpp_server(embedded_gguf: Path) -> Iterator[str]:
    """Base URL (".../v1") of a llama-cpp-python server on the embedded model, named SERVER_MODEL."""
    _require_llama_cpp()
    server = LlamaCppServer(embedded_gguf)
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llamacpp_engine():  # type: ignore[no-untyped-def]
    _require_llama_cpp()
    from tokendice.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(threads=1)
