"""The repository is self-contained: what users read (README, docs/, data READMEs, every command's
--help, the package's docstrings) never sends them to a document that is not in the repository,
and every `docs/...` page it names exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from cli_walk import help_text, iter_commands

ROOT = Path(__file__).resolve().parents[1]
#: Documents that live outside the repository (the house plan of the people who build bidder).
OUTSIDE = ("DESIGN.md", "shared/")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def _texts() -> dict[str, str]:
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in _tracked("*.md", "bidder/*.py")}
    texts.update({"bidder " + " ".join(path) + " --help": help_text(path) for path, _ in iter_commands()})
    texts["bidder --help"] = help_text(())
    return texts


TEXTS = _texts()


def test_the_texts_cover_readme_docs_data_and_help():
    for name in ("README.md", "docs/traces.md", "data/README.md", "data/traces/README.md",
                 "bidder import-trace --help", "bidder jobs stop --help", "bidder sim serve --help"):
        assert name in TEXTS


@pytest.mark.parametrize("outside", OUTSIDE)
def test_no_text_points_outside_the_repository(outside):
    wrong = sorted(name for name, text in TEXTS.items() if outside in text)
    assert wrong == [], f"{outside} is not in the repository; document what users need in docs/: {wrong}"


def test_every_docs_page_named_exists():
    missing = sorted({(name, page) for name, text in TEXTS.items()
                      for page in re.findall(r"docs/[\w./-]+\.md", text) if not (ROOT / page).is_file()})
    assert missing == []


def test_the_trace_page_names_every_column_the_reader_knows():
    from bidder.traces import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

    page = (ROOT / "docs" / "traces.md").read_text()
    for column in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "market"):
        assert f"| `{column}` |" in page, column
