"""The ledger half of `Store` (issue 5): every mutation bidder sends or would send (`actions`,
written before the call and completed after it), the pods it manages (`pods`), each poll of them
(`pod_observations`), per-job state (`jobs`) and small settings (`settings`)."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bidder.errors import StoreError
from bidder.store.base import StoreBase, _db_value, _from_row, _iso
from bidder.store.schema import ACTION_KINDS

__all__ = ["LAUNCH_JOB", "SPOT_UNSUPPORTED_SINCE", "LedgerStore", "estimate_spend", "spend_terms"]

#: Setting holding when the API first refused spot (ISO time); absent = spot allowed. Written by the
#: collector (spot price fields gone) and the executor (spot mutations gone); read by the executor.
SPOT_UNSUPPORTED_SINCE = "spot_unsupported_since"

#: `bidder launch`'s job name when --name is not given. Its job-state field `launched_by` marks a
#: launch's job under any name: pods started once by hand, which no tick runs, resumes or holds.
LAUNCH_JOB = "bidder-launch"  # (bidder.jobs refuses a [jobs.NAME] of it)

_JOB_COLUMNS = ("state", "pod_id", "work_done_hours", "spent", "interruptions", "started", "finished", "updated")
_POD_COLUMNS = ("job", "name", "gpu_type_id", "cloud", "gpu_count", "kind", "bid_per_gpu", "created", "state",
                "desired_status", "last_seen", "ended", "interruptions", "note", "market", "volume_in_gb")


class LedgerStore(StoreBase):
    """The executor's ledger."""

    # -- ledger: actions ----------------------------------------------------------------------------
    def begin_action(self, ts: datetime, *, job: str | None, kind: str, pod_id: str | None = None,
                     gpu_type_id: str | None = None, cloud: str | None = None, gpu_count: int | None = None,
                     bid_per_gpu: float | None = None, expected_cost_per_hour: float | None = None,
                     reason: str | None = None, dry_run: bool = False) -> int:
        """Write the intent row BEFORE sending a mutation; returns its id.

        Outcome "pending" (completed by finish_action after the call, so a crash in between stays
        visible) or "dry_run" (complete as written: nothing is sent). `bid_per_gpu` is per GPU.
        """
        if kind not in ACTION_KINDS:
            raise StoreError(f"unknown action kind {kind!r}; use one of {', '.join(ACTION_KINDS)}")
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO actions (ts, job, kind, pod_id, gpu_type_id, cloud, gpu_count, bid_per_gpu, "
                "expected_cost_per_hour, reason, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_iso(ts), job, kind, pod_id, gpu_type_id, cloud, gpu_count, bid_per_gpu, expected_cost_per_hour,
                 reason, "dry_run" if dry_run else "pending"))
            return int(cursor.lastrowid or 0)

    def finish_action(self, action_id: int, *, outcome: str, pod_id: str | None = None,
                      error: str | None = None, ts: datetime | None = None,
                      expected_cost_per_hour: float | None = None) -> None:
        """Complete a pending action: outcome "ok" or "error" (with the error text); `pod_id` fills in
        the id a create returned. `ts` is when the call returned (optional). `expected_cost_per_hour`:
        the rate the created pod states, when it differs from the one the action was begun with (a Vast
        on-demand create rents an offer of its own choosing)."""
        if outcome not in ("ok", "error"):
            raise StoreError(f"finish_action outcome must be 'ok' or 'error', got {outcome!r}")
        with self._write() as conn:
            row = conn.execute("SELECT outcome FROM actions WHERE id = ?", (action_id,)).fetchone()
            if row is None:
                raise StoreError(f"no action with id {action_id} in {self.path}")
            if row["outcome"] != "pending":
                raise StoreError(f"action {action_id} is already complete (outcome {row['outcome']!r})")
            conn.execute(
                "UPDATE actions SET outcome = ?, pod_id = coalesce(?, pod_id), error = ?, finished_ts = ?, "
                "expected_cost_per_hour = coalesce(?, expected_cost_per_hour) WHERE id = ?",
                (outcome, pod_id, error, _iso(ts), expected_cost_per_hour, action_id))

    def actions(self, job: str | None = None, *, outcome: str | None = None,
                pod_id: str | None = None) -> list[dict[str, Any]]:
        """Ledger rows, oldest first, optionally for one job / outcome / pod (times as datetimes)."""
        clauses, params = [], []
        for column, value in (("job", job), ("outcome", outcome), ("pod_id", pod_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = " AND ".join(clauses) or "1"
        return [_from_row(r) for r in self._rows(f"SELECT * FROM actions WHERE {where} ORDER BY id", params)]

    # -- ledger: pods and observations --------------------------------------------------------------
    def add_pod(self, pod_id: str, *, job: str | None, name: str | None, gpu_type_id: str | None,
                cloud: str | None, gpu_count: int | None, kind: str, bid_per_gpu: float | None,
                created: datetime, market: str = "runpod", volume_in_gb: int | None = None) -> None:
        """Start managing a pod (kind "spot" or "on_demand") of `market` (runpod | vast). Adding a known
        id updates its fields. `volume_in_gb`: a RunPod pod's volume disk (0: none; None: unknown, and
        a volume already known is kept)."""
        if kind not in ("spot", "on_demand"):
            raise StoreError(f"pod kind must be 'spot' or 'on_demand', got {kind!r}")
        values = (pod_id, job, name, gpu_type_id, cloud, gpu_count, kind, bid_per_gpu, _iso(created), market,
                  volume_in_gb)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO pods (pod_id, job, name, gpu_type_id, cloud, gpu_count, kind, bid_per_gpu, created, "
                "market, volume_in_gb) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pod_id) DO UPDATE SET "
                "job = excluded.job, name = excluded.name, gpu_type_id = excluded.gpu_type_id, "
                "cloud = excluded.cloud, gpu_count = excluded.gpu_count, kind = excluded.kind, "
                "bid_per_gpu = excluded.bid_per_gpu, created = excluded.created, market = excluded.market, "
                "volume_in_gb = coalesce(excluded.volume_in_gb, volume_in_gb)", values)

    def managed_pods(self, job: str | None = None, *, states: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Pods bidder manages, oldest first; optionally one job's, or only those in `states`."""
        clauses, params = [], []
        if job is not None:
            clauses.append("job = ?")
            params.append(job)
        if states is not None:
            wanted = list(states)
            clauses.append(f"state IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        where = " AND ".join(clauses) or "1"
        sql = f"SELECT * FROM pods WHERE {where} ORDER BY created, pod_id"
        return [_from_row(r) for r in self._rows(sql, params)]

    def pod(self, pod_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM pods WHERE pod_id = ?", (pod_id,))
        return _from_row(rows[0]) if rows else None

    def set_pod_state(self, pod_id: str, **fields: Any) -> None:
        """Update columns of a managed pod, e.g. set_pod_state(id, state="ended", ended=now)."""
        unknown = sorted(set(fields) - set(_POD_COLUMNS))
        if unknown:
            raise StoreError(f"pods has no column(s) {', '.join(unknown)}; columns: {', '.join(_POD_COLUMNS)}")
        if not fields:
            return
        names = sorted(fields)
        with self._write() as conn:
            cursor = conn.execute(f"UPDATE pods SET {', '.join(f'{n} = ?' for n in names)} WHERE pod_id = ?",
                                  [_db_value(fields[n]) for n in names] + [pod_id])
            if cursor.rowcount == 0:
                raise StoreError(f"pod {pod_id!r} is not managed by bidder (not in the pods table)")

    def record_observation(self, ts: datetime, pod_id: str, *, desired_status: str | None,
                           cost_per_hr: float | None, uptime_seconds: float | None,
                           storage_per_hr: float | None = None) -> None:
        """One poll of a pod. `cost_per_hr` is per pod (USD/hour). A second poll at the same ts (the
        same second) is kept beside it (`seq`), never over it; `clock` is the store's `clock`.
        `storage_per_hr` (Vast only) marks a *billing observation*: see `estimate_spend`."""
        stamp = _iso(ts)
        with self._write() as conn:
            conn.execute("INSERT INTO pod_observations (pod_id, ts, seq, desired_status, cost_per_hr, uptime_seconds, "
                         "clock, storage_per_hr) VALUES (?, ?, (SELECT count(*) FROM pod_observations WHERE pod_id = ? "
                         "AND ts = ?), ?, ?, ?, ?, ?)",
                         (pod_id, stamp, pod_id, stamp, desired_status, cost_per_hr, uptime_seconds, self.clock,
                          storage_per_hr))

    def observations(self, pod_id: str, *, since: datetime | None = None) -> list[dict[str, Any]]:
        """A pod's polls, oldest first; `since` (inclusive) reads only the newer ones (the executor's
        incremental spend)."""
        if since is None:
            rows = self._rows("SELECT * FROM pod_observations WHERE pod_id = ? ORDER BY ts, seq", (pod_id,))
        else:
            rows = self._rows("SELECT * FROM pod_observations WHERE pod_id = ? AND ts >= ? ORDER BY ts, seq",
                              (pod_id, _iso(since)))
        return [_from_row(r) for r in rows]

    def last_observation(self, pod_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM pod_observations WHERE pod_id = ? ORDER BY ts DESC, seq DESC LIMIT 1", (pod_id,))
        return _from_row(rows[0]) if rows else None

    def record_launch(self, pod_id: str) -> dict[str, Any] | None:
        """For a pod never polled (it ended before its first poll): its create as its first observation,
        RUNNING with no uptime yet at the pod's `created` time and the price bidder agreed to in the
        create (the action's expected cost per hour, else bid x GPUs). Returns it, or None when the
        pod has a poll already, or no successful create with a price is in the ledger (nothing is written).
        A pod's launch is the evidence that it started: an end found later is then booked for half of
        the interval since the launch, as after any poll (see `estimate_spend`), not for none of it."""
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM pod_observations WHERE pod_id = ? LIMIT 1", (pod_id,)).fetchone():
                return None
            pod = conn.execute("SELECT * FROM pods WHERE pod_id = ?", (pod_id,)).fetchone()
            if pod is None or pod["created"] is None:
                return None
            create = conn.execute(
                "SELECT expected_cost_per_hour, bid_per_gpu, gpu_count FROM actions WHERE pod_id = ? AND outcome = 'ok' "
                "AND kind IN ('rent_spot', 'deploy_on_demand') ORDER BY id DESC LIMIT 1", (pod_id,)).fetchone()
            if create is None:
                return None
            cost = create["expected_cost_per_hour"]
            if cost is None and create["bid_per_gpu"] is not None:
                cost = float(create["bid_per_gpu"]) * int(create["gpu_count"] or pod["gpu_count"] or 1)
            if cost is None:
                return None
            conn.execute("INSERT INTO pod_observations (pod_id, ts, seq, desired_status, cost_per_hr, uptime_seconds, "
                         "clock) VALUES (?, ?, 0, 'RUNNING', ?, 0, ?)", (pod_id, pod["created"], float(cost), self.clock))
        return self.last_observation(pod_id)

    def spend_by_pod(self, job: str | None = None) -> dict[str, float]:
        """USD spent per managed pod, estimated from its observations (see `estimate_spend`)."""
        return {p["pod_id"]: estimate_spend(self.observations(p["pod_id"])) for p in self.managed_pods(job)}

    # -- the clock ----------------------------------------------------------------------------------
    def newest_time(self) -> tuple[datetime, str] | None:
        """The newest time in the database and what holds it: a snapshot (collections), a poll
        (pod_observations) or a ledger action; None when empty. A command's time must not be earlier
        (bidder.clock.check_not_past). A failed collection's error row holds no data: it does not count
        (a cycle that could not reach the emulator is stamped with the wall clock, and would otherwise
        refuse every later command on the emulator's clock)."""
        found: list[tuple[str, str]] = []
        for sql, what in (("SELECT max(ts) FROM collections WHERE error IS NULL", "snapshot"),
                          ("SELECT max(ts) FROM pod_observations", "pod observation"),
                          ("SELECT max(ts) FROM actions", "ledger action")):
            value = self._rows(sql)[0][0]
            if value is not None:
                found.append((value, what))
        if not found:
            return None
        stamp, what = max(found)
        return _from_row({"ts": stamp})["ts"], what

    def emulator_time(self) -> datetime | None:
        """When the newest snapshot (the last collection written) was stamped by the emulator's clock:
        the newest time that clock stamped (snapshots and polls). None otherwise (wall clock, --now,
        or no snapshot): commands that only read the database then use the wall clock. A failed
        collection stamped by the wall clock does not count: it is a cycle that could not ask the
        emulator its time (bidder writes none since, but an older database may hold some)."""
        last = self._rows("SELECT clock, ts FROM collections WHERE NOT (clock = 'wall' AND error IS NOT NULL) "
                          "ORDER BY id DESC LIMIT 1")
        if not last or last[0][0] != "emulator":
            return None
        snapshot = last[0][1]
        # Polls after that snapshot (ticks poll more often than they collect), read through the ts index.
        polled = self._rows("SELECT max(ts) FROM pod_observations WHERE ts >= ? AND clock = 'emulator'",
                            (snapshot,))[0][0]
        return _from_row({"ts": max(snapshot, polled or snapshot)})["ts"]

    # -- ledger: jobs and settings ------------------------------------------------------------------
    def job_state(self, name: str) -> dict[str, Any] | None:
        """A job's saved state: its columns plus the extra fields saved with it (None if never saved)."""
        rows = self._rows("SELECT * FROM jobs WHERE name = ?", (name,))
        return self._job_dict(rows[0]) if rows else None

    def jobs(self) -> list[dict[str, Any]]:
        return [self._job_dict(r) for r in self._rows("SELECT * FROM jobs ORDER BY name")]

    @staticmethod
    def _job_dict(row: sqlite3.Row) -> dict[str, Any]:
        out = _from_row(row)
        extra = out.pop("extra")
        if extra:
            out.update({k: v for k, v in json.loads(extra).items() if k not in out})
        return out

    def mark_launch(self, name: str) -> None:
        """Mark `name` as a job of `bidder launch`, unless the ledger already holds that name for
        another job (`bidder launch` refuses such a --name; should a tick write the row meanwhile, it
        stays the tick's)."""
        state = self.job_state(name)
        if state is None or self.is_launch(name, state):
            self.save_job_state(name, launched_by="bidder launch", note=None)  # a stopped pod's note is not the new one's

    def is_launch(self, name: str, state: Mapping[str, Any] | None = None) -> bool:
        """Whether `name` is a job of `bidder launch` (marked, or its default name from before marks)."""
        state = self.job_state(name) if state is None else state
        return name == LAUNCH_JOB or bool((state or {}).get("launched_by"))

    def comes_back(self, pod: Mapping[str, Any]) -> bool:
        """Whether a pod the ledger holds active comes back once it exited (outbid or reclaimed), so is
        shown paused, not stopped: a Vast instance resumes by itself when its bid is over the floor again;
        a RunPod pod only by a tick's new bid, which no tick makes for a `bidder launch`'s pod or for one
        of a job taken out of bidder.toml (its ledger state `unmanaged`). Neither comes back once the user
        stopped it outside bidder (its job's `outside_end`)."""
        job = pod.get("job")
        state = (self.job_state(job) or {}) if job else {}
        if (state.get("outside_end") or {}).get("pod_id") == pod.get("pod_id"):
            return False  # stopped by the user outside bidder: nothing resumes it (a Vast one showed PAUSED)
        if (pod.get("market") or "runpod") != "runpod" or not job:
            return True
        return state.get("state") != "unmanaged" and not self.is_launch(job, state)

    def launch_state(self, name: str) -> str | None:
        """A `bidder launch` job's state as its pods stand in the ledger (no tick keeps its row):
        `running` while one of them runs, `stopped` while one is kept stopped, `ended` once all are
        gone; None when it has no pod."""
        pods = self.managed_pods(name)
        if not pods:
            return None
        if any(p.get("state") == "active" and p.get("desired_status") == "RUNNING" for p in pods):
            return "running"
        if any(p.get("state") in ("active", "stopped", "retiring") and p.get("desired_status") != "TERMINATED"
               for p in pods):
            return "stopped"
        return "ended"

    def save_job_state(self, name: str, **fields: Any) -> None:
        """Merge fields into a job's state. Known columns (state, pod_id, work_done_hours, spent,
        interruptions, started, finished, updated) are columns; any other key is kept as JSON in
        `extra` (datetimes as ISO text). A value of None clears a field."""
        with self._write() as conn:
            row = conn.execute("SELECT extra FROM jobs WHERE name = ?", (name,)).fetchone()
            extra = json.loads(row["extra"]) if row is not None and row["extra"] else {}
            columns = {k: _db_value(v) for k, v in fields.items() if k in _JOB_COLUMNS}
            for key, value in fields.items():
                if key not in _JOB_COLUMNS:
                    if key == "name":
                        raise StoreError("save_job_state: the job name is the first argument, not a field")
                    extra[key] = _db_value(value)
            extra = {k: v for k, v in extra.items() if v is not None}
            columns["extra"] = json.dumps(extra, sort_keys=True) if extra else None
            if row is None:
                names = ["name", *columns]
                conn.execute(f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                             [name, *columns.values()])
            else:
                conn.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in columns)} WHERE name = ?",
                             [*columns.values(), name])

    def settings_get(self, key: str, default: str | None = None) -> str | None:
        rows = self._rows("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows and rows[0][0] is not None else default

    def settings_set(self, key: str, value: str | None, *, ts: datetime | None = None) -> None:
        """Set (or, with None, delete) a small piece of state, e.g. "spot_unsupported_since"."""
        with self._write() as conn:
            if value is None:
                conn.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                conn.execute("INSERT OR REPLACE INTO settings (key, value, updated) VALUES (?, ?, ?)",
                             (key, str(value), _iso(ts)))


def estimate_spend(observations: Sequence[Mapping[str, Any]]) -> float:
    """USD a pod cost, from its polls (ts, desired_status, cost_per_hr per pod, uptime_seconds).

    Between two polls a and b, if a was RUNNING: when b is RUNNING and its uptime did not fall, one
    run went on and the pod ran for the uptime difference (never more than the interval; a run can
    never be billed beyond what its own uptime vouches for, even when the polls' clocks jumped);
    when the uptime fell, the pod stopped and restarted in between (the uptime since the restart,
    plus half of the rest before the stop); when b is not RUNNING, it stopped at an unknown moment in between (half the interval:
    unbiased for a uniform stop time). If a was not RUNNING and b is, it ran for b's uptime (at
    most the interval). The first poll adds
    the uptime before it. Each stretch is priced at the cost of the poll that saw it running.
    An exit observation (not RUNNING, `uptime_seconds` = the length of the run that ended at its
    `ts`; see bidder.executor) counts like a RUNNING poll at that instant, so a stop between polls
    whose time is known is integrated exactly instead of by halves.

    Two polls stamped by different clocks (`clock`: the wall clock against the emulator's virtual
    one or a --now) have no interval between them that means anything: such a pair adds only what
    the pod's own uptime vouches for (its growth, when it grew), never a guess from the timestamps,
    so spend never exceeds uptime x rate however the clocks were mixed.
    """
    return sum(usd for usd, _, _ in spend_terms(observations))


def run_starts(observations: Sequence[Mapping[str, Any]]) -> list[Any]:
    """When a pod's runs started, as its polls show (oldest first): the first poll if RUNNING, each poll
    RUNNING after one that was not, and each RUNNING poll whose uptime fell below the one before's
    (RunPod: it stopped and restarted in between; a Vast poll's running total never falls). A run no
    poll saw running counts too: a RunPod exit observation (not RUNNING, with the ended run's uptime)
    after nothing or after a poll that was not RUNNING, and a Vast poll that is not RUNNING whose
    running total grew since one that was not (a pod outbid before its first poll ran, and its restart
    costs work as any other). Each is dated by the poll that saw it."""
    return [observations[i]["ts"] for i in _run_start_indices(observations)]


def run_lengths(observations: Sequence[Mapping[str, Any]], *, carried: bool = False) -> tuple[float, list[float]]:
    """Running seconds of each run `run_starts` finds (oldest first), as (the seconds before the first
    of them, of a run begun before these observations; [the seconds of each run]). Their sum is
    `spend_terms`' running seconds: a stretch between two polls that spans a restart gives the new run
    the uptime its poll shows (at most the stretch) and the ended run the rest. `carried`: the first
    observation is a cache's anchor, its own first term and run start counted already: both left out."""
    starts = set(_run_start_indices(observations))
    seconds = [run for _, run, _ in spend_terms(observations)]
    if carried and observations:
        starts.discard(0)
        seconds[0] = 0.0
    before, runs = 0.0, []
    for k, run in enumerate(seconds):
        if k in starts:
            new = run if k == 0 else min(run, float(observations[k].get("uptime_seconds") or 0.0))
            if runs:
                runs[-1] += run - new
            else:
                before += run - new
            runs.append(new)
        elif runs:
            runs[-1] += run
        else:
            before += run
    return before, runs


def _run_start_indices(observations: Sequence[Mapping[str, Any]]) -> list[int]:
    """`run_starts`, as indices into `observations`."""
    starts = []
    prev: Mapping[str, Any] | None = None
    for i, o in enumerate(observations):
        up = o.get("uptime_seconds")
        after_idle = prev is None or prev.get("desired_status") != "RUNNING"
        if o.get("desired_status") == "RUNNING":
            restarted = (o.get("storage_per_hr") is None and up is not None
                         and prev is not None and prev.get("uptime_seconds") is not None
                         and up < prev["uptime_seconds"])
            if after_idle or restarted:
                starts.append(i)
        elif up and after_idle:
            before = (prev or {}).get("uptime_seconds")
            if o.get("storage_per_hr") is None or prev is None or (before is not None and up > before):
                starts.append(i)
        prev = o
    return starts


def spend_terms(observations: Sequence[Mapping[str, Any]]) -> list[tuple[float, float, float]]:
    """`estimate_spend`'s terms, each (USD, running seconds, of the USD the storage a Vast instance
    bills): the first is the run before the first poll, then one per pair of consecutive polls (the
    stretch between them). Reports place each term on the time it covers; their sum is `estimate_spend`.
    Storage is apart because it is paid whatever the pod runs on: an on-demand baseline pays it too."""
    if not observations:
        return []
    if observations[0].get("storage_per_hr") is not None:
        return _billing_terms(observations)
    first = observations[0]
    # An observation that is not RUNNING but carries an uptime is an *exit observation* (written by the
    # executor at the moment a run ended, read from lastStatusChange): the run lasted that long.
    before = float(first["uptime_seconds"]) if first.get("uptime_seconds") else 0.0
    terms = [(float(first.get("cost_per_hr") or 0) * before / 3600, before, 0.0)]
    for a, b in itertools.pairwise(observations):
        dt = (b["ts"] - a["ts"]).total_seconds() if isinstance(a["ts"], datetime) else float(b["ts"] - a["ts"])
        a_run = a.get("desired_status") == "RUNNING"
        a_up: float | None = a.get("uptime_seconds")
        b_up: float | None = b.get("uptime_seconds")
        # b ran up to its own time: a RUNNING poll, or an exit observation (not RUNNING, with an uptime).
        b_run = b.get("desired_status") == "RUNNING" or b_up is not None
        a_cost, b_cost = float(a.get("cost_per_hr") or 0), float(b.get("cost_per_hr") or 0)
        usd = run = 0.0
        if _time_base(a) != _time_base(b):
            if a_run and b_run and a_up is not None and b_up is not None and b_up > a_up:
                run = float(b_up) - float(a_up)
                usd = a_cost * run / 3600
            terms.append((usd, run, 0.0))
            continue
        # Uptime did not fall: one continuous run. (Counting its growth, not the interval, is what keeps
        # a jump of the polls' clock, e.g. a --now far from the API's own time, from booking a fortune.)
        grew = None if a_up is None or b_up is None else float(b_up) - float(a_up)
        continuous = a_run and b_run and grew is not None and grew >= min(0.0, dt - max(30.0, 0.1 * dt))
        if continuous and grew is not None:
            run = min(grew, dt)
            usd = a_cost * run / 3600
        elif b_run and b_up is not None:
            after = min(float(b_up), dt)
            usd, run = b_cost * after / 3600, after
            if a_run:
                usd += a_cost * (dt - after) / 2 / 3600
                run += (dt - after) / 2
        elif a_run:
            usd, run = a_cost * dt / 2 / 3600, dt / 2
        terms.append((usd, run, 0.0))
    return terms


def _billing_terms(observations: Sequence[Mapping[str, Any]]) -> list[tuple[float, float, float]]:
    """The terms of a Vast instance from its *billing observations* (`storage_per_hr` set):
    `uptime_seconds` is the instance's total running time so far (Vast's `uptime_mins`), `cost_per_hr`
    its compute rate (pay-as-bid per instance, or on-demand) and `storage_per_hr` the storage it bills
    whether it runs, is paused by a higher bid, or is stopped. Between two polls it ran exactly the
    growth of the total running time (at the earlier poll's compute rate: a new bid is written as a
    poll), and stored for the whole interval. Without a running total, half the interval as for RunPod."""
    first = observations[0]
    before = float(first.get("uptime_seconds") or 0)
    terms = [(float(first.get("cost_per_hr") or 0) * before / 3600, before, 0.0)]
    for a, b in itertools.pairwise(observations):
        dt = (b["ts"] - a["ts"]).total_seconds() if isinstance(a["ts"], datetime) else float(b["ts"] - a["ts"])
        a_up, b_up = a.get("uptime_seconds"), b.get("uptime_seconds")
        if a_up is not None and b_up is not None:
            ran = min(max(float(b_up) - float(a_up), 0.0), dt)
        else:
            ran = dt / 2 if a.get("desired_status") == "RUNNING" else 0.0
        if _time_base(a) != _time_base(b):  # two clocks: only the running total vouches for anything
            ran = max(float(b_up) - float(a_up), 0.0) if a_up is not None and b_up is not None else 0.0
            dt = 0.0
        stored = float(a.get("storage_per_hr") or 0) * dt / 3600
        terms.append((float(a.get("cost_per_hr") or 0) * ran / 3600 + stored, ran, stored))
    return terms


def _time_base(observation: Mapping[str, Any]) -> str:
    """"wall" or "virtual" (the emulator's clock and a --now share one time line in practice)."""
    return "wall" if observation.get("clock", "wall") == "wall" else "virtual"
