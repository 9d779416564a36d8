"""The HTML report: one self-contained file with a month's spending, budgets, alerts and charts.

Every number comes from the marts that `run` built in schema analytics (monthly_totals,
rolling_trend, top_categories, budget_vs_actual, alerts, fact_expenses, dim_user,
dim_category), read in one repeatable-read snapshot with a handful of set-based queries
whatever the number of users. Money stays Decimal from the database to the page and is
formatted in the user's currency.

Charts are matplotlib figures saved as SVG and put inline: no script, no network, no file
beside the page, so the report opens from an e-mail attachment or a USB stick. Text stays
text in the SVG (svg.fonttype 'none': small, selectable, and escaped by matplotlib's XML
writer), ids are deterministic (svg.hashsalt) and prefixed per chart so several charts can
share one page. The page is a Jinja2 template with autoescaping on: a note holding
`<script>` is shown as text.

API:
    load_report(conn, user=None, month=None) -> Report      the numbers, nothing drawn
    render_report(report) -> str                             the HTML page
    write_report(url, out, user=None, month=None) -> ReportFile   both, written atomically
"""

import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import jinja2
import psycopg
from psycopg.rows import dict_row

from tracker.errors import InputError, TrackerError
from tracker.everyday.users import find_user
from tracker.everyday.validate import Month, parse_month
from tracker.pipeline.models import SCHEMA
from tracker.plumbing.db import connect

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# What the report reads; a missing one means `run` has not built the models yet.
RELATIONS = (
    "dim_user",
    "dim_category",
    "monthly_totals",
    "rolling_trend",
    "top_categories",
    "budget_vs_actual",
    "alerts",
    "fact_expenses",
    "fact_budgets",
)
TREND_MONTHS = 12
MIN_TREND_SLOTS = 6
MAX_BAR_PCT = 200.0
TOP_CATEGORIES = 8
BIGGEST_EXPENSES = 10
STATUS_COLORS = {"under": "#2e7d32", "near": "#ef8f00", "over": "#c62828"}
CURRENCY_SYMBOLS = {"INR": "₹", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
CHART_FONTS = ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica", "sans-serif"]


@dataclass
class UserMonth:
    """One user's section of the report: the month's figures and the rows behind the charts."""

    user_id: int
    name: str
    currency: str
    month: date | None  # None: the user has no expenses and no budgets
    total_spent: Decimal = Decimal("0.00")
    expense_count: int = 0
    budget_total: Decimal = Decimal("0.00")
    remaining_total: Decimal = Decimal("0.00")
    rolling_3m_avg: Decimal | None = None
    trend: list[dict] = field(default_factory=list)
    categories: list[dict] = field(default_factory=list)
    budgets: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    expenses: list[dict] = field(default_factory=list)

    @property
    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUS_COLORS, 0)
        for row in self.budgets:
            counts[row["status"]] += 1
        return counts


@dataclass
class Report:
    """What one report shows: for whom, which month, and one section per user."""

    generated_at: datetime
    requested_month: Month | None
    single_user: bool
    users: list[UserMonth]


@dataclass(frozen=True)
class ReportFile:
    """A written report: where, how big, for how many users."""

    path: Path
    bytes: int
    users: int


def write_report(url: str, out: Path | str, user=None, month=None) -> ReportFile:
    """Read the marts and write the HTML report to out, replacing it only when complete."""
    path = Path(out).expanduser().absolute()
    if path.is_dir():
        raise InputError(
            f"Error: --out {path} is a directory. Give a file name such as report.html."
        )
    with connect(url) as conn:
        report = load_report(conn, user=user, month=month)
    page = render_report(report)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as target:
            target.write(page)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as exc:
        raise TrackerError(
            f"Error: cannot write the report to {path}: {exc.strerror or exc}. "
            "Choose another --out."
        ) from None
    return ReportFile(path, path.stat().st_size, len(report.users))


# --- the numbers ----------------------------------------------------------------------------


def load_report(conn: psycopg.Connection, user=None, month=None) -> Report:
    """The report's numbers for one user (e-mail or id) or all, for month or each user's last.

    Without a month each user gets their latest month with an expense (or a budget).
    """
    requested = parse_month(month, what="--month") if month is not None else None
    conn.read_only = True
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    with conn.transaction():
        _check_relations(conn)
        user_ids = [find_user(conn, user).id] if user is not None else None
        picked = _pick_months(conn, user_ids, requested)
        sections = [UserMonth(**row) for row in picked]
        _fill(conn, sections)
    return Report(datetime.now(UTC), requested, user is not None, sections)


