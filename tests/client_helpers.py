"""Helpers for the client's tests: a request-recording httpx client (the transport seam the client
offers; nothing is patched) and a tiny real HTTP server for the few answers the emulator never gives."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from bidder.runpod import RetryPolicy, RunPodClient
from bidder.sim import Emulator

A6000 = "NVIDIA RTX A6000"
NO_RETRY = RetryPolicy(attempts=1)


class Recorder:
    """An httpx.Client that records every request it sends (URL, headers, JSON body)."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.requests: list[httpx.Request] = []
        self.http = httpx.Client(timeout=timeout, event_hooks={"request": [self.requests.append]})

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    @property
    def operations(self) -> list[str]:
        """The first top-level field of each request's document, e.g. "podRentInterruptable"."""
        out = []
        for body in self.bodies:
            query = body["query"]
            out.append(query[query.index("{") + 1:].split("(")[0].split("{")[0].strip())
        return out

    def close(self) -> None:
        self.http.close()


class FakeSleep:
    """An injectable sleep that records the waits (and may act on the emulator between sends)."""

    def __init__(self, action: Any = None) -> None:
        self.waits: list[float] = []
        self.action = action

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.action is not None:
            self.action(len(self.waits))


def make_client(emulator: Emulator, *, key: str | None = "default", recorder: Recorder | None = None,
                retry: RetryPolicy = NO_RETRY, timeout: float = 5.0) -> RunPodClient:
    api_key = emulator.api_key if key == "default" else key
    return RunPodClient(api_key=api_key, url=emulator.url, http=recorder.http if recorder else None,
                        retry=retry, timeout=timeout)


def fast_retry(attempts: int = 4, sleep: Any = None, **kwargs: Any) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base=0.01, max_delay=0.08, rng=random.Random(7),
                       sleep=sleep if sleep is not None else FakeSleep(), **kwargs)


# -- a canned-answer HTTP server (real sockets), for what the emulator cannot produce -------------

class _Canned(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CannedServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
        status, headers, body, declared = self.server.answer
        self.send_response_only(status)  # no automatic Date/Server: the test sets every header
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(declared if declared is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)
        if declared is not None:
            self.close_connection = True  # a short body: the client sees the connection end early


class CannedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Canned)
        self.answer: tuple[int, dict[str, str], bytes, int | None] = (200, {}, b"{}", None)
        self.seen: list[dict[str, str]] = []

    def set(self, status: int, body: bytes | str | dict, headers: dict[str, str] | None = None,
            declared_length: int | None = None) -> None:
        if isinstance(body, dict):
            body, headers = json.dumps(body), {"Content-Type": "application/json", **(headers or {})}
        raw = body.encode() if isinstance(body, str) else body
        self.answer = (status, headers or {"Content-Type": "text/html"}, raw, declared_length)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/graphql"


@contextmanager
def canned_server() -> Iterator[CannedServer]:
    server = CannedServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def one_line_error(result: Any) -> str:
    """The one `Error:` line a failed CLI run (click's Result) printed, checked: exit 1, no traceback."""
    assert result.exit_code == 1, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]
