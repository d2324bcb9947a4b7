"""Error mapping: each failure the emulator can inject becomes the right bidder error over real HTTP;
a tiny canned-answer server (real sockets) covers the few answers the emulator never gives; and
the mapping is complete for every httpx exception class and every known RunPod message."""

from __future__ import annotations

import inspect
import socket
import time

import httpx
import pytest
from client_helpers import A6000, NO_RETRY, Recorder, canned_server, make_client

from bidder.errors import (
    ApiError,
    AuthError,
    BidderError,
    GraphQLError,
    MalformedAnswer,
    NoCapacity,
    PodNotFound,
    RateLimited,
    SpotUnsupported,
    TransportError,
)
from bidder.runpod import PodSpec, RunPodClient
from bidder.runpod.errors_map import HTTPX_CAUGHT, NOT_SENT, classify_graphql, from_httpx
from bidder.runpod.operations import GraphQLRequest
from bidder.sim import world as sim_world
from bidder.sim.server import INTERNAL_ERROR_TEXT

SPEC = PodSpec(name="job", image_name="runpod/pytorch", gpu_type_id=A6000, cloud_type="COMMUNITY")


# -- over the emulator -------------------------------------------------------------------------------

@pytest.mark.parametrize("html", [False, True])
def test_429_is_rate_limited_with_retry_after_json_or_html(emulator, html):
    emulator.set_faults(f"429=1,retry_after=3,html={int(html)}")
    with pytest.raises(RateLimited) as info:
        make_client(emulator).gpu_types()
    assert info.value.retry_after == 3.0 and info.value.status == 429
    assert info.value.operation == "gpuTypes" and "retry after 3 s" in str(info.value)


def test_500_is_a_transport_error(emulator):
    emulator.set_faults("500=1")
    with pytest.raises(TransportError) as info:
        make_client(emulator).lowest_prices(ts=emulator.now)
    assert info.value.status == 500 and info.value.maybe_executed
    assert INTERNAL_ERROR_TEXT in str(info.value)


def test_internal_server_error_in_a_200_is_a_graphql_error_with_its_code(emulator):
    emulator.set_faults("internal=1")
    with pytest.raises(GraphQLError) as info:
        make_client(emulator).myself()
    assert type(info.value) is GraphQLError
    assert info.value.messages == (INTERNAL_ERROR_TEXT,) and info.value.codes == ("INTERNAL_SERVER_ERROR",)
    assert info.value.status == 200


def test_a_read_that_timed_out_does_not_say_it_may_have_been_executed(emulator):
    """A pod list that timed out said "the request may have been executed": of a read, it means nothing."""
    emulator.set_faults("timeout=1,delay=0.6")
    client = make_client(emulator, timeout=0.2)
    with pytest.raises(TransportError) as info:
        client.pods()
    emulator.set_faults(None)
    assert "no answer within the timeout" in str(info.value) and "may have been executed" not in str(info.value)


def test_a_late_answer_is_a_timeout_that_may_have_executed(emulator):
    emulator.world.set_floor(A6000, "COMMUNITY", 0.2)
    emulator.set_faults("timeout=1,delay=0.6")
    client = make_client(emulator, timeout=0.2)
    with pytest.raises(TransportError) as info:
        client.rent_interruptable(SPEC, 0.3)
    assert info.value.maybe_executed and info.value.status is None
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert "no answer within the timeout" in str(info.value) and "may have been executed" in str(info.value)
    emulator.set_faults(None)
    deadline = time.monotonic() + 5  # the server finishes the late request on its own (wall clock)
    while not emulator.world.pods and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p.name for p in emulator.world.pods.values()] == ["job"]


def test_a_dropped_connection_may_have_executed(emulator):
    emulator.set_faults("drop=1")
    with pytest.raises(TransportError) as info:
        make_client(emulator).gpu_types()
    assert info.value.maybe_executed and isinstance(info.value.__cause__, httpx.RemoteProtocolError)


def test_a_lost_create_answer_leaves_a_pod_behind(emulator):
    emulator.world.set_floor(A6000, "COMMUNITY", 0.2)
    emulator.set_faults("lost_create=1")
    client = make_client(emulator)
    with pytest.raises(TransportError) as info:
        client.rent_interruptable(SPEC, 0.3)
    assert info.value.maybe_executed and info.value.operation == "podRentInterruptable"
    emulator.set_faults(None)
    # The pod exists: the executor finds it by name instead of creating a second one.
    assert [p.name for p in client.pods()] == ["job"]


