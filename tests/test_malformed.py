"""Money safety when the API answers *wrongly* (issue 13): every malformed answer is one
`MalformedAnswer` (a BidderError), nothing of it is stored, a malformed create answer is a lost
answer (the pod is adopted by its name), and a pods listing that is null, empty or contradicts the
ledger is not proof that a pod ended. Against the emulator over HTTP, spoiling one answer at a time
(`Emulator.malform`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from client_helpers import one_line_error
from executor_helpers import A6000, ON_DEMAND_SERVICE, make_env, named

from bidder.cli import main
from bidder.errors import BidderError, MalformedAnswer
from bidder.models import CLOUDS
from bidder.runpod import PodSpec
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso

CONFIG = ON_DEMAND_SERVICE
SPEC = PodSpec(name="probe", image_name="runpod/pytorch", gpu_type_id=A6000, cloud_type="COMMUNITY")
DEEP = b'{"data": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"


@pytest.fixture
def env(emulator, client, tmp_path):
    emulator.world.reclaim_rate_per_hour = 0.0
    e = make_env(emulator, client, tmp_path)
    (tmp_path / "bidder.toml").write_text(CONFIG)
    yield e
    e.store.close()


def cli(env, *args: str):
    return CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(main, [*args])


def tick(env):
    return cli(env, "tick", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.tmp / "bidder.db"),
               "--api-url", env.emu.url, "--now", to_iso(env.emu.now), "--retries", "1")


def pod_field(name: str, value):
    """A spoiler of the pod answers of myself: every pod's `name` replaced by `value`."""
    def spoil(payload):
        me = payload["data"]["myself"]
        return {"data": {"myself": {**me, "pods": [{**p, name: value} for p in me["pods"]]}}}
    return spoil


def runtime_field(name: str, value):
    def spoil(payload):
        me = payload["data"]["myself"]
        pods = [{**p, "runtime": {**(p["runtime"] or {}), name: value}} for p in me["pods"]]
        return {"data": {"myself": {**me, "pods": pods}}}
    return spoil


def create_field(operation: str, name: str, value):
    def spoil(payload):
        return {"data": {operation: {**payload["data"][operation], name: value}}}
    return spoil


# -- the client: one error class for every malformed answer --------------------------------------