def _check_relations(conn) -> None:
    missing = [
        name
        for name in RELATIONS
        if conn.execute("select to_regclass(%s)", [f"{SCHEMA}.{name}"]).fetchone()[0] is None
    ]
    if missing:
        raise TrackerError(
            f"Error: the report reads {SCHEMA}.{missing[0]}, which does not exist. "
            "Build the models with `python cli.py run`, then make the report again."
        )


def _pick_months(conn, user_ids, requested: Month | None) -> list[dict]:
    # For one user every relation is filtered on that user (PostgreSQL pushes it into the
    # views); for everyone nothing is. The two texts are fixed: values stay parameters.
    only = "where {}.user_id = any(%(user_ids)s)" if user_ids is not None else ""
    query = f"""
        with chosen_users as (
            select dim_user.user_id, dim_user.name, dim_user.currency
            from {SCHEMA}.dim_user as dim_user
            {only.format("dim_user")}
        ),
        last_months as (
            select monthly_totals.user_id, max(monthly_totals.month) as month
            from {SCHEMA}.monthly_totals as monthly_totals
            {only.format("monthly_totals")}
            group by monthly_totals.user_id
        ),
        last_budget_months as (
            select fact_budgets.user_id, max(fact_budgets.month) as month
            from {SCHEMA}.fact_budgets as fact_budgets
            {only.format("fact_budgets")}
            group by fact_budgets.user_id
        )
        select
            chosen_users.user_id,
            chosen_users.name,
            chosen_users.currency,
            coalesce(%(month)s::date, last_months.month, last_budget_months.month) as month
        from chosen_users
        left join last_months
            on last_months.user_id = chosen_users.user_id
        left join last_budget_months
            on last_budget_months.user_id = chosen_users.user_id
        order by chosen_users.user_id
    """
    params = {"user_ids": user_ids or [], "month": requested.first_day if requested else None}
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query, params).fetchall()


