"""Render an HTML report to a PNG with headless Chromium (how exports/sample/report.png is made).

    .venv/bin/python scripts/render_report.py exports/sample/report.html exports/sample/report.png

Needs Debian's chromium (`make browser`); playwright (from requirements-test.lock) drives it.
"""

import argparse
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1000, help="viewport width in CSS pixels")
    options = parser.parse_args()
    if not Path("/usr/bin/chromium").exists():
        print("Error: /usr/bin/chromium is missing. Run `make browser`.", file=sys.stderr)
        return 1
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = browser.new_page(viewport={"width": options.width, "height": 900})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(options.html.resolve().as_uri(), wait_until="load")
            page.screenshot(path=str(options.png), full_page=True)
        finally:
            browser.close()
    if errors:
        print(f"Error: the page raised {errors[0]}.", file=sys.stderr)
        return 1
    print(f"Wrote {options.png}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
