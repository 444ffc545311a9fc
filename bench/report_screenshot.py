"""docs/report.png: the top of a demo report, photographed by headless Chromium (so the README shows what it gives).

    make demo && python bench/report_screenshot.py [demo-out/report.html] [--out docs/report.png]
Needs `chromium` (Debian: apt-get install chromium). The page fetches nothing, so the picture is the file as is.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (1200, 1500)  # the summary, data and metrics tables, the baselines


def screenshot(report: Path, out: Path, window: tuple[int, int] = WINDOW) -> Path:
    """Render `report` in headless Chromium at `window` (width, height) and write the PNG to `out`."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    if not report.is_file():
        raise SystemExit(f"{report}: no report; run `make demo` first")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mammo-shot-") as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                f"--window-size={window[0]},{window[1]}",
                f"--screenshot={out}",
                report.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
    return out


def main() -> None:
    """Photograph the report named on the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path, nargs="?", default=ROOT / "demo-out" / "report.html")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    args = p.parse_args()
    print(f"wrote {screenshot(args.report, args.out)}")


if __name__ == "__main__":
    main()