SHAPES = {
    "html": (b"<html><body>Welcome to nginx</body></html>", "text/html"),
    "truncated": (b'{"data": {"myself": {"id": "u", "pods": [{"id": "p1", "na', "application/json"),
    "deep": (DEEP, "application/json"),
    "not an object": (b"[1, 2, 3]", "application/json"),
    "data null": (json.dumps({"data": None}).encode(), "application/json"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_an_unreadable_body_is_one_malformed_answer(emulator, client, shape):
    body, content_type = SHAPES[shape]
    emulator.malform("myself", body, content_type=content_type)
    with pytest.raises(MalformedAnswer) as info:
        client.pods()
    assert isinstance(info.value, BidderError) and info.value.maybe_executed


@pytest.mark.parametrize(("field", "value", "what"), [
    ("pods", None, "pods"),
    ("pods", [None], "pods"),
])
def test_a_null_pod_list_is_not_an_empty_account(emulator, client, field, value, what):
    emulator.malform("myself", lambda p: {"data": {"myself": {**p["data"]["myself"], field: value}}})
    with pytest.raises(MalformedAnswer, match=what):
        client.pods()


@pytest.mark.parametrize(("field", "value"), [
    ("costPerHr", "0.33"), ("gpuCount", 1.5), ("id", None), ("id", 7),
    ("desiredStatus", "ON_FIRE"), ("podType", "FREE"), ("name", ["a"]), ("runtime", "up"),
])
def test_a_pod_of_the_wrong_shape_is_one_malformed_answer(emulator, client, field, value):
    client.rent_interruptable(SPEC, 0.9)
    emulator.malform("myself", pod_field(field, value))
    with pytest.raises(MalformedAnswer, match=field if field != "runtime" else "runtime"):
        client.pods()
    assert [p.name for p in client.pods()] == ["probe"]  # the next answer is read as before


@pytest.mark.parametrize(("where", "field", "value"), [
    ("pod", "costPerHr", -4.63), ("pod", "costPerHr", 1e12), ("pod", "costPerHr", float("inf")),
    ("pod", "costPerHr", 10 ** 400), ("pod", "gpuCount", -1), ("runtime", "uptimeInSeconds", -5),
    ("runtime", "uptimeInSeconds", 1e12), ("runtime", "uptimeInSeconds", 10 ** 30),
    ("runtime", "uptimeInSeconds", float("nan")),
])
def test_an_impossible_number_marks_the_pod_and_is_never_read(emulator, client, where, field, value):
    # In a pod list, one pod's impossible number must not hide the other pods: the pod comes back
    # marked invalid with the number read as None (the executor stores nothing of it). Asked for
    # alone (pod, a create, a resume), it is one MalformedAnswer.
    pod = client.rent_interruptable(SPEC, 0.9)
    emulator.advance(60)
    spoil = pod_field(field, value) if where == "pod" else runtime_field(field, value)
    emulator.malform("myself", spoil)
    [listed] = client.pods()
    assert listed.id == pod.id and listed.invalid is not None and field in listed.invalid
    assert getattr(listed, {"costPerHr": "cost_per_hr", "gpuCount": "gpu_count",
                            "uptimeInSeconds": "uptime_seconds"}[field]) is None
    emulator.malform("pod", lambda p: {"data": {"pod": spoil({"data": {"myself": {"pods": [p["data"]["pod"]]}}})[
        "data"]["myself"]["pods"][0]}})
    with pytest.raises(MalformedAnswer, match=field):
        client.pod(pod.id)


def test_a_huge_price_in_a_snapshot_is_one_malformed_answer(emulator, client):
    def spoil(payload):
        types = payload["data"]["gpuTypes"]
        return {"data": {"gpuTypes": [{**t, "community1": {**(t["community1"] or {}), "uninterruptablePrice": 1e300}}
                                      for t in types]}}
    emulator.malform("lowestPrices", spoil)
    with pytest.raises(MalformedAnswer, match="uninterruptablePrice"):
        client.lowest_prices((1,), CLOUDS, ts=emulator.now)


def test_a_429_on_a_create_is_retried_after_its_retry_after(emulator, client):
    waits: list[float] = []
    client.retry = type(client.retry)(attempts=3, base=0.01, max_delay=0.05, max_total=10.0,
                                      sleep=waits.append)
    emulator.malform("podRentInterruptable", {"errors": [{"message": "Too Many Requests"}]}, status=429,
                     execute=False, headers={"Retry-After": "2"})
    pod = client.rent_interruptable(SPEC, 0.9)
    assert pod.name == "probe" and waits == [2.0]
    assert [p.name for p in emulator.world.pods.values()] == ["probe"]  # made once


def test_a_500_on_a_create_is_not_retried(emulator, client):
    emulator.malform("podRentInterruptable", {"errors": [{"message": "Internal"}]}, status=500)
    with pytest.raises(BidderError) as info:
        client.rent_interruptable(SPEC, 0.9)
    assert getattr(info.value, "maybe_executed", False)
    assert len(emulator.world.pods) == 1  # executed once, never sent again


# -- the tick: a malformed create answer is a lost answer -----------------------------------------

CREATE_SPOILERS = {
    "costPerHr a string": create_field("podFindAndDeployOnDemand", "costPerHr", "0.33"),
    "id null": create_field("podFindAndDeployOnDemand", "id", None),
    "data null": lambda payload: {"data": None},
    "something went wrong": lambda payload: {"data": None, "errors": [{
        "message": "Something went wrong. Please try again later or contact support.",
        "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]},
    "html": lambda payload: b"<html>502 upstream</html>",
}


@pytest.mark.parametrize("spoiler", sorted(CREATE_SPOILERS))
def test_a_malformed_create_answer_is_adopted_by_its_name(env, spoiler):
    env.emu.malform("podFindAndDeployOnDemand", CREATE_SPOILERS[spoiler])
    tick(env)
    for _ in range(3):
        env.emu.advance(300)
        result = tick(env)
        assert result.exit_code == 0, result.output + result.stderr
    pods = env.live_pods()
    assert [p.name for p in pods] == [named(env.store, "bidder-train", 1)], [(p.id, p.name) for p in pods]
    row = env.store.pod(pods[0].id)
    assert row is not None and row["job"] == "train" and row["state"] == "active"


# -- the tick: a listing is not proof that a pod ended -------------------------------------------

LISTING_SPOILERS = {
    "pods null": lambda p: {"data": {"myself": {**p["data"]["myself"], "pods": None}}},
    "pods empty": lambda p: {"data": {"myself": {**p["data"]["myself"], "pods": []}}},
    "myself null": lambda p: {"data": {"myself": None}},
    "pod missing": lambda p: {"data": {"myself": {**p["data"]["myself"], "pods": p["data"]["myself"]["pods"][1:]}}},
}


@pytest.mark.parametrize("spoiler", sorted(LISTING_SPOILERS))
def test_a_listing_without_the_running_pod_does_not_launch_a_second(env, spoiler):
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    env.emu.advance(300)
    env.emu.malform("myself", LISTING_SPOILERS[spoiler])
    result = tick(env)
    assert "Traceback" not in result.output + result.stderr
    for _ in range(2):
        env.emu.advance(300)
        assert tick(env).exit_code == 0
    assert [p.id for p in env.live_pods()] == [pod.id]
    assert env.store.pod(pod.id)["state"] == "active"
    assert all(row["pod_id"] == pod.id for row in env.store.managed_pods("train"))


# An answer without its `pod` field proves nothing (RunPod says `"pod": null` for an unknown id): it
# was read as "not found", the pod marked gone while it ran, and a `bidder stop` dropped.
@pytest.mark.parametrize("answer", [b"<html>oops</html>", {"data": {}}])
def test_a_listing_without_the_pod_and_no_pod_answer_leaves_the_job_alone(env, answer):
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    env.emu.advance(300)
    env.emu.malform("myself", LISTING_SPOILERS["pods empty"])
    if isinstance(answer, bytes):
        env.emu.malform("pod", answer, content_type="text/html")
    else:
        env.emu.malform("pod", answer)
    result = tick(env)
    assert result.exit_code == 1, result.output + result.stderr  # its budget goes unkept: cron must mail it
    assert "train: unknown" in result.output and "the state of train's pod is unknown" in result.stderr
    assert [p.id for p in env.live_pods()] == [pod.id]
    assert env.store.pod(pod.id)["state"] == "active"
    assert [a["kind"] for a in env.store.actions("train")] == ["deploy_on_demand"]


def test_a_stop_whose_pod_lookup_has_no_pod_field_is_one_error_and_sends_nothing_wrong(env):
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    env.emu.advance(300)
    env.emu.malform("pod", {"data": {}})
    result = cli(env, "stop", "--job", "train", "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url,
                 "--now", to_iso(env.emu.now))
    line = one_line_error(result)
    assert "no longer exists" not in line and "pod" in line, line
    assert pod.desired_status == "RUNNING" and env.store.pod(pod.id)["state"] == "active"


def test_a_stop_answered_wrongly_is_one_line_and_the_next_tick_finishes_it(env):
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    env.emu.advance(300)
    env.store.save_job_state("train", stop_requested=True)  # what `bidder jobs stop train` writes
    env.emu.malform("podStop", b"<html>502</html>", content_type="text/html", times=None)
    result = tick(env)
    line = one_line_error(result)
    assert "could not finish acting for train" in line and "train: error:" in result.output
    # The stop was executed, its answer spoiled: bidder cannot know, so the pod stays watched.
    assert pod.desired_status == "EXITED" and env.store.pod(pod.id)["state"] == "active"
    env.emu.clear_malformed()
    env.emu.advance(300)
    result = tick(env)
    assert result.exit_code == 0 and "train: finished" in result.output, result.output + result.stderr
    assert pod.desired_status == "EXITED"


# -- the tick: impossible numbers are never stored ----------------------------------------------

@pytest.mark.parametrize(("where", "field", "value"), [("deep", None, None), ("pod", "podType", "FREE")])
def test_an_unreadable_poll_is_one_error_and_stores_nothing(env, where, field, value):
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    env.emu.advance(300)
    assert tick(env).exit_code == 0
    before = env.store.observations(pod.id)
    env.emu.advance(300)
    if where == "deep":
        env.emu.malform("myself", DEEP)
    else:
        env.emu.malform("myself", pod_field(field, value) if where == "pod" else runtime_field(field, value))
    line = one_line_error(tick(env))
    assert "myself" in line
    assert env.store.observations(pod.id) == before
    env.emu.advance(300)
    assert tick(env).exit_code == 0
    state = env.store.job_state("train")
    assert 0 < state["spent"] < 1.0 and state["work_done_hours"] < 0.5


# -- issue 14, item 2: a poll that cannot be true is rejected, with one warning line -------------

@pytest.mark.parametrize(("where", "field", "value", "why"), [
    ("runtime", "uptimeInSeconds", 10 ** 6, "longer than"),   # plausible alone, not for a 10-minute-old pod
    ("pod", "costPerHr", 25.0, "far above"),                  # the pod was agreed at about $0.33/h
    ("runtime", "uptimeInSeconds", 1e12, "uptimeInSeconds"),  # issue 14: 277,777,777 hours "done"
    ("runtime", "uptimeInSeconds", -1, "uptimeInSeconds"),
    ("pod", "costPerHr", -4.63, "costPerHr"),                 # a negative spend
    ("pod", "costPerHr", float("nan"), "costPerHr"),
    ("pod", "desiredStatus", None, "no desiredStatus"),       # read as UNKNOWN: an interruption, a podResume sent
])
def test_a_poisoned_poll_is_rejected_and_the_job_goes_on(env, where, field, value, why):
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    env.emu.advance(600)
    assert tick(env).exit_code == 0
    before = env.store.observations(pod.id)
    env.emu.advance(300)
    env.emu.malform("myself", pod_field(field, value) if where == "pod" else runtime_field(field, value))
    result = tick(env)
    assert result.exit_code == 0, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ignored an impossible poll") and why in lines[0]
    assert "train: running" in result.output
    assert env.store.observations(pod.id) == before
    env.emu.advance(300)
    clean = tick(env)
    assert clean.exit_code == 0 and "train: running" in clean.output
    state = env.store.job_state("train")
    assert 0 < state["spent"] < 1.0 and 0.2 < state["work_done_hours"] < 0.4
    assert [p.id for p in env.live_pods()] == [pod.id] and pod.desired_status == "RUNNING"


def test_pods_refresh_says_an_impossible_poll_once(env, tmp_path):
    # It said nothing (the executor's log line, shown only by the CLI's logging, was all); the tick said
    # it twice (that log line and its own warning).
    assert tick(env).exit_code == 0
    env.emu.advance(600)
    env.emu.malform("myself", pod_field("costPerHr", 25.0))
    result = subprocess.run([sys.executable, "-m", "bidder", "pods", "--refresh", "--db", str(env.tmp / "bidder.db"),
                             "--api-url", env.emu.url, "--now", to_iso(env.emu.now)], capture_output=True, text=True,
                            env={**os.environ, "RUNPOD_API_KEY": TEST_API_KEY}, timeout=120)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("warning: ignored an impossible poll: pod ") and "far above" in line, result.stderr


@pytest.mark.parametrize("value", [None, 0], ids=["missing", "zero"])
def test_a_running_pod_stated_at_no_cost_is_booked_at_the_rate_bidder_agreed_to(env, value):
    # RunPod left costPerHr out (or said 0) for a while: those hours were booked at $0, and the budget
    # stop went with them (a $4 budget, $3.36 billed, $0.22 booked).
    assert tick(env).exit_code == 0
    [pod] = env.live_pods()
    env.emu.malform("myself", pod_field("costPerHr", value), times=None)
    for _ in range(6):
        env.emu.advance(1800)
        assert tick(env).exit_code == 0
    billed = env.emu.world.true_spend(pod.id)  # ($0.33/h, the rate bidder agreed to at the create)
    assert billed > 0.9 and env.store.job_state("train")["spent"] == pytest.approx(billed, abs=0.01)


# -- collect: a malformed snapshot is one error line and an error row, nothing else ----------------

@pytest.mark.parametrize("body", [DEEP, b"<html>oops</html>", b'{"data": {"gpuTypes": [{"id": "X", "memoryInGb": 1e12}]}}'],
                         ids=["deep", "html", "huge"])
def test_a_malformed_snapshot_is_one_error_and_an_error_row(emulator, tmp_path, body):
    from bidder.store import Store

    emulator.malform("lowestPrices", body, content_type="application/json")
    db = tmp_path / "b.db"
    result = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(
        main, ["collect", "--db", str(db), "--api-url", emulator.url, "--retries", "1"])
    one_line_error(result)
    with Store.open(db) as store:
        assert store._rows("SELECT count(*) FROM prices", ())[0][0] == 0
        errors = store._rows("SELECT error FROM collections", ())
        assert len(errors) == 1 and errors[0][0]


# -- the emulator's malformed-answer fault itself ------------------------------------------------

def test_malform_spoils_the_given_number_of_answers_then_stops(emulator, client):
    from bidder.errors import ConfigError

    rule = emulator.malform("*", b"<html>x</html>", content_type="text/html", times=2)
    for _ in range(2):
        with pytest.raises(MalformedAnswer):
            client.gpu_types()
    assert rule.times == 0 and not emulator.malformed and emulator.malformed.spoiled == 2
    assert client.gpu_types()
    emulator.malform("pod", {"data": None}, times=None)  # every answer until cleared
    assert client.gpu_types() and client.pods() == []
    emulator.clear_malformed()
    with pytest.raises(ConfigError):
        emulator.malform("myself", b"", times=0)


def test_maybe_executed_tells_refusals_from_lost_answers():
    from bidder.errors import GraphQLError, NoCapacity, RateLimited, TransportError
    from bidder.executor import maybe_executed

    wrong = "Something went wrong. Please try again later or contact support."
    assert maybe_executed(MalformedAnswer("x"))
    assert maybe_executed(TransportError("x", maybe_executed=True))
    assert maybe_executed(GraphQLError("x", status=200, messages=(wrong,), codes=("INTERNAL_SERVER_ERROR",)))
    assert maybe_executed(GraphQLError("x", status=200, messages=(wrong,), codes=(None,)))
    assert not maybe_executed(GraphQLError("x", status=200, messages=("spend limit reached",), codes=(None,)))
    assert not maybe_executed(GraphQLError("x", status=400, messages=(wrong,), codes=(None,)))
    assert not maybe_executed(RateLimited("x"))
    assert not maybe_executed(NoCapacity("x", status=200, messages=("no instances available",)))
