"""One vocabulary across commands. Every command's options (walked recursively through the groups,
so a new command is checked without anyone listing it) follow the same rules: an option of one name
means one thing, with one default, one range and one wording, wherever it appears.

The rules are data below; an exception names the command and says why.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import click
import pytest
from cli_walk import iter_commands
from click.testing import CliRunner

from bidder.cli import main
from bidder.cli.common import DEFAULT_DB, HOURS_HELP, parse_when
from bidder.models import PriceQuote
from bidder.store import Store
from bidder.units import to_iso

COMMANDS: dict[str, click.Command] = {" ".join(path): command for path, command in iter_commands()}
GROUPS: dict[str, click.Group] = {name: c for name, c in COMMANDS.items() if isinstance(c, click.Group)}

#: Old spellings that must not be shown (a hidden alias that keeps old scripts working is fine).
RETIRED = {"--gpu-type": "--gpu", "--gpu-types": "--gpu", "--gpu-id": "--gpu", "--database": "--db"}

#: Commands that print one object, not rows, so `--format` need not offer csv.
NOT_ROWS = {"launch": "prints one launch result", "recommend": "prints one decision and its alternatives"}

#: Options whose word means different things in different commands: their defaults and ranges
#: are not compared.
SEVERAL_MEANINGS = {
    "--days": "backtest: a service's span; demo: simulated days; sim trace: the trace's length",
    "--start": "backtest: the first job start; sim: the virtual clock's start",
    "--chart": "an output file of each command's own chart",
    "--trace": "backtest and sim serve read a trace, each for its own purpose",
    "--job": "a filter, or the job to stop",
    "--refresh": "a flag of its command",
}

#: (command, option) pairs whose default differs from the other commands', and why.
OWN_DEFAULT = {
    ("export", "--since"): "exports the whole history unless told otherwise",
    ("backtest", "--deadline"): "each replayed window needs a deadline (a batch job of 7 days)",
    ("backtest", "--db"): "reads a database only when asked (--trace or --db, exactly one)",
    ("backtest", "--reclaim-rate"): "replays the price history alone; the emulator models RunPod's reclaims",
    ("chart prices", "--gpu-count"): "a chart draws one GPU count",
    ("sim trace", "--market"): "writes one market's trace: RunPod's unless told",
}
#: Commands whose option takes only some of the shared choices, and why.
NARROWER = {
    ("sim trace", "--market"): "a trace is of one market; 'any' means nothing there",
}

#: Group options that only the group itself takes (not repeated after a subcommand).
GROUP_ONLY = {"--format": "formats the group's own listing; the subcommands print one line"}

#: If a command has this option, it is a choice of exactly these values.
CHOICES = {
    "--market": {"runpod", "vast", "any"},
    "--cloud": {"secure", "community", "verified", "unverified", "any"},
    "--format": None,  # checked below: table first, json, and csv where rows are printed
}


def _options(command: click.Command) -> dict[str, click.Option]:
    out: dict[str, click.Option] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                if opt.startswith("--"):
                    out[opt] = param
    return out


def _visible(command: click.Command) -> dict[str, click.Option]:
    return {name: p for name, p in _options(command).items() if not p.hidden}


OPTIONS = {name: _options(c) for name, c in COMMANDS.items()}


def _where(option: str) -> dict[str, click.Option]:
    return {name: opts[option] for name, opts in OPTIONS.items() if option in opts and not opts[option].hidden}


def _parent_has(command: str, option: str) -> bool:
    parent = command.rpartition(" ")[0]
    return bool(parent) and option in OPTIONS.get(parent, {})


def test_the_walk_finds_every_command_and_subcommand():
    assert {"collect", "tick", "jobs", "jobs stop", "jobs start", "chart prices", "sim serve", "sim trace",
            "backtest", "report", "recommend", "launch"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_retired_spelling_is_shown(command):
    shown = _visible(COMMANDS[command])
    for old, new in RETIRED.items():
        assert old not in shown, f"bidder {command}: {old} is spelled {new} (keep {old} as a hidden alias)"
        if old in OPTIONS[command]:
            assert new in shown, f"bidder {command}: the hidden alias {old} needs the option {new}"


@pytest.mark.parametrize("command", sorted(_where("--db")))
def test_db_takes_a_file_everywhere(command):
    option = OPTIONS[command]["--db"]
    assert not option.is_flag and not option._flag_needs_value, f"bidder {command}: --db must take a value"
    assert isinstance(option.type, click.Path)
    assert option.default in (DEFAULT_DB, None)
    if option.default == DEFAULT_DB:
        assert option.envvar == "BIDDER_DB"
    elif (command, "--db") not in OWN_DEFAULT:
        assert _parent_has(command, "--db"), f"bidder {command}: --db defaults to {DEFAULT_DB}"


@pytest.mark.parametrize("command", sorted(_where("--format")))
def test_format_is_table_json_and_csv_where_rows_are_printed(command):
    option = OPTIONS[command]["--format"]
    assert isinstance(option.type, click.Choice)
    choices = list(option.type.choices)
    assert choices[0] == "table" and option.default == "table" and "json" in choices
    if command not in NOT_ROWS:
        assert choices == ["table", "json", "csv"], f"bidder {command} prints rows: --format table|json|csv"


@pytest.mark.parametrize("command", sorted(_where("--since") | _where("--until")))
def test_since_and_until_take_a_duration_or_an_iso_time(command):
    opts = OPTIONS[command]
    assert "--since" in opts and "--until" in opts, f"bidder {command}: --since and --until come together"
    for name in ("--since", "--until"):
        option = opts[name]
        assert option.metavar == "WHEN" and not option.is_flag
        assert "duration" in option.help and "ISO 8601" in option.help, f"bidder {command} {name}: {option.help}"
    assert "'all'" in opts["--since"].help


@pytest.mark.parametrize("command", sorted(_where("--now")))
def test_now_is_a_time(command):
    option = OPTIONS[command]["--now"]
    assert option.metavar == "TIME" and option.default is None and not option.is_flag
    assert "ISO 8601" in option.help


@pytest.mark.parametrize("command", sorted(_where("--hours")))
def test_hours_are_described_alike(command):
    assert OPTIONS[command]["--hours"].help.startswith(HOURS_HELP), (
        f"bidder {command} --hours: begin the help with {HOURS_HELP!r}")


def test_hours_in_bidder_toml_are_described_alike():
    from bidder.jobs import SETTINGS

    assert next(s for s in SETTINGS if s.name == "hours").help.startswith(HOURS_HELP)


@pytest.mark.parametrize("option", sorted(o for o in CHOICES if CHOICES[o] is not None))
def test_choices_are_the_same_everywhere(option):
    for command, param in _where(option).items():
        assert isinstance(param.type, click.Choice), f"bidder {command} {option}"
        choices = {c.lower() for c in param.type.choices}
        if (command, option) in NARROWER:
            assert choices < CHOICES[option], f"bidder {command} {option}"
        else:
            assert choices == CHOICES[option], f"bidder {command} {option}"


def _shared_options() -> list[str]:
    counts: dict[str, int] = defaultdict(int)
    for opts in OPTIONS.values():
        for name, param in opts.items():
            if not param.hidden:
                counts[name] += 1
    return sorted(n for n, c in counts.items() if c > 1 and n not in SEVERAL_MEANINGS and n != "--help")


@pytest.mark.parametrize("option", _shared_options())
def test_one_default_per_option(option):
    defaults: dict[str, list[str]] = defaultdict(list)
    for command, param in _where(option).items():
        if (command, option) in OWN_DEFAULT:
            continue
        if param.default is None and _parent_has(command, option):
            continue  # a subcommand's copy of its group's option: None means "as given to the group"
        default = param.default
        defaults[repr(tuple(default) if isinstance(default, list) else default)].append(command)
    assert len(defaults) <= 1, f"{option} has different defaults: {dict(defaults)} (or add to OWN_DEFAULT, why)"


def _range(param: click.Option) -> tuple[object, ...]:
    t = param.type
    if isinstance(t, (click.IntRange, click.FloatRange)):
        return (type(t).__name__, t.min, t.max, t.min_open, t.max_open)
    if isinstance(t, click.Choice):
        return ("Choice", frozenset(c.lower() for c in t.choices))
    return (t.name,)


@pytest.mark.parametrize("option", [o for o in _shared_options() if o != "--format"])  # --format: above
def test_one_type_and_range_per_option(option):
    ranges: dict[tuple[object, ...], list[str]] = defaultdict(list)
    for command, param in _where(option).items():
        if (command, option) not in NARROWER:  # checked against the shared choices above
            ranges[_range(param)].append(command)
    assert len(ranges) == 1, f"{option} takes different values in different commands: {dict(ranges)}"


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_group_options_are_accepted_after_the_subcommand(group):
    mine = {n for n, p in _visible(GROUPS[group]).items() if n not in GROUP_ONLY and n != "--help"}
    for sub in GROUPS[group].commands:
        missing = mine - set(OPTIONS[f"{group} {sub}"])
        assert not missing, f"bidder {group} {sub} does not accept {sorted(missing)} after its name"


# -- behaviour behind the rules ----------------------------------------------------------------------------
def test_parse_when_reads_durations_times_and_all():
    now = datetime(2026, 1, 8, tzinfo=UTC)
    assert parse_when("7d", now, "--since") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_when("2026-01-02T03:04:05Z", now, "--until") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_when("all", now, "--since", allow_all=True) is None
    assert parse_when(None, now, "--until") is None
    for text, allow_all in (("all", False), ("last week", True)):
        with pytest.raises(click.BadParameter, match="neither a duration before now"):
            parse_when(text, now, "--since", allow_all=allow_all)


def test_until_takes_a_duration_in_history_export_and_report(tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    db = tmp_path / "bidder.db"
    with Store.open(db) as store:
        store.import_quotes([PriceQuote(now - timedelta(hours=h), "NVIDIA RTX A6000", "COMMUNITY", 1, 0.2, 0.49)
                             for h in range(1, 49)])
    runner = CliRunner()
    exported = runner.invoke(main, ["export", "--db", str(db), "--since", "30h", "--until", "10h"])
    assert exported.exit_code == 0, exported.output
    assert len(exported.stdout.splitlines()) == 1 + 20  # the header and hours 11..30 before now
    history = runner.invoke(main, ["history", "A6000", "--db", str(db), "--since", "30h", "--until", "10h",
                                   "--format", "json"])
    assert history.exit_code == 0, history.output
    report = runner.invoke(main, ["report", "--db", str(db), "--since", "2d", "--until", to_iso(now)])
    assert report.exit_code == 0, report.output
    bad = runner.invoke(main, ["export", "--db", str(db), "--until", "noonish"])
    assert bad.exit_code == 2 and "'noonish' is neither a duration before now" in bad.stderr


def test_jobs_subcommands_take_config_and_db_after_their_name(tmp_path):
    config = tmp_path / "my.toml"
    config.write_text('[jobs.train]\ngpu = ["NVIDIA RTX A6000"]\nhours = 2\nimage = "img"\n')
    db = tmp_path / "j.db"
    Store.open(str(db)).close()  # (`jobs start` refuses a database that does not exist)
    runner = CliRunner()
    before = runner.invoke(main, ["jobs", "--config", str(config), "--db", str(db), "start", "train"])
    after = runner.invoke(main, ["jobs", "start", "train", "--config", str(config), "--db", str(db)])
    assert before.exit_code == after.exit_code == 0, before.output + after.output
    assert before.output == after.output == "train: the next tick runs it\n"
    listing = runner.invoke(main, ["jobs", "--config", str(config), "--db", str(db), "--format", "csv"])
    assert listing.exit_code == 0 and listing.stdout.splitlines()[0].startswith("job,state,pod,")


@pytest.mark.parametrize("group", ["chart", "sim"])
def test_a_group_alone_shows_its_help_as_bidder_alone_does_not_an_error_holding_it(group):
    # (`bidder chart` printed "Error: Usage: bidder chart ..." with the whole help, then "(see ... --help)".)
    alone = CliRunner().invoke(main, [group])
    assert alone.exit_code == CliRunner().invoke(main, []).exit_code, alone.output
    assert alone.stderr.startswith(f"Usage: main {group} [OPTIONS] COMMAND [ARGS]..."), alone.stderr
    assert "Error" not in alone.stderr and "Traceback" not in alone.output
