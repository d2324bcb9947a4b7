"""The API key never leaks: a known key goes through every success and failure path of the client
(401, 429 JSON/HTML, 500, timeout, dropped and refused connections, a lost create, GraphQL errors,
servers that echo the key), and every log record at DEBUG, every exception's str/repr/traceback,
every repr and every dry-run print is searched for it."""

from __future__ import annotations

import logging
import socket
import traceback

import pytest
from client_helpers import A6000, NO_RETRY, Recorder, canned_server, fast_retry

from bidder.errors import BidderError
from bidder.runpod import PodSpec, RunPodClient
from bidder.sim import Emulator

SECRET = "rpa_S3CRET0KEY0THAT0MUST0NEVER0SHOW0UP0ANYWHERE0000"
SPEC = PodSpec(name="job", image_name="runpod/pytorch", gpu_type_id=A6000, cloud_type="COMMUNITY")


class Collected:
    """Everything a user or an operator could see."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.errors = 0
        self.succeeded: list[str] = []  # the calls that did not fail (to name one that should have)

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        chain: BaseException | None = exc
        while chain is not None:
            self.texts += [str(chain), repr(chain), *map(str, chain.args)]
            chain = chain.__cause__ or chain.__context__
        self.texts.append("".join(traceback.format_exception(exc)))
        for name in ("messages", "operation", "retry_after"):
            self.texts.append(repr(getattr(exc, name, None)))

    def call(self, fn, *args) -> None:
        try:
            result = fn(*args)
        except BidderError as exc:
            self.error(exc)
        else:
            self.texts.append(repr(result))
            self.succeeded.append(f"{getattr(fn, '__name__', fn)} -> {str(result)[:80]}")


@pytest.fixture
def secret_emulator():
    with Emulator(seed=0, api_key=SECRET) as emu:
        yield emu


def test_the_key_appears_nowhere(secret_emulator, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    emu = secret_emulator
    seen = Collected()
    recorder = Recorder()
    client = RunPodClient(api_key=SECRET, url=emu.url, http=recorder.http, retry=fast_retry(attempts=2))
    # The faults' client times out fast (a 0.5 s delay); the successes' has the usual timeout, which a
    # loaded CI machine needs.
    quick = RunPodClient(api_key=SECRET, url=emu.url, http=recorder.http, retry=fast_retry(attempts=2), timeout=0.2)
    # Successes (and a retry that logs).
    emu.world.set_floor(A6000, "COMMUNITY", 0.2)
    seen.texts.append(repr(client.lowest_prices((1,), ts=emu.now)))
    pod = client.rent_interruptable(SPEC, 0.3)
    seen.texts += [repr(pod), repr(client.myself()), repr(client.pods()), repr(client)]
    # Dry-run output of every mutation.
    for request in (client.build_rent_interruptable(SPEC, 0.3), client.build_deploy_on_demand(SPEC),
                    client.build_bid_resume(pod.id, 0.3, 1), client.build_resume(pod.id, 1),
                    client.build_stop(pod.id), client.build_terminate(pod.id), client.build_lowest_prices()):
        seen.texts += [request.to_json(), repr(request)]
    # Every fault the emulator can inject, on a read (retried) and on a create (sent once).
    for fault in ("429=1,html=0", "429=1,html=1", "500=1", "internal=1", "timeout=1,delay=0.5", "drop=1",
                  "lost_create=1"):
        emu.set_faults(fault)
        seen.call(quick.gpu_types)
        seen.call(quick.rent_interruptable, SPEC, 0.3)
    emu.set_faults(None)
    # GraphQL errors: no capacity, unknown pod, spot retired, a malformed document.
    emu.world.set_floor(A6000, "COMMUNITY", 5.0)
    seen.call(client.rent_interruptable, SPEC, 0.3)
    seen.call(client.terminate, "missing")
    seen.call(client.resume, pod.id, 1)
    emu.set_spot_enabled(False)
    seen.call(client.bid_resume, pod.id, 0.3, 1)
    # A wrong key (HTTP 401): the client's key is the secret, the server wants another.
    with Emulator(seed=0) as other:
        wrong = RunPodClient(api_key=SECRET, url=other.url, retry=NO_RETRY)
        seen.call(wrong.gpu_types)
        seen.call(wrong.rent_interruptable, SPEC, 0.3)
        seen.texts.append(repr(wrong))
    # A refused connection.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    seen.call(RunPodClient(api_key=SECRET, url=f"http://127.0.0.1:{port}/graphql", retry=NO_RETRY).gpu_types)
    # Servers that echo the key back in their error texts.
    with canned_server() as server:
        echo = RunPodClient(api_key=SECRET, url=server.url, retry=NO_RETRY, timeout=2)
        for status, body in ((200, {"errors": [{"message": f"bad token Bearer {SECRET}"}]}),
                             (400, f"<html>token {SECRET} rejected</html>"),
                             (500, {"errors": [{"message": f"crash for {SECRET}"}]}),
                             (200, {"data": {"gpuTypes": [{"id": "X", "memoryInGb": SECRET}]}}),
                             (401, f"<html>{SECRET}</html>"), (429, f"<html>{SECRET}</html>")):
            server.set(status, body)
            seen.call(echo.gpu_types)
        # The canned server saw the key in the header: the search below would find it if it leaked.
        assert server.seen[-1]["authorization"] == f"Bearer {SECRET}"
    assert not any(SECRET in repr(r.headers) for r in recorder.requests)  # httpx masks it in reprs
    assert recorder.requests[0].headers["Authorization"] == f"Bearer {SECRET}"  # positive control
    recorder.close()

    assert seen.errors == 26, seen.succeeded  # every path above that fails did fail
    logs = [caplog.text, *(r.getMessage() for r in caplog.records),
            *("".join(traceback.format_exception(*r.exc_info)) for r in caplog.records if r.exc_info)]
    assert any("podRentInterruptable" in t for t in logs)  # the capture did see the client's traffic
    leaks = [t for t in seen.texts + logs if SECRET in t]
    assert leaks == []
    # Not even a fragment long enough to be useful.
    assert not any(SECRET[4:24] in t for t in seen.texts + logs)


# -- a key no header may carry (a pasted line break, a space, a curly quote) ------------------------

BROKEN_KEYS = [
    ("rpa_FIRSTHALF0000\r\nSECONDHALF0000", "a line break at character 18"),
    ("rpa_FIRSTHALF0000\nSECONDHALF0000", "a line break at character 18"),
    ("rpa_FIRSTHALF0000 SECONDHALF0000", "a space or tab at character 18"),
    ("\u201crpa_FIRSTHALF0000SECONDHALF0000\u201d", "a non-ASCII character (a curly quote?) at character 1"),
]


@pytest.mark.parametrize(("key", "told"), BROKEN_KEYS)
@pytest.mark.parametrize("market", ["runpod", "vast"])
def test_a_key_no_header_may_carry_is_refused_in_one_line_without_quoting_it(emulator, tmp_path, key, told, market):
    """httpx refused such a key with the key itself in its message ("Illegal header value b'Bearer
    rpa_...\\r\\n...'"), which went to the screen and the collections table; a non-ASCII one gave a
    traceback. Now the client refuses it before any request, naming where it comes from."""
    from click.testing import CliRunner

    from bidder.cli import main

    env_name = "RUNPOD_API_KEY" if market == "runpod" else "VAST_API_KEY"
    db = tmp_path / "h.db"
    result = CliRunner(env={env_name: key, "HOME": str(tmp_path)}).invoke(
        main, ["collect", "--db", str(db), "--market", market, "--api-url", emulator.url,
               "--vast-url", emulator.vast_url])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines == [f"Error: the API key ({env_name}, or {'api_key' if market == 'runpod' else 'vast_api_key'} "
                     f"in the config file) holds {told}: copy the key again, without quotes or line breaks"], lines
    for part in ("FIRSTHALF", "SECONDHALF"):
        assert part not in result.output
        assert not db.exists() or part.encode() not in db.read_bytes()


@pytest.mark.parametrize("command", [["recommend", "--refresh", "--gpu", "A6000", "--hours", "1"], ["collect"]])
def test_a_key_in_the_api_urls_query_is_refused_and_never_printed(emulator, tmp_path, command):
    # `recommend --refresh --api-url ...?API_KEY=KEY` printed the URL, key and all, in its note.
    from click.testing import CliRunner

    from bidder.cli import main
    from bidder.sim import TEST_API_KEY
    url = f"{emulator.url}?API_KEY={SECRET}"
    result = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "HOME": str(tmp_path)}).invoke(
        main, [*command, "--db", str(tmp_path / "x.db"), "--api-url", url])
    assert result.exit_code != 0 and SECRET not in result.output + result.stderr, result.output + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "must not carry the key, a query or a fragment" in line, line


# -- a server that quotes part of the key, changes its case, or puts it in a header ------------------

def test_a_piece_of_the_key_or_the_key_in_another_case_is_masked_too():
    from bidder.runpod.errors_map import MIN_SECRET_PIECE, mask_secret

    with canned_server() as server:
        client = RunPodClient(api_key=SECRET, url=server.url, retry=NO_RETRY, timeout=2)
        for status, body, headers, shown in (
                (400, {"errors": [{"message": f"Invalid API key {SECRET[:24]}..."}]}, None, "Invalid API key ***"),
                (400, {"errors": [{"message": f"key ...{SECRET[-20:]} revoked"}]}, None, "key ...*** revoked"),
                (500, {"errors": [{"message": f"no user for {SECRET.lower()}"}]}, None, "no user for ***"),
                (200, "<html>oops</html>", {"Content-Type": f"text/html; token={SECRET}"}, "text/html; token=***")):
            server.set(status, body, headers)
            with pytest.raises(BidderError) as info:
                client.gpu_types()
            said = f"{info.value} {info.value!r} {getattr(info.value, 'messages', '')}"
            assert shown in said, said  # what the server said is there, the key's piece masked
            for piece in (SECRET[:MIN_SECRET_PIECE], SECRET[-MIN_SECRET_PIECE:], SECRET[10:10 + MIN_SECRET_PIECE]):
                assert piece.lower() not in said.lower(), said
    # Ordinary words that share a few letters with the key stay as they are.
    assert mask_secret("the key was revoked: rpa_S3C...", SECRET) == "the key was revoked: rpa_S3C..."


def test_two_keys_sharing_a_piece_are_both_masked_whole():
    """Masked one after another, the first key's mask cut the run of a second key sharing a piece with it
    (zero-padded keys do), and up to 11 of its characters stayed visible ("******EMULATOR")."""
    from bidder.runpod.errors_map import _KNOWN_SECRETS, mask_known, remember_secret

    first, second = "rpa_00000000000000000000000000000000KEYONE", "rpa_00000000000000000000000000000000EMULATOR"
    held = set(_KNOWN_SECRETS)
    try:
        remember_secret(first)
        remember_secret(second)
        shown = mask_known(f"a={first} b={second} c={second.lower()}")
        assert shown == "a=*** b=*** c=***", shown
        assert "EMULATOR" not in shown.upper() and "KEYONE" not in shown.upper()
    finally:
        _KNOWN_SECRETS.clear()
        _KNOWN_SECRETS.update(held)


def test_debug_logging_masks_the_key_in_headers_a_server_echoes(tmp_path):
    """`bidder -vv`: httpcore logs every response header as sent; one echoing the key printed it."""
    import subprocess
    import sys

    with canned_server() as server:
        server.set(429, "<html>slow</html>", {"Retry-After": "1", "X-Echo": f"Bearer {SECRET}"})
        env = {"RUNPOD_API_KEY": SECRET, "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, "-m", "bidder", "-vv", "collect", "--market", "runpod",
                               "--retries", "1", "--db", str(tmp_path / "x.db"), "--api-url", server.url],
                              capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "X-Echo" in done.stderr or "x-echo" in done.stderr, done.stderr[-2000:]  # the header was logged
    assert SECRET not in done.stderr and SECRET[4:16] not in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("url", [f"api.runpod.io/graphql?api_key={SECRET}",          # no scheme, a query
                                 f"http://127.0.0.1:9/graphql;api_key={SECRET}",     # ;parameters
                                 f"http://127.0.0.1:9/{SECRET}/graphql",             # the key in the path
                                 f"http://[::1:9/graphql?api_key={SECRET}"])         # not a URL at all
@pytest.mark.parametrize("market", ["runpod", "vast"])
def test_a_url_that_carries_the_key_or_is_no_url_is_one_line_that_never_quotes_it(tmp_path, url, market):
    from click.testing import CliRunner

    from bidder.cli import main

    env = {"RUNPOD_API_KEY": SECRET, "VAST_API_KEY": SECRET, "HOME": str(tmp_path)}
    where = ["--api-url", url] if market == "runpod" else ["--vast-url", url]
    result = CliRunner(env=env).invoke(main, ["collect", "--market", market, "--db", str(tmp_path / "x.db"), *where])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: the ") and SECRET[4:16] not in line, line


@pytest.mark.parametrize(("variable", "option", "command"), [
    ("RUNPOD_API_URL", "--api-url", ["collect", "--market", "runpod"]),
    ("VAST_URL", "--vast-url", ["collect", "--market", "vast"]),
    ("RUNPOD_API_URL", "--api-url", ["launch", "--gpu", "A6000", "--hours", "1", "--image", "x"]),
    ("VAST_URL", "--vast-url", ["tick"]),
])
def test_an_empty_url_variable_is_refused_not_read_as_the_real_service(tmp_path, variable, option, command):
    # click reads "" as unset: the key went to api.runpod.io / console.vast.ai, where --api-url '' is refused.
    from click.testing import CliRunner

    from bidder.cli import main

    env = {"RUNPOD_API_KEY": SECRET, "VAST_API_KEY": SECRET, "HOME": str(tmp_path), variable: ""}
    result = CliRunner(env=env).invoke(main, [*command, "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: Invalid value for '{option}': {variable} is set but empty: set it to a URL "
                           "such as https://"), line
    assert not (tmp_path / "x.db").exists()


def test_a_server_quoting_the_other_markets_key_has_it_masked_too(tmp_path):
    """Each client masked only its own key: a gateway in front of both markets that quoted the request
    back printed the RunPod key in Vast's error (and the Vast key in RunPod's) and stored both in the
    database's collections rows."""
    import sqlite3
    import subprocess
    import sys

    vast_secret = "vast_DIFFERENT9PIECES9OF9TEXT9ZZ"  # shares no 12 characters with SECRET
    with canned_server() as server:
        server.set(400, f'{{"error": "bad request", "msg": "got keys {SECRET} and {vast_secret}"}}',
                   {"Content-Type": "application/json"})
        env = {"RUNPOD_API_KEY": SECRET, "VAST_API_KEY": vast_secret, "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, "-m", "bidder", "-vv", "collect", "--retries", "1", "--now",
                               "2026-01-01T00:00:00Z", "--db", str(tmp_path / "x.db"), "--api-url", server.url,
                               "--vast-url", server.url.removesuffix("/graphql")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "got keys" in done.stderr, done.stderr[-2000:]  # what the server said is shown, masked
    with sqlite3.connect(tmp_path / "x.db") as conn:
        stored = "\n".join(conn.iterdump())
    assert "got keys" in stored  # the failures were recorded
    for key in (SECRET, vast_secret):
        for text in (done.stdout, done.stderr, stored):
            assert key[6:18].lower() not in text.lower(), text[-2000:]
