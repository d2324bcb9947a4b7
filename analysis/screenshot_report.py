"""Regenerate the README's picture of the HTML cost report from a fresh `bidder demo`.

    python3 analysis/screenshot_report.py          # writes analysis/results/report_screenshot.png

Runs `bidder demo --days 7 --keep <tmp>`, opens `<tmp>/report/report.html` in headless Chromium
(Debian's `chromium`), crops the screenshot to the page and scales it to 900 px wide.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "analysis" / "results" / "report_screenshot.png"


def main(argv: list[str] | None = None) -> None:
    # Options read before anything runs: `--help` ran the demo and overwrote the README's picture.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"the picture to write (default {OUT.relative_to(ROOT)})")
    out = parser.parse_args(argv).out
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "demo"
        subprocess.run([sys.executable, "-c", "from bidder.cli import main; main()", "demo", "--days", "7",
                        "--keep", str(run)], check=True, stdout=subprocess.DEVNULL)
        shot = Path(tmp) / "shot.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={Path(tmp) / 'profile'}", "--hide-scrollbars", "--window-size=1100,12000",
                        f"--screenshot={shot}", (run / "report" / "report.html").as_uri()],
                       check=True, capture_output=True)
        image = Image.open(shot).convert("RGB")
        ink = image.convert("L").point(lambda v: 255 if v < 250 else 0)
        bottom = (ink.getbbox() or (0, 0, 0, image.height))[3]
        image = image.crop((0, 0, image.width, min(image.height, bottom + 16)))
        image = image.resize((900, round(image.height * 900 / image.width)), Image.LANCZOS)
        image.save(out, optimize=True)
    print(f"wrote {out} ({image.width} x {image.height})")


if __name__ == "__main__":
    main()