def _fill(conn, sections: list[UserMonth]) -> None:
    """Every section's rows, with one query per mart for all users at once."""
    keyed = {section.user_id: section for section in sections if section.month is not None}
    if not keyed:
        return
    # The (user, month) pairs every query joins to: the selection, set-based.
    pairs = {
        "user_ids": list(keyed),
        "months": [keyed[user_id].month for user_id in keyed],
        "trend_months": TREND_MONTHS,
        "top": TOP_CATEGORIES,
        "biggest": BIGGEST_EXPENSES,
    }
    selection = (
        "select * from unnest(%(user_ids)s::bigint[], %(months)s::date[]) as s (user_id, month)"
    )
    # Each query also filters its mart on the users directly: PostgreSQL pushes that into
    # the views (into their window partitions too), so one user's report reads one user.
    queries = {
        "totals": f"""
            with selection as ({selection})
            select monthly_totals.user_id, monthly_totals.total_spent, monthly_totals.expense_count
            from {SCHEMA}.monthly_totals as monthly_totals
            inner join selection
                on selection.user_id = monthly_totals.user_id
                and selection.month = monthly_totals.month
            where monthly_totals.user_id = any(%(user_ids)s)
        """,
        "trend": f"""
            with selection as ({selection})
            select rolling_trend.user_id, rolling_trend.month, rolling_trend.total_spent,
                rolling_trend.rolling_3m_avg
            from {SCHEMA}.rolling_trend as rolling_trend
            inner join selection
                on selection.user_id = rolling_trend.user_id
                and rolling_trend.month <= selection.month
                and rolling_trend.month
                    > selection.month - make_interval(months => %(trend_months)s)
            where rolling_trend.user_id = any(%(user_ids)s)
            order by rolling_trend.user_id, rolling_trend.month
        """,
        "categories": f"""
            with selection as ({selection})
            select top_categories.user_id, top_categories.rank, top_categories.category,
                top_categories.total_spent, top_categories.expense_count,
                top_categories.share_pct, dim_category.color
            from {SCHEMA}.top_categories as top_categories
            inner join selection
                on selection.user_id = top_categories.user_id
                and selection.month = top_categories.month
            left join {SCHEMA}.dim_category as dim_category
                on dim_category.category_id = top_categories.category_id
            where top_categories.user_id = any(%(user_ids)s)
                and top_categories.rank <= %(top)s
            order by top_categories.user_id, top_categories.rank
        """,
        "budgets": f"""
            with selection as ({selection})
            select budget_vs_actual.user_id, budget_vs_actual.category,
                budget_vs_actual.budget_amount, budget_vs_actual.spent,
                budget_vs_actual.remaining, budget_vs_actual.pct_used, budget_vs_actual.status
            from {SCHEMA}.budget_vs_actual as budget_vs_actual
            inner join selection
                on selection.user_id = budget_vs_actual.user_id
                and selection.month = budget_vs_actual.month
            where budget_vs_actual.user_id = any(%(user_ids)s)
            order by budget_vs_actual.user_id, budget_vs_actual.spent desc,
                budget_vs_actual.category
        """,
        "alerts": f"""
            with selection as ({selection})
            select alerts.user_id, alerts.alert_id, dim_category.category, alerts.message,
                alerts.spent, alerts.budget_amount, alerts.fired_at, alerts.acknowledged_at
            from {SCHEMA}.alerts as alerts
            inner join selection
                on selection.user_id = alerts.user_id
                and selection.month = alerts.month
            left join {SCHEMA}.dim_category as dim_category
                on dim_category.category_id = alerts.category_id
            where alerts.user_id = any(%(user_ids)s)
            order by alerts.user_id, alerts.fired_at, alerts.alert_id
        """,
        "expenses": f"""
            with selection as ({selection}),
            ranked as (
                select fact_expenses.*,
                    row_number() over (
                        partition by fact_expenses.user_id
                        order by fact_expenses.amount desc, fact_expenses.date desc,
                            fact_expenses.expense_id desc
                    ) as position
                from {SCHEMA}.fact_expenses as fact_expenses
                inner join selection
                    on selection.user_id = fact_expenses.user_id
                    and selection.month = fact_expenses.month
                where fact_expenses.user_id = any(%(user_ids)s)
            )
            select ranked.user_id, ranked.expense_id, ranked.date, dim_category.category,
                ranked.amount, ranked.note
            from ranked
            left join {SCHEMA}.dim_category as dim_category
                on dim_category.category_id = ranked.category_id
            where ranked.position <= %(biggest)s
            order by ranked.user_id, ranked.position
        """,
        "budget_totals": f"""
            with selection as ({selection})
            select budget_vs_actual.user_id,
                sum(budget_vs_actual.budget_amount) as budget_total,
                sum(budget_vs_actual.remaining) as remaining_total
            from {SCHEMA}.budget_vs_actual as budget_vs_actual
            inner join selection
                on selection.user_id = budget_vs_actual.user_id
                and selection.month = budget_vs_actual.month
            where budget_vs_actual.user_id = any(%(user_ids)s)
            group by budget_vs_actual.user_id
        """,
    }
    with conn.cursor(row_factory=dict_row) as cursor:
        for name, query in queries.items():
            for row in cursor.execute(query, pairs).fetchall():
                section = keyed[row.pop("user_id")]
                if name == "totals":
                    section.total_spent = row["total_spent"]
                    section.expense_count = row["expense_count"]
                elif name == "budget_totals":
                    section.budget_total = row["budget_total"]
                    section.remaining_total = row["remaining_total"]
                else:
                    getattr(section, name).append(row)
    for section in keyed.values():
        for point in section.trend:
            if point["month"] == section.month:
                section.rolling_3m_avg = point["rolling_3m_avg"]


# --- formatting -----------------------------------------------------------------------------


def format_money(value: Decimal | None, currency: str) -> str:
    """An exact amount in the user's currency: ₹1,234.50, -$20.00, CHF 3,000.00."""
    if value is None:
        return ""
    amount = Decimal(value).quantize(Decimal("0.01"))
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{abs(amount):,.2f}"


def format_pct(value: Decimal | None) -> str:
    return "" if value is None else f"{value} %"


def month_label(value: date | None) -> str:
    return "" if value is None else value.strftime("%B %Y")


# --- charts ---------------------------------------------------------------------------------


def _figure(width: float, height: float, left: float, bottom: float, top: float):
    """A matplotlib Figure (no pyplot, no global state) with fixed margins in inches.

    Fixed margins instead of bbox_inches="tight": that draws every figure twice, and the
    charts dominate the report's time (hundreds of users make hundreds of charts).
    """
    import matplotlib
    from matplotlib.figure import Figure

    matplotlib.rcParams.update(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "smart-spending-tracker",
            "text.parse_math": False,  # a "$" in a category name is a dollar, not TeX
            "font.family": "sans-serif",
            "font.sans-serif": CHART_FONTS,
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.edgecolor": "#9e9e9e",
            "axes.titlesize": 10,
        }
    )
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(
        left=left / width, right=1 - 0.15 / width, bottom=bottom / height, top=1 - top / height
    )
    return figure, figure.add_subplot()