def test_a_refused_connection_was_never_executed():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = RunPodClient(api_key="k", url=f"http://127.0.0.1:{port}/graphql", timeout=2, retry=NO_RETRY)
    with pytest.raises(TransportError) as info:
        client.rent_interruptable(SPEC, 0.3)
    assert not info.value.maybe_executed and "cannot connect" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_a_malformed_document_is_http_400_graphql_error(emulator):
    client = make_client(emulator)
    with pytest.raises(GraphQLError) as info:
        client.execute(GraphQLRequest("gpuTypes", "query { gpuTypes { idd } }", idempotent=True))
    assert type(info.value) is GraphQLError and info.value.status == 400
    assert info.value.messages == ('Cannot query field "idd" on type "GpuType". Did you mean "id"?',)
    with pytest.raises(GraphQLError, match="Syntax Error"):
        client.execute(GraphQLRequest("gpuTypes", "query { gpuTypes { id }", idempotent=True))


def test_the_business_texts_of_the_emulator_map_to_their_classes(client, emulator):
    """Each refusal the emulator makes (with RunPod's words) arrives as its class over HTTP."""
    world = emulator.world
    world.set_floor(A6000, "COMMUNITY", 0.5)
    with pytest.raises(NoCapacity):
        client.rent_interruptable(SPEC, 0.4)
    with pytest.raises(PodNotFound, match="pod not found to terminate"):
        client.terminate("missing")
    emulator.set_spot_enabled(False)
    with pytest.raises(SpotUnsupported):
        client.rent_interruptable(SPEC, 0.6)


# -- answers only a canned server gives (real HTTP, not a mock transport) ---------------------------

def test_answers_the_emulator_never_gives():
    with canned_server() as server:
        client = RunPodClient(api_key="k", url=server.url, timeout=2, retry=NO_RETRY)
        server.set(200, "<html><body>Welcome</body></html>")
        with pytest.raises(TransportError, match="not JSON") as info:
            client.gpu_types()
        assert info.value.status == 200
        server.set(502, "<html>Bad gateway</html>")
        with pytest.raises(TransportError) as info:
            client.gpu_types()
        assert info.value.status == 502
        for gone in (404, 410):  # a mistyped URL, or RunPod's GraphQL retired: the way out is named
            server.set(gone, "<html>Not found</html>")
            with pytest.raises(TransportError, match=f"HTTP {gone} from the API: no GraphQL endpoint") as info:
                client.gpu_types()
            assert "unset RUNPOD_API_KEY" in str(info.value)
        # A key RunPod made Read Only (or a proxy) is refused, and said so, not taken for a wrong URL.
        server.set(403, '{"errors": [{"message": "forbidden"}]}')
        with pytest.raises(TransportError, match="HTTP 403 \\(forbidden\\) from the API: the key may not be") as info:
            client.rent_interruptable(SPEC, 0.6)
        assert "Read/Write access" in str(info.value) and "GraphQL endpoint" not in str(info.value)
        assert info.value.maybe_executed  # (a refusal is no proof the create was not made: looked up by name)
        server.set(400, "<html>Bad request</html>")
        with pytest.raises(GraphQLError, match="HTTP 400") as bad:
            client.gpu_types()
        assert bad.value.status == 400
        server.set(429, "<html>slow down</html>", {"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT",
                                                   "Date": "Wed, 21 Oct 2026 07:28:00 GMT"})
        with pytest.raises(RateLimited) as limited:
            client.gpu_types()
        assert limited.value.retry_after == 30.0  # an HTTP date, relative to the answer's own Date
        server.set(429, "", {"Retry-After": "soon"})
        with pytest.raises(RateLimited) as unreadable:
            client.gpu_types()
        assert unreadable.value.retry_after is None
        server.set(200, {"data": {"gpuTypes": [{"id": "X", "memoryInGb": "lots"}]}})
        with pytest.raises(MalformedAnswer, match=r"unexpected answer.*memoryInGb") as shape:
            client.gpu_types()
        assert shape.value.maybe_executed  # a wrong answer proves nothing about what the server did
        server.set(200, {"data": None})
        with pytest.raises(ApiError, match="without data or errors"):
            client.gpu_types()
        server.set(200, {"data": {"podRentInterruptable": None}})
        with pytest.raises(ApiError, match="no pod in the answer"):
            client.rent_interruptable(SPEC, 0.3)
        server.set(200, '{"data": {"gpuTypes": []}}', {"Content-Type": "application/json"}, declared_length=100)
        with pytest.raises(TransportError) as short:
            client.gpu_types()  # the connection ends before the declared body length
        assert short.value.maybe_executed


# -- completeness ------------------------------------------------------------------------------------

def _httpx_exception_classes() -> list[type[BaseException]]:
    return sorted((obj for _, obj in inspect.getmembers(httpx, inspect.isclass)
                   if issubclass(obj, Exception) and obj.__module__.startswith("httpx")), key=lambda c: c.__name__)


#: httpx exceptions that `Client.post` cannot raise, and why.
NOT_FROM_POST = {
    "HTTPStatusError": "raised only by Response.raise_for_status(), which the client never calls",
    "CookieConflict": "raised only by Cookies.get() with an ambiguous name",
    "StreamError": "the streaming API only (the client reads whole bodies)",
    "StreamConsumed": "the streaming API only", "StreamClosed": "the streaming API only",
    "ResponseNotRead": "the streaming API only", "RequestNotRead": "the streaming API only",
}


