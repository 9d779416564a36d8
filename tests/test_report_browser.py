"""The HTML report as a person sees it: rendered by headless Chromium (Debian's package).

`make browser` (a prerequisite of `make test`, and run by .ci/run) installs /usr/bin/chromium;
the playwright wheel drives it (its own browser downloads are never used).
"""

import io
from pathlib import Path

import psycopg
import pytest
from PIL import Image, ImageStat
from playwright.sync_api import sync_playwright
from report_support import HOSTILE_CATEGORY, HOSTILE_NOTE, expected_month

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed at /usr/bin/chromium. Run `make browser`.")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def open_page(browser, path: Path, width: int):
    """The file in a fresh page, with every console message, error, dialog and request kept."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    seen = {"console": [], "errors": [], "dialogs": [], "requests": []}
    page.on("console", lambda message: seen["console"].append((message.type, message.text)))
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("dialog", lambda dialog: (seen["dialogs"].append(dialog.message), dialog.dismiss()))
    page.on("request", lambda request: seen["requests"].append(request.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, seen


@pytest.fixture
def sample_report(seeded_url, run_cli, tmp_path):
    """The sample seeds plus one hostile user, category and note; the report for everyone."""
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        user_id = conn.execute(
            "insert into users (name, email, currency) values ('Mallory', 'm@example.com', 'USD') "
            "returning id"
        ).fetchone()[0]
        category_id = conn.execute(
            "insert into categories (name, color) values (%s, '#7E57C2') returning id",
            [HOSTILE_CATEGORY],
        ).fetchone()[0]
        conn.execute(
            "insert into expenses (user_id, category_id, amount, currency, date, note) "
            "values (%s, %s, 42.00, 'USD', '2025-05-03', %s)",
            [user_id, category_id, HOSTILE_NOTE],
        )
    assert run_cli(seeded_url, "run").exit_code == 0
    out = tmp_path / "report.html"
    result = run_cli(seeded_url, "report", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, user_id


def test_report_renders_in_chromium_without_errors(browser, sample_report, seeded_url):
    path, mallory = sample_report
    page, seen = open_page(browser, path, 1000)
    try:
        assert seen["errors"] == [] and seen["dialogs"] == []
        assert [m for m in seen["console"] if m[0] in ("error", "warning")] == []
        # Nothing fetched but the file itself: no network, no other file.
        assert seen["requests"] == [path.as_uri()]
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height > 2500
        headings = page.eval_on_selector_all(
            "h1, h2, h3", "els => els.map(e => e.textContent.trim())"
        )
        assert headings[0] == "Spending report"
        assert {"Overview", "Aman Kumar", "Priya Sharma", "Mallory"} <= set(headings)
        assert headings.count("Budget vs actual") == 3 and headings.count("Biggest expenses") == 3
        with psycopg.connect(seeded_url) as conn:
            users = conn.execute("select id, email from users order by id").fetchall()
        for user_id, email in users:
            expected = expected_month(seeded_url, user_id, "2025-05-01")
            symbol = "$" if user_id == mallory else "₹"
            shown = page.text_content(
                f'section[data-user-id="{user_id}"] [data-metric="spent"] .value'
            )
            assert shown == f"{symbol}{expected['spent']:,.2f}", email
        # Every chart drew something of a sensible size.
        boxes = page.eval_on_selector_all(
            "figure svg",
            "els => els.map(e => [e.getBoundingClientRect().width, "
            "e.getBoundingClientRect().height])",
        )
        assert len(boxes) == 8 and all(w > 300 and h > 80 for w, h in boxes)
        # The hostile note and category are text: shown as typed, never run.
        note = page.text_content(f'section[data-user-id="{mallory}"] td.note')
        assert note == HOSTILE_NOTE
        labels = page.eval_on_selector_all(
            f'section[data-user-id="{mallory}"] svg text', "els => els.map(e => e.textContent)"
        )
        assert HOSTILE_CATEGORY in labels
        assert page.evaluate("document.querySelectorAll('script, img').length") == 0
        png = page.screenshot(full_page=True)
        image = Image.open(io.BytesIO(png))
        assert image.size == (1000, height)
        # Not a blank page: the pixels vary.
        assert max(ImageStat.Stat(image.convert("L")).stddev) > 20
    finally:
        page.close()


def test_report_fits_a_phone_and_prints(browser, sample_report):
    path, _ = sample_report
    page, seen = open_page(browser, path, 390)
    try:
        assert seen["errors"] == []
        # Nothing wider than the screen: tables scroll inside their own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        widths = page.eval_on_selector_all(
            "figure svg", "els => els.map(e => e.getBoundingClientRect().width)"
        )
        assert widths and max(widths) <= 390
        page.emulate_media(media="print")
        assert (
            page.evaluate("getComputedStyle(document.querySelector('nav.users')).display") == "none"
        )
        breaks = page.eval_on_selector_all(
            "section.user", "els => els.map(e => getComputedStyle(e).breakBefore)"
        )
        assert breaks[1:] == ["page"] * (len(breaks) - 1)
        assert page.pdf(format="A4")[:5] == b"%PDF-"
    finally:
        page.close()
