"""The schema of bidder's SQLite file, as frozen migrations.

`user_version` (PRAGMA) is the schema version; `MIGRATIONS[v]` turns a version v-1 file into
version v. Migrations are literal SQL (never generated from code), so an old file always upgrades
the same way. Never edit a released migration: add the next one. `data/README.md` documents every
table and column.
"""

from __future__ import annotations

__all__ = ["ACTION_KINDS", "ACTION_OUTCOMES", "MIGRATIONS", "SCHEMA_VERSION"]

SCHEMA_VERSION = 7

#: Mutations the ledger records (issue 5), and the outcomes an action row can have.
ACTION_KINDS: tuple[str, ...] = ("rent_spot", "bid_resume", "deploy_on_demand", "resume", "stop", "terminate")
ACTION_OUTCOMES: tuple[str, ...] = ("pending", "ok", "error", "dry_run")

# Version 1: market history. Version 2: the executor's ledger. Version 3: the market (runpod | vast)
# in every price key, Vast's offers, offer counts, and the market of each collection row. Version 4:
# which clock stamped each snapshot and poll (`clock`: wall | emulator | given; older rows wall), and
# polls in the same second kept apart (`seq` in the key of pod_observations). Version 5:
# the market of each managed pod, and the storage a Vast instance bills (running, paused or stopped).
MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE gpu_types (
    id TEXT PRIMARY KEY,
    display_name TEXT,
    manufacturer TEXT,
    memory_in_gb INTEGER,
    secure_cloud INTEGER,
    community_cloud INTEGER,
    max_gpu_count INTEGER,
    secure_price REAL,
    community_price REAL,
    secure_spot_price REAL,
    community_spot_price REAL,
    updated TEXT
);
CREATE TABLE prices (
    ts TEXT NOT NULL,
    gpu_type_id TEXT NOT NULL,
    cloud TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    minimum_bid_price REAL,
    uninterruptable_price REAL,
    stock_status TEXT,
    available_gpu_counts TEXT,
    max_unreserved_gpu_count INTEGER,
    list_spot_price REAL,
    list_on_demand_price REAL,
    PRIMARY KEY (ts, gpu_type_id, cloud, gpu_count)
) WITHOUT ROWID;
-- Covering: one market's floor series is read from the index alone (2x faster, 11% more bytes).
CREATE INDEX prices_market_ts ON prices (gpu_type_id, cloud, gpu_count, ts, minimum_bid_price,
    uninterruptable_price);
CREATE TABLE markets (
    gpu_type_id TEXT NOT NULL,
    cloud TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    first_ts TEXT NOT NULL,
    last_ts TEXT NOT NULL,
    PRIMARY KEY (gpu_type_id, cloud, gpu_count)
);
CREATE TABLE collections (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    duration_s REAL NOT NULL,
    quotes INTEGER NOT NULL,
    gpu_types INTEGER,
    error TEXT
);
CREATE INDEX collections_ts ON collections (ts);
""",
    2: """
CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    job TEXT,
    kind TEXT NOT NULL,
    pod_id TEXT,
    gpu_type_id TEXT,
    cloud TEXT,
    gpu_count INTEGER,
    bid_per_gpu REAL,
    expected_cost_per_hour REAL,
    reason TEXT,
    outcome TEXT NOT NULL,
    error TEXT,
    finished_ts TEXT
);
CREATE INDEX actions_job ON actions (job, id);
CREATE TABLE pods (
    pod_id TEXT PRIMARY KEY,
    job TEXT,
    name TEXT,
    gpu_type_id TEXT,
    cloud TEXT,
    gpu_count INTEGER,
    kind TEXT,
    bid_per_gpu REAL,
    created TEXT,
    state TEXT NOT NULL DEFAULT 'active',
    desired_status TEXT,
    last_seen TEXT,
    ended TEXT,
    interruptions INTEGER NOT NULL DEFAULT 0,
    note TEXT
);
CREATE INDEX pods_job ON pods (job);
CREATE TABLE pod_observations (
    pod_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    desired_status TEXT,
    cost_per_hr REAL,
    uptime_seconds REAL,
    PRIMARY KEY (pod_id, ts)
) WITHOUT ROWID;
CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    state TEXT,
    pod_id TEXT,
    work_done_hours REAL,
    spent REAL,
    interruptions INTEGER,
    started TEXT,
    finished TEXT,
    updated TEXT,
    extra TEXT
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT,
    updated TEXT
);
""",
    # SQLite cannot change a primary key in place: prices and markets are rebuilt with `market` in
    # their keys; every existing row is RunPod's (the only market before version 3).
    3: """
