"""Retry rules against the emulator's fault injection: reads, stop and terminate are retried with
seeded, bounded backoff; creates and resumes are sent exactly once whatever happens."""

from __future__ import annotations

import random
import time

import pytest
from client_helpers import A6000, FakeSleep, Recorder, fast_retry, make_client

from bidder.errors import (
    AuthError,
    ConfigError,
    GraphQLError,
    NoCapacity,
    PodNotFound,
    RateLimited,
    TransportError,
)
from bidder.runpod import PodSpec, RetryPolicy

SPEC = PodSpec(name="job", image_name="runpod/pytorch", gpu_type_id=A6000, cloud_type="COMMUNITY")


@pytest.fixture
def recorder():
    rec = Recorder(timeout=5.0)
    yield rec
    rec.close()


def clear_faults_on_first_wait(emulator):
    return FakeSleep(lambda n: emulator.set_faults(None) if n == 1 else None)


def wait_for(condition, timeout: float = 5.0) -> bool:
    """Poll the emulator's state while its server thread finishes a late request (wall clock)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- reads ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["500=1", "429=1,retry_after=0", "drop=1", "internal=1",
                                   "timeout=1,delay=0.4"])
def test_a_read_is_retried_until_it_succeeds(emulator, recorder, fault):
    sleep = clear_faults_on_first_wait(emulator)
    # A short timeout only where the fault is a slow answer: under load, a healthy lowestPrice answer
    # took over 0.15 s, timed out, and the read was sent a third time (drop=1 failed that way).
    timeout = 0.15 if "timeout" in fault else 5.0
    client = make_client(emulator, recorder=recorder, retry=fast_retry(sleep=sleep), timeout=timeout)
    emulator.set_faults(fault)
    quotes = client.lowest_prices(ts=emulator.now)
    assert quotes and len(recorder.requests) == 2 and len(sleep.waits) == 1
    assert 0.005 <= sleep.waits[0] <= 0.01  # equal jitter: half to all of base


def test_backoff_grows_is_capped_and_attempts_are_bounded(emulator, recorder):
    sleep = FakeSleep()
    client = make_client(emulator, recorder=recorder, retry=fast_retry(attempts=6, sleep=sleep))
    emulator.set_faults("500=1")
    with pytest.raises(TransportError) as info:
        client.gpu_types()
    assert info.value.status == 500
    assert len(recorder.requests) == 6 and len(sleep.waits) == 5
    for k, wait in enumerate(sleep.waits):
        full = min(0.08, 0.01 * 2**k)
        assert full / 2 <= wait <= full
    assert len(set(sleep.waits)) == 5  # jittered, not identical


def test_jitter_is_seeded(emulator):
    def waits(seed: int) -> list[float]:
        policy = RetryPolicy(attempts=5, base=1.0, max_delay=100, rng=random.Random(seed))
        return [policy.backoff(k) for k in range(1, 5)]

    assert waits(1) == waits(1) and waits(1) != waits(2)


def test_retry_after_is_honoured(emulator, recorder):
    sleep = FakeSleep()
    client = make_client(emulator, recorder=recorder, retry=fast_retry(attempts=3, sleep=sleep))
    emulator.set_faults("429=1,retry_after=2,html=0.5")
    with pytest.raises(RateLimited) as info:
        client.myself()
    assert info.value.retry_after == 2.0
    assert sleep.waits == [2.0, 2.0] and len(recorder.requests) == 3


def test_a_retry_after_above_the_cap_goes_to_the_caller_at_once(emulator, recorder):
    sleep = FakeSleep()
    client = make_client(emulator, recorder=recorder, retry=fast_retry(sleep=sleep, retry_after_cap=30))
    emulator.set_faults("429=1,retry_after=700")
    with pytest.raises(RateLimited) as info:
        client.gpu_types()
    assert info.value.retry_after == 700 and sleep.waits == [] and len(recorder.requests) == 1


def test_total_time_is_bounded(emulator, recorder):
    sleep = FakeSleep()
    policy = RetryPolicy(attempts=50, base=0.04, max_delay=0.04, max_total=0.1, rng=random.Random(0), sleep=sleep)
    client = make_client(emulator, recorder=recorder, retry=policy)
    emulator.set_faults("500=1")
    with pytest.raises(TransportError):
        client.gpu_types()
    assert sum(sleep.waits) <= 0.1
    assert 2 <= len(recorder.requests) <= 6


def test_errors_that_a_retry_cannot_fix_are_not_retried(emulator, recorder):
    sleep = FakeSleep()
    client = make_client(emulator, recorder=recorder, retry=fast_retry(sleep=sleep))
    with pytest.raises(PodNotFound):
        client.pod("missing")
    with pytest.raises(PodNotFound):
        client.stop("missing")
    wrong = make_client(emulator, key="rpa_WRONG", recorder=recorder, retry=fast_retry(sleep=sleep))
    with pytest.raises(AuthError):
        wrong.gpu_types()
    assert len(recorder.requests) == 3 and sleep.waits == []


# -- creates and resumes: never retried, but on a 429 ------------------------------------------------

@pytest.mark.parametrize("kind", ["spot", "on_demand"])
def test_a_create_refused_with_429_is_retried_a_bounded_number_of_times(emulator, recorder, kind):
    # A 429 means the server did not execute it: sending it again cannot make a second pod.
    emulator.world.set_floor(A6000, "COMMUNITY", 0.2)
    sleep = FakeSleep()
    client = make_client(emulator, recorder=recorder, retry=fast_retry(attempts=5, sleep=sleep), timeout=0.5)
    emulator.set_faults("429=1,retry_after=0")
    with pytest.raises(RateLimited):
        if kind == "spot":
            client.rent_interruptable(SPEC, 0.3)
        else:
            client.deploy_on_demand(SPEC)
    assert len(recorder.requests) == 5 and len(sleep.waits) == 4
    assert len(emulator.world.pods) == 0


@pytest.mark.parametrize(("fault", "created"), [
    ("500=1", 0), ("drop=1", 0), ("internal=1", 0),
    ("lost_create=1", 1), ("timeout=1,delay=0.4", 1),
])
@pytest.mark.parametrize("kind", ["spot", "on_demand"])
def test_a_create_hit_by_a_fault_is_sent_exactly_once(emulator, recorder, fault, created, kind):
    emulator.world.set_floor(A6000, "COMMUNITY", 0.2)
    sleep = FakeSleep()
    client = make_client(emulator, recorder=recorder, retry=fast_retry(attempts=5, sleep=sleep), timeout=0.15)
    emulator.set_faults(fault)
    with pytest.raises((TransportError, RateLimited, GraphQLError)) as info:
        if kind == "spot":
            client.rent_interruptable(SPEC, 0.3)
        else:
            client.deploy_on_demand(SPEC)
    assert len(recorder.requests) == 1 and sleep.waits == []
    if created:  # executed on the server although the client heard nothing
        assert info.value.maybe_executed
        assert wait_for(lambda: len(emulator.world.pods) == 1)
    time.sleep(0.5 if "timeout" in fault else 0)  # let a late request finish before counting (wall clock)
    assert len(emulator.world.pods) == created


@pytest.mark.parametrize("fault", ["500=1", "drop=1", "internal=1"])
def test_resumes_are_sent_exactly_once(emulator, recorder, fault):
    world = emulator.world
    world.set_floor(A6000, "COMMUNITY", 0.2)
    sleep = FakeSleep()
    client = make_client(emulator, recorder=recorder, retry=fast_retry(sleep=sleep))
    spot = client.rent_interruptable(SPEC, 0.3)
    on_demand = client.deploy_on_demand(PodSpec(name="od", image_name="img", gpu_type_id=A6000))
    client.stop(spot.id)
    client.stop(on_demand.id)
    before = len(recorder.requests)
    emulator.set_faults(fault)
    with pytest.raises((TransportError, GraphQLError)):
        client.bid_resume(spot.id, 0.3, 1)
    with pytest.raises((TransportError, GraphQLError)):
        client.resume(on_demand.id, 1)
    assert len(recorder.requests) == before + 2 and sleep.waits == []
    assert world.pods[spot.id].desired_status == world.pods[on_demand.id].desired_status == "EXITED"


def test_no_capacity_is_not_retried_even_for_a_read_policy(client, emulator):
    emulator.world.set_floor(A6000, "COMMUNITY", 0.5)
    with pytest.raises(NoCapacity):
        client.rent_interruptable(SPEC, 0.3)
    assert emulator.world.pods == {}


# -- stop and terminate: retried -------------------------------------------------------------------

def test_stop_is_retried(emulator, recorder):
    emulator.world.set_floor(A6000, "COMMUNITY", 0.2)
    sleep = clear_faults_on_first_wait(emulator)
    client = make_client(emulator, recorder=recorder, retry=fast_retry(sleep=sleep))
    pod = client.rent_interruptable(SPEC, 0.3)
    emulator.set_faults("500=1")
    assert client.stop(pod.id).desired_status == "EXITED"
    assert recorder.operations[-2:] == ["podStop", "podStop"] and len(sleep.waits) == 1


def test_terminate_whose_answer_was_lost_is_done_when_the_retry_finds_the_pod_gone(emulator, recorder):
    world = emulator.world
    world.set_floor(A6000, "COMMUNITY", 0.2)
    # The pod is made with the usual timeout: rented under the short one, a loaded CI machine timed out.
    pod = make_client(emulator, recorder=recorder).rent_interruptable(SPEC, 0.3)
    client = make_client(emulator, recorder=recorder, timeout=0.15)

    def between_sends(n: int) -> None:
        emulator.set_faults(None)
        # The first (late) terminate finishes on the server before the retry is sent.
        assert wait_for(lambda: world.pods[pod.id].desired_status == "TERMINATED")

    sleep = FakeSleep(between_sends)
    client.retry = fast_retry(sleep=sleep)
    emulator.set_faults("timeout=1,delay=0.3")
    assert client.terminate(pod.id) is None
    assert recorder.operations[-2:] == ["podTerminate", "podTerminate"] and len(sleep.waits) == 1
    assert world.get_pod(pod.id) is None


def test_retry_policy_checks_its_settings():
    for bad in ({"attempts": 0}, {"attempts": 1.5}, {"base": -1}, {"max_total": float("nan")},
                {"retry_after_cap": "5"}):
        with pytest.raises(ConfigError):
            RetryPolicy(**bad)
    assert RetryPolicy(attempts=1).delay(1, TransportError("x")) is None
