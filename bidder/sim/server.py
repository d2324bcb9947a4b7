"""The emulator's HTTP front: RunPod's wire behaviour on 127.0.0.1.

    POST /graphql      {"query", "variables", "operationName"}; Bearer auth as RunPod does it:
                       wrong key -> 401, no key -> anonymous (gpuTypes readable, myself null,
                       pod queries and mutations refused), malformed document or unknown field
                       -> 400, business refusals -> 200 with `errors`.
    /api/v0/..., /api/v1/instances/   Vast's REST API (`vast_routes`): same key, same clock
    POST /sim/advance  {"seconds": N} -> {"now": iso}   (moves the virtual clock)
    GET  /sim/now      -> {"now": iso}
    GET  /sim/pods     -> {"now": iso, "pods": [{id, name, ..., billed, running_hours, interruptions}],
                           "vast_instances": [{id, label, ..., billed, running_hours, interruptions}]}
                          (the emulator's own account of every pod, billed up to now)

Every answer, on every route (added ones too: the header is written in `end_headers`, the one
place all responses pass), carries `X-Bidder-Sim-Now: <ISO UTC>`, the virtual time. RunPod never
sends it, so a client that sees it knows it talks to the emulator and takes its clock
(`bidder.clock`).

A stdlib ThreadingHTTPServer with HTTP/1.1 keep-alive. Every open connection is tracked so that
`close()` can shut them down and join every handler thread: nothing outlives the emulator.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote_plus, urlsplit

from graphql import GraphQLError, GraphQLSyntaxError, OperationDefinitionNode, execute_sync, parse, validate

from bidder.clock import SIM_NOW_HEADER
from bidder.errors import ConfigError
from bidder.sim import vast_routes
from bidder.sim.clock import MAX_ADVANCE_S
from bidder.sim.faults import FaultInjector, MalformedRules
from bidder.sim.resolvers import CREATE_MUTATIONS, build_schema, context_for
from bidder.sim.vast_world import VastWorld
from bidder.sim.world import World
from bidder.units import to_iso

__all__ = ["INTERNAL_ERROR_TEXT", "SIM_NOW_HEADER", "EmulatorHTTPServer", "ServedEmulator"]

log = logging.getLogger(__name__)

INTERNAL_ERROR_TEXT = "Something went wrong. Please try again later or contact support."
_HTML_429 = (b"<html><head><title>429 Too Many Requests</title></head><body><center><h1>429 Too Many "
             b"Requests</h1></center><hr><center>cloudflare</center></body></html>\n")
_MAX_BODY = 1 << 20
# graphql-core quotes names as 'X'; RunPod's server (graphql-js) as "X". Clients match on the text.
# A query parameter of a logged request line: its name is compared decoded (api%5Fkey is api_key too).
_QUERY_PARAM = re.compile(r"([?&])([^=&\s]*)=([^&\s]*)")
_QUOTED_NAME = re.compile(r"'([$A-Za-z_][\w$!.\[\]]*)'")


def _scrub_key(match: re.Match[str]) -> str:
    """A query parameter as logged: an API key's value (its name in any case or %-encoding) is ***."""
    sep, name, _value = match.groups()
    return f"{sep}{name}=***" if unquote_plus(name).lower() == "api_key" else match.group(0)


class ServedEmulator(Protocol):
    """What the HTTP front needs of the emulator it serves (`bidder.sim.Emulator` is one). A protocol
    here, so that the server never imports the emulator that imports it."""

    api_key: str
    world: World
    vast: VastWorld
    fault_injector: FaultInjector | None
    malformed: MalformedRules

    @property
    def now(self) -> datetime: ...

    @property
    def spot_enabled(self) -> bool: ...

    @property
    def spot_fields(self) -> bool: ...

    def advance(self, seconds: float) -> datetime: ...


