"""bidder.toml: loading, defaults, validation (one clear ConfigError naming key and file), and the
settings table kept in step with the README."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bidder.errors import ConfigError
from bidder.jobs import SETTINGS, collect_settings, job_from_values, load_config, pod_attempt, pod_name
from bidder.models import JobSpec, Policy

EXAMPLE = """
max_spend_per_hour = 3.5
collect_interval = "10m"

[defaults]
tolerance = "low"
image = "runpod/pytorch:latest"
max_price = 0.6
min_vram = 24

[jobs.train]
gpu = ["NVIDIA RTX A6000", "NVIDIA A40"]
gpus = 2
hours = 20
deadline = "3d"
budget = 50
restart_overhead = "15m"
ports = "8888/http,22/tcp"
env = {WANDB_PROJECT = "demo", SEED = 3}
volume = 40
on_finish = "terminate"
speed = {"NVIDIA A40" = 1.2}

[jobs.notebook]
keep_running = true
cloud = "secure"
deadline_free = false
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bidder.toml"
    path.write_text(text)
    return path


def test_a_full_file_loads_into_jobspec_policy_and_template(tmp_path):
    cfg = load_config(write(tmp_path, EXAMPLE.replace("deadline_free = false\n", "")))
    assert cfg.max_spend_per_hour == 3.5
    assert cfg.collect_interval == timedelta(minutes=10)
    assert cfg.spot_recheck == timedelta(days=1)
    assert list(cfg.jobs) == ["train", "notebook"]
    train = cfg.job("train")
    # gpu in the job table replaces min_vram from [defaults].
    assert train.job == JobSpec(gpu_types=("NVIDIA RTX A6000", "NVIDIA A40"), min_vram_gb=None, gpu_count=2,
                                cloud="ANY", work_hours=20.0, keep_running=False, deadline=None,
                                restart_overhead_hours=0.25, speed_factors=(("NVIDIA A40", 1.2),),
                                disk_gb=80.0)  # disk + volume: the storage a Vast instance bills
    assert train.policy == Policy(max_price=0.6, budget=50.0, tolerance=0.5, min_savings=0.15)
    assert train.template.image == "runpod/pytorch:latest"
    assert train.template.ports == "8888/http,22/tcp"
    assert train.template.env == (("WANDB_PROJECT", "demo"), ("SEED", "3"))
    assert (train.template.volume, train.template.disk, train.template.mount) == (40, 40, "/workspace")
    assert train.template.name_prefix == "bidder-train"
    assert train.on_finish == "terminate"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert train.job_spec(start).deadline == start + timedelta(days=3)
    assert train.job_spec(None).deadline is None
    notebook = cfg.job("notebook")
    assert notebook.job.keep_running and notebook.job.work_hours is None
    assert notebook.job.min_vram_gb == 24 and notebook.job.cloud == "SECURE"
    assert notebook.on_finish == "stop" and notebook.max_attempts == 4
    assert notebook.value("tolerance") == 0.5 and notebook.value("disk") == 40


def test_absolute_deadline_and_pod_names(tmp_path):
    cfg = load_config(write(tmp_path, '[jobs.a]\nimage = "x"\nmin_vram = 24\nhours = 5\ndeadline = 2026-02-01T00:00:00Z\n'
                                      'name = "exp7"\n'))
    a = cfg.job("a")
    assert a.job_spec(None).deadline == datetime(2026, 2, 1, tzinfo=UTC)
    assert a.template.name_prefix == "exp7"
    assert pod_name(a.template.name_prefix, 3) == "exp7-3"


def test_pod_name_prefixes_of_their_own_load_and_never_claim_each_others_names(tmp_path):
    # One prefix the start of another's (a, a-1, a-1-xyzw): names end in -ATTEMPT then -LEDGERID (a letter
    # first), so no name is two jobs'; one [defaults] name for a single job is its own.
    cfg = load_config(write(tmp_path, '[defaults]\nimage = "x"\ngpu = ["A"]\nhours = 1\nname = "solo"\n'
                                      '[jobs.a]\nname = "a"\n[jobs.a-1]\nname = "a-1"\n[jobs.c]\nname = "a-1-xyzw"\n'))
    prefixes = [jc.template.name_prefix for jc in cfg.jobs.values()]
    names = {pod_name(p, n, lid): p for p in prefixes for n in (1, 2, 12) for lid in (None, "xyzw", "k3f9x")}
    assert len(names) == 3 * 3 * 3
    for name, own in names.items():
        assert [p for p in prefixes if pod_attempt(p, name) is not None] == [own], name
    assert load_config(write(tmp_path, '[defaults]\nname = "solo"\n[jobs.a]\nimage = "x"\nmin_vram = 24\n'
                                       'hours = 1\n')).job("a").template.name_prefix == "solo"