def _label_inches(labels) -> float:
    """Room for the longest y-axis label at 9 pt (about 0.075 in a character), capped."""
    longest = max((len(str(label)) for label in labels), default=4)
    return min(0.3 + 0.075 * longest, 2.6)


_TAG = re.compile(r"<[^<>]+>")
_FORBIDDEN_TAG = re.compile(
    r"^<\s*/?\s*(script|foreignobject|iframe)\b|\son[a-z]+\s*=", re.IGNORECASE
)


def _svg(figure, chart_id: str) -> str:
    """The figure as an inline <svg> element with ids unique to chart_id."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    # Matplotlib's RDF block names its creator and licence vocabularies by URL: not needed.
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    text = (
        re.sub(r'\sxmlns:(dc|cc|rdf)="[^"]*"', "", text[: text.index(">") + 1], count=3)
        + text[text.index(">") + 1 :]
    )
    # Its stylesheet says "*{...}", which inline in HTML would reach the whole page.
    text = text.replace('<style type="text/css">*{', '<style type="text/css">svg.chart *{')

    # Ids and references live inside tags only: text nodes (user data) are left alone.
    def rewrite(match: re.Match) -> str:
        tag = match.group(0)
        if _FORBIDDEN_TAG.search(tag):
            raise TrackerError(
                f"Error: chart {chart_id} produced unexpected SVG markup. Report this as a bug."
            )
        tag = re.sub(r'\sid="([^"]+)"', lambda m: f' id="{chart_id}-{m.group(1)}"', tag)
        tag = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{chart_id}-{m.group(1)})", tag)
        tag = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{chart_id}-{m.group(1)}"', tag)
        if tag.startswith("<svg"):
            # Scales with the page: the viewBox stays, the fixed size goes.
            tag = re.sub(r'\s(width|height)="[^"]*"', "", tag)
            tag = tag.replace("<svg", '<svg class="chart" role="img" focusable="false"', 1)
        return tag

    return _TAG.sub(rewrite, text).strip()


def _money_axis(axis, currency: str):
    from matplotlib.ticker import FuncFormatter

    symbol = CURRENCY_SYMBOLS.get(currency, "")
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{symbol}{value:,.0f}"))


def chart_trend(section: UserMonth, chart_id: str) -> str:
    """Monthly spending (bars) with the 3-month rolling average (line).

    At least MIN_TREND_SLOTS month slots end at the report month, so one month of data is a
    bar among empty months rather than a wall; a month before the user's first expense has
    no bar and no point (rolling_trend has no row for it).
    """
    month = section.month
    if month is None:  # report() draws charts only for a user with a month
        raise ValueError("chart_trend needs a section with a month")
    by_month: dict[date, dict] = {point["month"]: point for point in section.trend}
    first = min(by_month) if by_month else month
    slots = max(MIN_TREND_SLOTS, _months_between(first, month) + 1)
    months = [_add_months(month, offset - slots + 1) for offset in range(slots)]
    positions = list(range(slots))
    rotate = slots > 6
    figure, axes = _figure(7.2, 3.0, left=0.9, bottom=0.75 if rotate else 0.4, top=0.35)
    present = [
        (position, by_month[month])
        for position, month in zip(positions, months, strict=True)
        if month in by_month
    ]
    axes.bar(
        [position for position, _ in present],
        [float(point["total_spent"]) for _, point in present],
        color=["#1565c0" if point["month"] == section.month else "#90caf9" for _, point in present],
        width=0.65,
        label="Spent in the month",
    )
    axes.plot(
        [position for position, _ in present],
        [float(point["rolling_3m_avg"]) for _, point in present],
        color="#e65100",
        marker="o",
        linewidth=2,
        label="3-month rolling average",
    )
    axes.set_xticks(
        positions,
        labels=[month.strftime("%b %Y") for month in months],
        rotation=45 if rotate else 0,
        ha="right" if rotate else "center",
    )
    _money_axis(axes.yaxis, section.currency)
    axes.set_ylabel(section.currency)
    top = max([float(point["total_spent"]) for point in section.trend] + [1.0])
    axes.set_ylim(0, top * 1.12)
    axes.grid(axis="y", color="#e0e0e0", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False, fontsize=8, ncols=2)
    return _svg(figure, chart_id)


def _months_between(first: date, last: date) -> int:
    return (last.year - first.year) * 12 + last.month - first.month


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def chart_categories(section: UserMonth, chart_id: str) -> str:
    """The month's top categories as horizontal bars in each category's colour."""
    rows = list(reversed(section.categories))
    figure, axes = _figure(
        7.2,
        0.45 * len(rows) + 0.6,
        left=_label_inches(row["category"] for row in rows),
        bottom=0.35,
        top=0.1,
    )
    positions = list(range(len(rows)))
    values = [float(row["total_spent"]) for row in rows]
    axes.barh(positions, values, color=[row["color"] or "#9e9e9e" for row in rows], height=0.6)
    axes.set_yticks(positions, labels=[row["category"] for row in rows])
    for position, row in zip(positions, rows, strict=True):
        share = f"  {row['share_pct']} %" if row["share_pct"] is not None else ""
        axes.annotate(
            f"{format_money(row['total_spent'], section.currency)}{share}",
            (float(row["total_spent"]), position),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    _money_axis(axes.xaxis, section.currency)
    axes.set_xlim(0, (max(values) if values and max(values) > 0 else 1) * 1.35)
    axes.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    axes.set_axisbelow(True)
    return _svg(figure, chart_id)


def chart_budgets(section: UserMonth, chart_id: str) -> str:
    """% of each budget used, coloured under / near / over, with the 80 % and 100 % lines."""
    rows = list(reversed(section.budgets))
    figure, axes = _figure(
        7.2,
        0.45 * len(rows) + 0.9,
        left=_label_inches(row["category"] for row in rows),
        bottom=0.55,
        top=0.2,
    )
    positions = list(range(len(rows)))
    shown = [_shown_pct(row) for row in rows]
    limit = max([120.0, *(value + 15 for value in shown)])
    axes.barh(positions, shown, color=[STATUS_COLORS[row["status"]] for row in rows], height=0.6)
    axes.set_yticks(positions, labels=[row["category"] for row in rows])
    for position, row, value in zip(positions, rows, shown, strict=True):
        label = f"{row['pct_used']} %" if row["pct_used"] is not None else "budget 0"
        label += (
            f"  {format_money(row['spent'], section.currency)} of "
            f"{format_money(row['budget_amount'], section.currency)}"
        )
        # Right of the 100 % line when the bar is shorter, so no label crosses the lines.
        axes.annotate(
            label,
            (max(value, 100.0), position),
            xytext=(5, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    axes.axvline(80, color="#ef8f00", linestyle="--", linewidth=1)
    axes.axvline(100, color="#c62828", linestyle="-", linewidth=1)
    axes.text(79, len(rows) - 0.35, "80 %", color="#ef8f00", ha="right", fontsize=8)
    axes.text(101, len(rows) - 0.35, "100 %", color="#c62828", ha="left", fontsize=8)
    axes.set_xlim(0, limit * 1.45)
    axes.set_ylim(-0.6, len(rows) - 0.1)
    axes.set_xlabel("% of the budget used")
    return _svg(figure, chart_id)


def _shown_pct(row: dict) -> float:
    """The bar's length: % used, drawn at most to MAX_BAR_PCT (its label says the real %)."""
    if row["pct_used"] is not None:
        return min(float(row["pct_used"]), MAX_BAR_PCT)
    # A budget of 0: at its limit while nothing is spent, beyond it once anything is.
    return 100.0 if row["spent"] == 0 else 120.0


# --- the page -------------------------------------------------------------------------------


def render_report(report: Report) -> str:
    """The report as one HTML page (charts inline, no external reference)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["money"] = format_money
    environment.filters["pct"] = format_pct
    environment.filters["month_label"] = month_label
    charts = {}
    for index, section in enumerate(report.users, start=1):
        if section.month is None:
            continue
        charts[section.user_id] = {
            "trend": chart_trend(section, f"u{index}-trend") if section.trend else None,
            "categories": (
                chart_categories(section, f"u{index}-categories") if section.categories else None
            ),
            "budgets": chart_budgets(section, f"u{index}-budgets") if section.budgets else None,
        }
    template = environment.get_template("report.html.j2")
    return template.render(
        report=report,
        charts={
            user: {
                name: jinja2.utils.markupsafe.Markup(svg) if svg else None
                for name, svg in chart.items()
            }
            for user, chart in charts.items()
        },
        status_colors=STATUS_COLORS,
    )