class _Drop(Exception):
    """Close the connection without answering."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorHTTPServer
    server_version = "bidder-sim"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle plus delayed ACKs
        # add ~40 ms to every keep-alive answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line may carry ?api_key=...: keep keys out of logs.
        scrubbed = tuple(_QUERY_PARAM.sub(_scrub_key, a) if isinstance(a, str) else a for a in args)
        log.debug("%s " + format, self.address_string(), *scrubbed)

    def end_headers(self) -> None:
        # Every response passes here (also send_error's): the virtual time goes out with each one.
        self.send_header(SIM_NOW_HEADER, to_iso(self.server.emulator.now))
        super().end_headers()

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _sim(self, status: int, payload: Any) -> None:
        # bidder's own routes end their JSON with a newline, so `curl` output reads well in a shell.
        self._send(status, json.dumps(payload).encode() + b"\n")

    def _errors(self, status: int, *messages: str, code: str | None = None) -> None:
        errors = [{"message": m, **({"extensions": {"code": code}} if code else {})} for m in messages]
        self._json(status, {"errors": errors})

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > _MAX_BODY:
            self.close_connection = True
            raise ValueError("a JSON body with a Content-Length (at most 1 MiB) is required")
        return self.rfile.read(int(length))

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- routes --------------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if vast_routes.is_vast_path(path):
            self._vast_safely("GET", b"")
        elif path == "/sim/now":
            self._sim(200, {"now": to_iso(self.server.emulator.now)})
        elif path == "/sim/pods":
            emulator = self.server.emulator
            self._sim(200, {"now": to_iso(emulator.world.now), "pods": emulator.world.account(),
                            "vast_instances": emulator.vast.account()})
        elif path == "/graphql":
            self._errors(405, "use POST for /graphql")
        else:
            self._errors(404, f"no route {path}")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            body = self._body()
        except ValueError as exc:
            self._errors(400, str(exc))
            return
        try:
            if vast_routes.is_vast_path(path):
                self._vast("POST", body)
            elif path == "/graphql":
                self._graphql(body)
            elif path == "/sim/advance":
                self._advance(body)
            else:
                self._errors(404, f"no route {path}")
        except _Drop:
            self._drop()

    def do_PUT(self) -> None:
        self._vast_with_body("PUT")

    def do_DELETE(self) -> None:
        self._vast_with_body("DELETE")

    def _vast_with_body(self, method: str) -> None:
        path = urlsplit(self.path).path
        if not vast_routes.is_vast_path(path):
            self._errors(404, f"no route {method} {path}")
            return
        body = b""
        if self.headers.get("Content-Length") not in (None, "0"):
            try:
                body = self._body()
            except ValueError as exc:
                self._json(400, {"success": False, "error": "invalid_args", "msg": str(exc)})
                return
        self._vast_safely(method, body)

    def _vast_safely(self, method: str, body: bytes) -> None:
        try:
            self._vast(method, body)
        except _Drop:
            self._drop()

    def _vast(self, method: str, body: bytes) -> None:
        """Vast's REST routes: faults as Vast shows them (429 without Retry-After), then auth."""
        emu = self.server.emulator
        parts = urlsplit(self.path)
        injector = emu.fault_injector
        fault = injector.draw() if injector is not None else None
        if fault == "429":
            self._json(429, {"detail": vast_routes.RATE_LIMIT_TEXT})
            return
        if fault in ("500", "internal"):
            self._json(500, {"success": False, "error": "server_error", "msg": "Internal Server Error"})
            return
        if fault == "drop":
            raise _Drop
        if fault == "timeout":
            self.server.stopping.wait(injector.spec.timeout_delay)  # type: ignore[union-attr]
            if self.server.stopping.is_set():
                raise _Drop
        authenticated = self._auth()
        if authenticated is None:
            self._json(401, {"success": False, "error": "invalid_user_key", "msg": "Invalid API key."})
            return
        rule = emu.malformed.take([vast_routes.operation(method, parts.path)]) if emu.malformed else None
        if rule is not None and not rule.execute:
            self._send(rule.status, rule.render(None), rule.content_type, rule.headers)
            return
        status, payload = vast_routes.answer(emu, method, parts.path, parse_qs(parts.query), body, authenticated)
        if (injector is not None and status == 200 and vast_routes.is_create(method, parts.path)
                and injector.lose_create()):
            raise _Drop  # executed, but the answer is lost on the way
        if rule is not None:
            self._send(rule.status, rule.render(payload), rule.content_type, rule.headers)
            return
        self._json(status, payload)

    def _advance(self, body: bytes) -> None:
        try:
            seconds = json.loads(body or b"{}").get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_ADVANCE_S:
                raise ValueError
        except (ValueError, AttributeError):
            self._errors(400, f'give {{"seconds": N}} with N a number from 0 to {MAX_ADVANCE_S} (366 days)')
            return
        try:
            moved = self.server.emulator.advance(seconds)
        except ConfigError as exc:  # past the last date the clock can hold
            self._errors(400, str(exc))
            return
        self._sim(200, {"now": to_iso(moved)})

    def _auth(self) -> bool | None:
        """True = the right key, False = no key, None = a wrong key."""
        emu = self.server.emulator
        header = self.headers.get("Authorization")
        query_key = parse_qs(urlsplit(self.path).query).get("api_key", [None])[0]
        if header is None and query_key is None:
            return False
        if header is not None:
            scheme, _, key = header.partition(" ")
            if scheme.lower() != "bearer" or key.strip() != emu.api_key:
                return None
        if query_key is not None and query_key != emu.api_key:
            return None
        return True

    def _graphql(self, body: bytes) -> None:
        emu = self.server.emulator
        injector = emu.fault_injector
        fault = injector.draw() if injector is not None else None
        if fault == "429":
            headers = {"Retry-After": f"{injector.spec.retry_after:g}"}  # type: ignore[union-attr]
            if injector.html():  # type: ignore[union-attr]
                self._send(429, _HTML_429, "text/html", headers)
            else:
                self._json(429, {"errors": [{"message": "Too Many Requests"}]}, headers)
            return
        if fault == "500":
            self._errors(500, INTERNAL_ERROR_TEXT, code="INTERNAL_SERVER_ERROR")
            return
        if fault == "internal":
            self._json(200, {"data": None, "errors": [{"message": INTERNAL_ERROR_TEXT,
                                                       "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]})
            return
        if fault == "drop":
            raise _Drop
        if fault == "timeout":
            self.server.stopping.wait(injector.spec.timeout_delay)  # type: ignore[union-attr]
            if self.server.stopping.is_set():
                raise _Drop

        authenticated = self._auth()
        if authenticated is None:
            self._errors(401, "Unauthorized: the API key is invalid", code="UNAUTHENTICATED")
            return
        try:
            request = json.loads(body)
            if not isinstance(request, dict) or not isinstance(request.get("query"), str):
                raise ValueError
            variables = request.get("variables") or {}
            if not isinstance(variables, dict):
                raise ValueError
        except ValueError:
            self._errors(400, 'the body must be JSON: {"query": "...", "variables": {...}}')
            return
        schema = build_schema(emu.spot_enabled, emu.spot_fields)
        try:
            document = parse(request["query"])
        except GraphQLSyntaxError as exc:
            self._json(400, {"errors": [_requoted(exc)]})
            return
        problems = validate(schema, document)
        if problems:
            self._json(400, {"errors": [_requoted(e) for e in problems]})
            return
        mutations = _mutations(document)
        late, slow = injector.late(mutations) if injector is not None and mutations else (None, None)
        if late is not None:  # executed only after the wait: a client that gave up sees nothing yet
            self.server.stopping.wait(injector.spec.late_delay)  # type: ignore[union-attr]
            if self.server.stopping.is_set():
                raise _Drop
        rule = emu.malformed.take(_names(document)) if emu.malformed else None
        if rule is not None and not rule.execute:
            self._send(rule.status, rule.render(None), rule.content_type, rule.headers)
            return
        with emu.world.lock:
            result = execute_sync(schema, document, variable_values=variables,
                                  operation_name=request.get("operationName"),
                                  context_value=context_for(emu.world, authenticated))
        if result.data is None and result.errors:  # bad variables or operation name: never executed
            self._json(400, {"errors": [_requoted(e) for e in result.errors]})
            return
        if injector is not None and mutations & CREATE_MUTATIONS and injector.lose_create():
            raise _Drop  # executed, but the answer is lost on the way
        if slow is not None:  # executed; the answer comes late (or never, to a client that gave up)
            self.server.stopping.wait(injector.spec.late_delay)  # type: ignore[union-attr]
            if self.server.stopping.is_set():
                raise _Drop
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [_format(e) for e in result.errors]
        if rule is not None:
            self._send(rule.status, rule.render(payload), rule.content_type, rule.headers)
            return
        self._json(200, payload)


def _requoted(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    formatted["message"] = _QUOTED_NAME.sub(r'"\1"', str(formatted["message"]))
    return formatted


def _format(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    if original is not None and not hasattr(original, "extensions"):
        # A bug of the emulator's own, not a business answer: say so as RunPod would, and log it.
        log.error("emulator resolver failed", exc_info=original)
        formatted = {**formatted, "message": INTERNAL_ERROR_TEXT, "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
    return formatted


def _names(document: Any) -> set[str]:
    """The operation names and top-level field names of a document (what a malformed rule matches)."""
    names: set[str] = set()
    for node in document.definitions:
        if isinstance(node, OperationDefinitionNode):
            if node.name is not None:
                names.add(node.name.value)
            for selection in node.selection_set.selections:
                name = getattr(getattr(selection, "name", None), "value", None)
                if name:
                    names.add(name)
    return names


def _mutations(document: Any) -> set[str]:
    """The mutation fields a document calls (e.g. {"podStop"})."""
    out: set[str] = set()
    for node in document.definitions:
        if isinstance(node, OperationDefinitionNode) and node.operation.value == "mutation":
            for selection in node.selection_set.selections:
                name = getattr(getattr(selection, "name", None), "value", None)
                if name:
                    out.add(name)
    return out


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Serves one Emulator. Handler threads are daemons and tracked; `close()` ends them all."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator: ServedEmulator, port: int = 0) -> None:
        self.emulator = emulator
        self.stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                  name="bidder-sim-request", daemon=True)
        with self._conn_lock:
            self._handler_threads = {t for t in self._handler_threads if t.is_alive()}
            self._handler_threads.add(thread)
        thread.start()

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conn_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-answer (e.g. after its own timeout) is normal here.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        with self._conn_lock:
            conns, threads = list(self._conns), list(self._handler_threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/graphql"

    @property
    def vast_url(self) -> str:
        """Vast's base URL on this server (the client appends /api/v0/...)."""
        return f"http://127.0.0.1:{self.server_address[1]}"