@pytest.mark.parametrize(("text", "key", "fragment"), [
    ('[jobs.a]\nimage = "x"\ngpus = 0\n', "gpus", "[jobs.a] gpus = 0: must be >= 1"),
    ('[jobs.a]\nimage = "x"\ngpus = 17\n', "gpus", "[jobs.a] gpus = 17: must be <= 16"),  # as --gpus
    ('[jobs.a]\nimage = "x"\nmax_price = "cheap"\n', "max_price", "max_price = 'cheap': must be a number"),
    ('[jobs.a]\nimage = "x"\nhours = true\n', "hours", "[jobs.a] hours = true: must be a number"),  # (not True)
    # As the command line's --hours and --max-price: past these, a typo (1e308 hours launched a job).
    ('[jobs.a]\nimage = "x"\nhours = 1e308\n', "hours", "[jobs.a] hours = 1e+308: must be at most 1,000,000 hours"),
    ('[jobs.a]\nimage = "x"\nmax_price = 5000\n', "max_price",
     "[jobs.a] max_price = 5000: must be at most 1,000 USD per GPU-hour"),
    ('[jobs.a]\nimage = "x"\ntolerance = "sometimes"\n', "tolerance", "neither a preset"),
    ('[jobs.a]\nimage = "x"\ntolerance = inf\n', "tolerance", "tolerance = inf: tolerance must be from 0 to 1440"),
    ('[jobs.a]\nimage = "x"\ntolerance = "inf"\n', "tolerance", "tolerance = 'inf': tolerance must be from 0"),
    ('[jobs.a]\nimage = "x"\ntolerance = 1e308\n', "tolerance", "tolerance = 1e+308: tolerance must be from 0"),
    ('[jobs.a]\nimage = "x"\ncloud = "moon"\n', "cloud", "must be any, secure or community"),
    ('[jobs.a]\nimage = "x"\nports = "8888"\n', "ports", "'8888' is not PORT/http"),
    ('[jobs.a]\nimage = "x"\nmax-price = 1\n', "max-price", "write it 'max_price'"),
    ('[jobs.a]\nimage = "x"\nbogus = 1\n', "bogus", "unknown key 'bogus'"),
    ('[jobs.a]\nhours = 3\n', "image", "needs image"),
    ('[jobs.a]\nimage = "x"\ndeadline = "2d"\n', "deadline", "deadline needs hours"),
    ('[jobs.a]\nimage = "x"\nhours = 2\nkeep_running = true\n', "keep_running", "sets both hours and keep_running"),
    ('[jobs.a]\nimage = "x"\nhours = 2\nkeep_running = "yes"\n', "keep_running", "keep_running = 'yes': must be"),
    # A cloud of the other market: the job waited at every tick for quotes that never come, exit 0.
    ('[jobs.a]\nimage = "x"\nhours = 2\nmarket = "runpod"\ncloud = "verified"\n', "cloud",
     "[jobs.a] cloud = 'verified' is not a cloud of market = 'runpod': its clouds are secure, community (or any)"),
    ('[defaults]\ncloud = "secure"\n[jobs.a]\nimage = "x"\nhours = 2\nmarket = "vast"\n', "cloud",
     "[jobs.a] cloud = 'secure' (from [defaults]) is not a cloud of market = 'vast': its clouds are verified, "
     "unverified (or any)"),
    ('[jobs.a]\nimage = "x"\ngpu = ["A"]\nmin_vram = 3\n', "min_vram", "sets both gpu and min_vram"),
    ('[jobs.a]\nimage = "x"\nrestart_overhead = "soon"\n', "restart_overhead", "is not a duration"),
    # A bare number was read as seconds: `deadline = 2` a 2-second deadline (the job waited on every tick,
    # exit 0), `restart_overhead = 10` 10 seconds.
    ('[jobs.a]\nimage = "x"\nhours = 5\ndeadline = 2\n', "deadline",
     "[jobs.a] deadline = 2: '2' has no unit: give one, e.g. 2s, 2m, 2h or 2d (s, m, h, d, w)"),
    ('[jobs.a]\nimage = "x"\nhours = 5\ndeadline = "2"\n', "deadline", "'2' has no unit"),
    # A time without a timezone was read as UTC, silently: 18:00 meant in New York is 5 hours earlier.
    ('[jobs.a]\nimage = "x"\nhours = 5\ndeadline = 2026-12-07T18:00:00\n', "deadline",
     "[jobs.a] deadline = 2026-12-07T18:00:00: no timezone: write it with one, e.g. 2026-12-07T18:00:00Z for UTC"),
    ('[jobs.a]\nimage = "x"\nhours = 5\ndeadline = "2026-12-07 18:00"\n', "deadline",
     "deadline = '2026-12-07 18:00': no timezone"),
    ('[jobs.a]\nimage = "x"\nhours = 5\ndeadline = 2026-12-07\n', "deadline", "deadline = 2026-12-07: must be"),
    # A date alone: the fix it suggested ("2026-01-03Z") was refused in turn.
    ('[jobs.a]\nimage = "x"\nhours = 5\ndeadline = "2026-01-03"\n', "deadline",
     "e.g. 2026-01-03T00:00:00Z for UTC"),
    ('[jobs.a]\nimage = "x"\nhours = 5\ndeadline = "2026-01-03Z"\n', "deadline",
     "e.g. 2026-01-03T00:00:00Z for UTC"),
    ('[jobs.a]\nimage = "x"\nrestart_overhead = 10\n', "restart_overhead",
     "[jobs.a] restart_overhead = 10: '10' has no unit: give one, e.g. 10s, 10m, 10h or 10d"),
    ('collect_interval = 5\n', "collect_interval", "'5' has no unit"),
    ('spot_recheck = 1.5\n', "spot_recheck", "'1.5' has no unit"),
    ('[jobs.a]\nimage = "x"\non_finish = "explode"\n', "on_finish", "must be one of stop, terminate"),
    ('[jobs.a]\nimage = "x"\nenv = ["NOEQUALS"]\n', "env", "'NOEQUALS' is not KEY=VALUE"),
    ('[jobs.a]\nimage = "x"\nenv = ["A=1", "A=2"]\n', "env", "A is given twice (A='1', A='2'): give it once"),
    ('[jobs.a]\nimage = "x"\nenv = {A = "b\\nc"}\n', "env", "the value of A holds a line break at character 2"),
    ('[jobs.a]\nimage = "x/y\\n"\n', "image", "[jobs.a] image = 'x/y\\n': holds a line break at character 4"),
    ('[jobs.a]\nimage = "x"\nallow_spot = false\nallow_on_demand = false\n', "allow_on_demand", "neither"),
    ('[jobs.a]\nimage = "x"\ntolerance = "none"\nallow_on_demand = false\n', "tolerance", "on-demand only"),
    ('[jobs."bad name"]\nimage = "x"\n', "bad name", "job name 'bad name'"),
    # `bidder launch`'s own name: every tick would take the job for a launch (and its pods for the launch's).
    ('[jobs.bidder-launch]\nimage = "x"\n', "bidder-launch",
     "[jobs.bidder-launch]: 'bidder-launch' is the name `bidder launch` gives its pods; give the job another name"),
    # A pod-name prefix shared with `bidder launch`'s or another job's: a lost create adopted the other's pod
    # (a launch's and job launch's creates, both bidder-launch-1-xxxxx, were adopted crosswise).
    ('[jobs.launch]\nimage = "x"\ngpu = ["A"]\nhours = 1\n', "name",
     "[jobs.launch] names its pods bidder-launch-ATTEMPT-LEDGERID (by default bidder-JOB), as `bidder launch` names "
     'its own: a create whose answer was lost could adopt a launched pod as the job\'s; give [jobs.launch] a name '
     'of its own, e.g. name = "job-launch"'),
    ('[jobs.a]\nimage = "x"\ngpu = ["A"]\nhours = 1\nname = "bidder-launch"\n', "name",
     "[jobs.a] names its pods bidder-launch-ATTEMPT-LEDGERID (name = 'bidder-launch'), as `bidder launch`"),
    ('[defaults]\nname = "shared"\nimage = "x"\ngpu = ["A"]\nhours = 1\n[jobs.a]\n[jobs.b]\n', "name",
     "[jobs.a] (name = 'shared' from [defaults]) and [jobs.b] (name = 'shared' from [defaults]) both name their "
     "pods shared-ATTEMPT-LEDGERID: a create whose answer was lost could adopt the other job's pod; take name out "
     "of [defaults] (left out, a job's pods are named bidder-JOB-ATTEMPT-LEDGERID)"),
    ('[defaults]\nimage = "x"\ngpu = ["A"]\nhours = 1\n[jobs.a]\nname = "bidder-b"\n[jobs.b]\n', "name",
     "[jobs.a] (name = 'bidder-b') and [jobs.b] (by default bidder-JOB) both name their pods "
     'bidder-b-ATTEMPT-LEDGERID: a create whose answer was lost could adopt the other job\'s pod; give each job a '
     'name = "..." of its own'),
    ('[jobs.a]\nimage = "x"\nmax_spend_per_hour = 3\n', "max_spend_per_hour", "is a global setting"),
    ('budget = 3\n', "budget", "is a job setting"),
    ('colour = "red"\n', "colour", "unknown top-level key 'colour'"),
    ('collect_interval = "0s"\n', "collect_interval", "must be longer than 0"),
    ('[defaults]\ngpus = "two"\n[jobs.a]\nimage = "x"\n', "gpus", "[defaults] gpus = 'two'"),
    # Checked on their own, though every job overrides it (and with no job at all).
    ('[defaults]\nhours = -1\n[jobs.a]\nimage = "x"\ngpu = ["A"]\nhours = 2\n', "hours",
     "[defaults] hours = -1: must be greater than 0"),
    ('[defaults]\ntolerance = "sometimes"\n', "tolerance", "[defaults] tolerance = 'sometimes': tolerance"),
    ('jobs = 3\n', "jobs", "jobs must hold tables"),
    ('[jobs.a]\nimage = "x"\nmin_vram = 24\nhours = 1\ndeadline = "9999-12-31T23:00:00-05:00"\n', "deadline",
     "'9999-12-31T23:00:00-05:00' is out of range: in UTC it must fall in the years 1 to 9999"),  # (a traceback)
    # A duration, too long: "must be a duration ... or a time" (restart_overhead said "over 100 years").
    ('[jobs.a]\nimage = "x"\nmin_vram = 24\nhours = 1\ndeadline = "99999999w"\n', "deadline",
     "[jobs.a] deadline = '99999999w': duration '99999999w' is over 100 years: give a shorter one"),
    # A restart that loses more than the whole job, or than the whole window: a unit mistyped (10h for 10m).
    ('[jobs.a]\nimage = "x"\nhours = 2\nrestart_overhead = "10h"\n', "restart_overhead",
     "[jobs.a] restart_overhead = '10h' is longer than hours = 2, the work: a restart would lose more than the "
     "whole job; give the time a restart really loses"),
    ('[jobs.a]\nimage = "x"\nhours = 20\ndeadline = "10h"\nrestart_overhead = "15h"\nspeed = {"H" = 3}\n',
     "restart_overhead", "restart_overhead = '15h' is longer than deadline = '10h', the deadline's window: one "
     "restart would miss the deadline"),
    ('[defaults]\nrestart_overhead = "3h"\n[jobs.a]\nimage = "x"\nhours = 2\n', "restart_overhead",
     "[jobs.a] restart_overhead = '3h' (from [defaults]) is longer than hours = 2, the work"),
    # RunPod's settings on a Vast job, given in its own table (it would run without them, unsaid).
    ('[jobs.a]\nimage = "x"\nmarket = "vast"\nports = "22/tcp"\n', "ports",
     "[jobs.a] ports = '22/tcp' is RunPod's, but market = 'vast': a Vast instance cannot honour it; leave it out "
     'or set market = "runpod"'),
    ('[defaults]\nmarket = "Vast"\n[jobs.a]\nimage = "x"\ndata_center = "US-TX-3"\ntemplate_id = "t"\n',
     "template_id", "[jobs.a] template_id = 't', data_center = 'US-TX-3' are RunPod's, but market = 'Vast' (from "
     "[defaults]): a Vast instance cannot honour them"),
])
def test_a_bad_key_is_one_error_naming_key_and_file(tmp_path, text, key, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert fragment in message
    assert "\n" not in message
    assert info.value.key == key and info.value.path == str(path)


def test_a_restart_overhead_within_the_work_and_the_window_loads(tmp_path):
    # As long as the work is fine; the default 10m is never held to the work (a quick job's pod may take
    # longer to start than to run); a deadline given as a time has its window from the first launch.
    for table in ('hours = 2\nrestart_overhead = "2h"\n', "hours = 0.1\n",
                  'hours = 2\ndeadline = 2026-01-01T00:00:00Z\nrestart_overhead = "90m"\n',
                  'keep_running = true\nrestart_overhead = "1d"\n'):
        load_config(write(tmp_path, f'[jobs.a]\nimage = "x"\nmin_vram = 24\n{table}'))


def test_keep_running_false_written_out_beside_hours_loads(tmp_path):
    # Its default, written out: refused as "sets both hours and keep_running".
    config = load_config(write(tmp_path, '[jobs.a]\ngpu = ["A"]\nimage = "x"\nhours = 2\nkeep_running = false\n'))
    assert config.jobs["a"].job.work_hours == 2 and not config.jobs["a"].job.keep_running


def test_a_vast_job_may_inherit_runpods_settings_from_defaults(tmp_path):
    # [defaults] written for the RunPod jobs beside it: the tick says what the instance runs without.
    cfg = load_config(write(tmp_path, '[defaults]\nports = "22/tcp"\nnetwork_volume = "nv"\n[jobs.a]\nimage = "x"\n'
                                      'market = "vast"\nmin_vram = 24\nhours = 1\n'))
    assert cfg.job("a").template.ports == "22/tcp" and cfg.job("a").job.market == "vast"


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found: create it"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[jobs.a\n"))


