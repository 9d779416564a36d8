"""The report's charts and number formats: matplotlib figures as inline SVG, money as text.

Charts are saved as SVG and put inline: text stays text (svg.fonttype 'none': small,
selectable, and escaped by matplotlib's XML writer), ids are deterministic (svg.hashsalt)
and prefixed per chart so several charts can share one page. matplotlib is imported only
when a chart is drawn. Each chart takes one user's section of the report (report.UserMonth).
"""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from tracker.errors import TrackerError

if TYPE_CHECKING:
    from tracker.reports.report import UserMonth

MIN_TREND_SLOTS = 6
MAX_BAR_PCT = 200.0
STATUS_COLORS = {"under": "#2e7d32", "near": "#ef8f00", "over": "#c62828"}
CURRENCY_SYMBOLS = {"INR": "₹", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
CHART_FONTS = ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica", "sans-serif"]


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
                f"chart {chart_id} produced unexpected SVG markup. Report this as a bug."
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
    assert month is not None, "render_report charts only sections with a month"
    by_month = {point["month"]: point for point in section.trend}
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