ALTER TABLE prices RENAME TO prices_v2;
CREATE TABLE prices (
    ts TEXT NOT NULL,
    market TEXT NOT NULL DEFAULT 'runpod',
    gpu_type_id TEXT NOT NULL,
    cloud TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    minimum_bid_price REAL,
    uninterruptable_price REAL,
    stock_status TEXT,
    available_gpu_counts TEXT,
    max_unreserved_gpu_count INTEGER,
    list_spot_price REAL,
    list_on_demand_price REAL,
    offer_count INTEGER,
    PRIMARY KEY (ts, market, gpu_type_id, cloud, gpu_count)
) WITHOUT ROWID;
INSERT INTO prices (ts, market, gpu_type_id, cloud, gpu_count, minimum_bid_price, uninterruptable_price,
    stock_status, available_gpu_counts, max_unreserved_gpu_count, list_spot_price, list_on_demand_price)
    SELECT ts, 'runpod', gpu_type_id, cloud, gpu_count, minimum_bid_price, uninterruptable_price,
    stock_status, available_gpu_counts, max_unreserved_gpu_count, list_spot_price, list_on_demand_price
    FROM prices_v2;
DROP TABLE prices_v2;
CREATE INDEX prices_market_ts ON prices (market, gpu_type_id, cloud, gpu_count, ts, minimum_bid_price,
    uninterruptable_price);
ALTER TABLE markets RENAME TO markets_v2;
CREATE TABLE markets (
    market TEXT NOT NULL DEFAULT 'runpod',
    gpu_type_id TEXT NOT NULL,
    cloud TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    first_ts TEXT NOT NULL,
    last_ts TEXT NOT NULL,
    PRIMARY KEY (market, gpu_type_id, cloud, gpu_count)
);
INSERT INTO markets (market, gpu_type_id, cloud, gpu_count, first_ts, last_ts)
    SELECT 'runpod', gpu_type_id, cloud, gpu_count, first_ts, last_ts FROM markets_v2;
DROP TABLE markets_v2;
ALTER TABLE collections ADD COLUMN market TEXT NOT NULL DEFAULT 'runpod';
CREATE TABLE offers (
    ts TEXT NOT NULL,
    offer_id INTEGER NOT NULL,
    machine_id INTEGER NOT NULL,
    host_id INTEGER,
    gpu_name TEXT NOT NULL,
    num_gpus INTEGER NOT NULL,
    gpu_ram_mb INTEGER,
    min_bid REAL,
    dph_total REAL,
    reliability REAL,
    verified INTEGER,
    storage_cost REAL,
    geolocation TEXT,
    PRIMARY KEY (ts, offer_id)
) WITHOUT ROWID;
CREATE INDEX offers_machine ON offers (machine_id, num_gpus, ts);
""",
    4: """
ALTER TABLE collections ADD COLUMN clock TEXT NOT NULL DEFAULT 'wall';
CREATE TABLE pod_observations_v3 (
    pod_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,
    desired_status TEXT,
    cost_per_hr REAL,
    uptime_seconds REAL,
    clock TEXT NOT NULL DEFAULT 'wall',
    PRIMARY KEY (pod_id, ts, seq)
) WITHOUT ROWID;
INSERT INTO pod_observations_v3 (pod_id, ts, desired_status, cost_per_hr, uptime_seconds)
    SELECT pod_id, ts, desired_status, cost_per_hr, uptime_seconds FROM pod_observations;
DROP TABLE pod_observations;
ALTER TABLE pod_observations_v3 RENAME TO pod_observations;
-- The newest poll of all pods, for the check that a command's time does not run backwards.
CREATE INDEX pod_observations_ts ON pod_observations (ts);
""",
    5: """
ALTER TABLE pods ADD COLUMN market TEXT NOT NULL DEFAULT 'runpod';
ALTER TABLE pod_observations ADD COLUMN storage_per_hr REAL;
""",
    # One Vast market's offers over a week (`machine_series`, each decision): without it, a scan of
    # every offer stored (23 ms a decision on the demo's two days).
    6: """
CREATE INDEX offers_market ON offers (gpu_name, num_gpus, verified, ts);
""",
    # A RunPod pod's volume disk (GB), which RunPod bills while the pod is stopped: NULL (unknown) for
    # every pod already there.
    7: """
ALTER TABLE pods ADD COLUMN volume_in_gb INTEGER;
""",
}