def test_a_file_that_is_not_utf8_text_asks_whether_it_is_bidder_toml(tmp_path):
    """`tick --config bidder.db` said "not valid TOML: 'utf-8' codec can't decode byte 0xda in position 31"."""
    path = tmp_path / "bidder.db"
    path.write_bytes(b"SQLite format 3\x00\x10\x00\x01\x01\x00\x40\x20\x20\x00\x00\x00\x02\xda\xff")
    for read in (load_config, collect_settings):
        with pytest.raises(ConfigError) as info:
            read(path)
        assert str(info.value) == f"{path}: not UTF-8 text: is it bidder.toml?"


def test_a_relative_config_not_found_names_the_folder_looked_in(tmp_path, monkeypatch):
    """Cron runs in $HOME (or /): "config file bidder.toml not found" did not say where it looked."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=f"config file bidder.toml not found in {tmp_path}: create it"):
        load_config("bidder.toml")


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Notepad's UTF-8 starts with a BOM: "Invalid statement (at line 1, column 1)" before."""
    path = tmp_path / "bidder.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'[jobs.a]\nimage = "x"\nmin_vram = 24\nhours = 1\n')
    assert load_config(path).job("a").job.work_hours == 1.0


def test_launch_options_go_through_the_same_validation():
    cfg = job_from_values("launch", {"gpu": ("NVIDIA RTX A6000",), "gpus": 1, "max_price": 0.5, "image": "img",
                                      "env": ("A=1", "B=two=2"), "ports": "22/tcp"}, where="option")
    assert cfg.template.env == (("A", "1"), ("B", "two=2"))
    assert cfg.job.keep_running and cfg.policy.max_price == 0.5
    with pytest.raises(ConfigError, match=r"^--max-price -1: must be greater than 0$"):
        job_from_values("launch", {"max_price": -1, "image": "img"}, where="option")
    with pytest.raises(ConfigError, match=r"^bidder launch --restart-overhead 150m is longer than --hours 2, the work"):
        job_from_values("launch", {"hours": 2.0, "restart_overhead": timedelta(minutes=150), "image": "img"},
                        where="option")