def _instance(cls: type[BaseException]) -> BaseException:
    request = httpx.Request("POST", "http://127.0.0.1:1/graphql")
    params = inspect.signature(cls.__init__).parameters
    if "request" in params:
        return cls("boom", request=request)  # type: ignore[call-arg]
    return cls("boom")  # type: ignore[call-arg]


def test_every_httpx_exception_maps_to_a_bidder_error():
    classes = _httpx_exception_classes()
    assert len(classes) > 20  # the walk found httpx's tree
    for cls in classes:
        if cls.__name__ in NOT_FROM_POST:
            assert not issubclass(cls, httpx.TransportError)
            continue
        assert issubclass(cls, HTTPX_CAUGHT), f"{cls.__name__} would escape the client"
        error = from_httpx(_instance(cls), "gpuTypes", "http://127.0.0.1:1/graphql")  # type: ignore[arg-type]
        assert isinstance(error, TransportError) and isinstance(error, BidderError), cls
        assert error.maybe_executed == (not issubclass(cls, NOT_SENT)), cls
    sent = {c.__name__ for c in classes if c.__name__ not in NOT_FROM_POST and not issubclass(c, NOT_SENT)}
    assert {"ReadTimeout", "ReadError", "RemoteProtocolError", "WriteTimeout"} <= sent
    assert not {"ConnectError", "ConnectTimeout", "PoolTimeout"} & sent


#: Every message RUNPOD_API.md records and every text the emulator sends, with the class it maps to.
KNOWN_MESSAGES = [
    ("There are no longer any instances available with the requested specifications. Please refresh and "
     "try again.", NoCapacity),
    ("There are no instances available with the request specifications. Please try again later.", NoCapacity),
    ("There are no longer any instances available with the request specifications. Please try again later.",
     NoCapacity),
    ("This machine does not have the resources to deploy your pod. Please try a different machine", NoCapacity),
    ("Cannot resume a spot pod as an on demand pod.", GraphQLError),
    ("Something went wrong. Please try again later or contact support.", GraphQLError),
    ("pod not found to terminate", PodNotFound),
    ('Cannot query field "podRentInterruptable" on type "Mutation".', SpotUnsupported),
    ('Cannot query field "podBidResume" on type "Mutation".', SpotUnsupported),
    ('Unknown type "PodRentInterruptableInput".', SpotUnsupported),
    ('Unknown type "PodBidResumeInput".', SpotUnsupported),
    ('Field "bidPerGpu" is not defined by type "PodFindAndDeployOnDemandInput".', SpotUnsupported),
    ('Cannot query field "minimumBidPrice" on type "LowestPrice".', SpotUnsupported),
    ('Field "X" is not defined by type "PodResumeInput".', GraphQLError),
    ('Cannot query field "idd" on type "GpuType".', GraphQLError),
    ("Spot pods are no longer supported.", SpotUnsupported),
    ("You must be authenticated to do this: send an API key in the Authorization header.", AuthError),
    (sim_world.ON_DEMAND_NO_INSTANCES, NoCapacity), (sim_world.SPOT_NO_INSTANCES, NoCapacity),
    (sim_world.MACHINE_FULL, NoCapacity), (sim_world.CANNOT_RESUME_SPOT, GraphQLError),
    (sim_world.TERMINATE_NOT_FOUND, PodNotFound), (sim_world.STOP_NOT_FOUND, PodNotFound),
    (sim_world.RESUME_NOT_FOUND, PodNotFound), (sim_world.BAD_BID_RESUME, GraphQLError),
    (sim_world.SPEND_LIMIT.format(limit=80), GraphQLError), (sim_world.LOW_BALANCE, GraphQLError),
]


@pytest.mark.parametrize(("message", "expected"), KNOWN_MESSAGES)
def test_every_known_message_maps_to_its_class(message, expected):
    error = classify_graphql((message,), (None,), operation="op", status=200, pod_id="p1")
    assert type(error) is expected and isinstance(error, BidderError)
    assert message in str(error)
    if expected is PodNotFound:
        assert error.pod_id == "p1"


def test_the_first_specific_message_wins_and_codes_are_kept():
    error = classify_graphql(("Something went wrong.", "pod not found to stop"), ("INTERNAL_SERVER_ERROR", None),
                             operation="podStop", status=200)
    assert type(error) is PodNotFound and error.codes == ("INTERNAL_SERVER_ERROR", None)
    assert type(classify_graphql(("nope",), ("UNAUTHENTICATED",), operation="op", status=200)) is AuthError


def test_a_recorded_request_is_untouched_by_errors(emulator):
    """An error leaves the client usable: the next request on the same connection pool works."""
    recorder = Recorder()
    client = make_client(emulator, recorder=recorder)
    emulator.set_faults("drop=1")
    with pytest.raises(TransportError):
        client.gpu_types()
    emulator.set_faults(None)
    assert client.gpu_types() and len(recorder.requests) == 2
    recorder.close()