def test_every_setting_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### bidder.toml settings", 1)
    assert len(section) == 2, "the README needs a '### bidder.toml settings' section"
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section[1], flags=re.MULTILINE))
    names = {s.name for s in SETTINGS}
    assert names - documented == set(), "settings missing from the README table"
    assert documented - names == set(), "README documents settings that do not exist"
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)
    for setting in SETTINGS:
        assert setting.help.endswith(".") and setting.scope in ("job", "global")
        if setting.default not in (None, ()):
            setting.parse(setting.default)  # every default passes its own validation


def test_every_job_option_of_launch_and_recommend_is_a_config_key():
    from bidder.cli import main

    names = {s.name for s in SETTINGS}
    not_job = {"--dry-run", "--yes", "--format", "--retries", "--now", "--allow-past", "--db", "--api-url",
               "--vast-url", "--refresh", "--config", "--wait"}
    for command in ("launch", "recommend"):
        for param in main.commands[command].params:
            option = param.opts[0]
            if option in not_job:
                continue
            assert option.lstrip("-").replace("-", "_") in names, f"{command} {option} has no bidder.toml key"


def test_the_readme_example_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("### bidder.toml\n", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    config = load_config(write(tmp_path, example))
    assert list(config.jobs) == ["train", "notebook"] and config.max_spend_per_hour == 4.0
    assert config.job("notebook").policy.tolerance == 0.0
