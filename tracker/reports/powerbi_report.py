"""The Power BI project's report (PBIR): one page of visuals over the semantic model.

Each visual names the model's tables, columns and measures as powerbi.py wrote them; a
visual is left out when what it shows was not exported. The files are JSON, written by
powerbi.write_powerbi_project beside the semantic model.
"""

from tracker.reports.powerbi import NAME, SCHEMAS, json_text, platform_file


def _column(entity: str, prop: str) -> dict:
    return {"Column": {"Expression": {"SourceRef": {"Entity": entity}}, "Property": prop}}


def _measure(entity: str, prop: str) -> dict:
    return {"Measure": {"Expression": {"SourceRef": {"Entity": entity}}, "Property": prop}}


def _projection(field: dict, active: bool = False) -> dict:
    ((_kind, body),) = field.items()
    entity = body["Expression"]["SourceRef"]["Entity"]
    projection = {
        "field": field,
        "queryRef": f"{entity}.{body['Property']}",
        "nativeQueryRef": body["Property"],
    }
    if active:
        projection["active"] = True
    return projection


def _literal(value: str) -> dict:
    return {"expr": {"Literal": {"Value": value}}}


def _visual(
    name: str,
    visual_type: str,
    position: tuple,
    roles: dict,
    title: str,
    sort: dict | None = None,
    objects: dict | None = None,
) -> dict:
    x, y, width, height, order = position
    query = {
        "queryState": {
            role: {
                "projections": [
                    _projection(field, active=index == 0 and role == "Category")
                    for index, field in enumerate(fields)
                ]
            }
            for role, fields in roles.items()
        }
    }
    if sort:
        query["sortDefinition"] = sort
    visual = {
        "visualType": visual_type,
        "query": query,
        "visualContainerObjects": {
            "title": [
                {
                    "properties": {
                        "show": _literal("true"),
                        "text": _literal("'" + title.replace("'", "''") + "'"),
                    }
                }
            ]
        },
        "drillFilterOtherVisuals": True,
    }
    if objects:
        visual["objects"] = objects
    return {
        "$schema": SCHEMAS["visual"],
        "name": name,
        "position": {
            "x": x,
            "y": y,
            "z": order * 1000,
            "width": width,
            "height": height,
            "tabOrder": order * 1000,
        },
        "visual": visual,
    }


def _report_visuals(tables, measures) -> list[dict]:
    """The page's visuals whose fields all exist (an export of a few models gets fewer)."""
    columns = {(table.name, column[0]) for table in tables for column in table.columns}
    measure_names = {(m.table, m.name) for m in measures}

    def ok(*fields):
        for field in fields:
            ((kind, body),) = field.items()
            key = (body["Expression"]["SourceRef"]["Entity"], body["Property"])
            if key not in (columns if kind == "Column" else measure_names):
                return False
        return True

    total = _measure("fact_expenses", "Total Spent")
    rolling = _measure("fact_expenses", "Rolling 3-month average")
    month = _column("dim_date", "month_start")
    category = _column("dim_category", "category")
    candidates = [
        (
            "slicerUser",
            "slicer",
            (16, 12, 300, 64, 1),
            {"Values": [_column("dim_user", "name")]},
            "User",
            None,
        ),
        ("slicerMonth", "slicer", (332, 12, 300, 64, 2), {"Values": [month]}, "Month", None),
        (
            "slicerCategory",
            "slicer",
            (648, 12, 300, 64, 3),
            {"Values": [category]},
            "Category",
            None,
        ),
        ("cardSpent", "card", (16, 88, 240, 100, 4), {"Values": [total]}, "Total spent", None),
        (
            "cardBudget",
            "card",
            (268, 88, 240, 100, 5),
            {"Values": [_measure("fact_budgets", "Budget")]},
            "Budget",
            None,
        ),
        (
            "cardRemaining",
            "card",
            (520, 88, 240, 100, 6),
            {"Values": [_measure("fact_budgets", "Remaining")]},
            "Remaining",
            None,
        ),
        (
            "cardUsed",
            "card",
            (772, 88, 240, 100, 7),
            {"Values": [_measure("fact_budgets", "% Used")]},
            "Spent vs budget (% used)",
            None,
        ),
        (
            "cardAlerts",
            "card",
            (1024, 88, 240, 100, 8),
            {"Values": [_measure("alerts", "Alerts")]},
            "Alerts",
            None,
        ),
        (
            "monthlySpending",
            "lineChart",
            (16, 200, 616, 250, 9),
            {"Category": [month], "Y": [total, rolling]},
            "Monthly spending and 3-month rolling average",
            {"sort": [{"field": month, "direction": "Ascending"}], "isDefaultSort": True},
        ),
        (
            "spendingByCategory",
            "clusteredBarChart",
            (648, 200, 616, 250, 10),
            {"Category": [category], "Y": [total]},
            "Spending by category",
            {"sort": [{"field": total, "direction": "Descending"}], "isDefaultSort": True},
        ),
        (
            "recentExpenses",
            "tableEx",
            (16, 462, 1248, 246, 11),
            {
                "Values": [
                    _column("fact_expenses", "date"),
                    _column("dim_user", "name"),
                    category,
                    _column("fact_expenses", "amount"),
                    _column("fact_expenses", "note"),
                ]
            },
            "Recent expenses",
            {"sort": [{"field": _column("fact_expenses", "date"), "direction": "Descending"}]},
        ),
    ]
    visuals = []
    for name, visual_type, position, roles, title, sort in candidates:
        if ok(*(field for fields in roles.values() for field in fields)):
            objects = (
                {"data": [{"properties": {"mode": _literal("'Dropdown'")}}]}
                if visual_type == "slicer"
                else None
            )
            visuals.append(_visual(name, visual_type, position, roles, title, sort, objects))
    return visuals


def report_files(tables, measures) -> dict[str, str]:
    base = f"{NAME}.Report"
    page = "spending"
    files = {
        f"{base}/.platform": platform_file("Report"),
        f"{base}/definition.pbir": json_text(
            {
                "$schema": SCHEMAS["pbir"],
                "version": "4.0",
                "datasetReference": {"byPath": {"path": f"../{NAME}.SemanticModel"}},
            }
        ),
        f"{base}/definition/version.json": json_text(
            {"$schema": SCHEMAS["version"], "version": "2.0.0"}
        ),
        f"{base}/definition/report.json": json_text(
            {
                "$schema": SCHEMAS["report"],
                "themeCollection": {},
                "settings": {
                    "useStylableVisualContainerHeader": True,
                    "defaultDrillFilterOtherVisuals": True,
                },
            }
        ),
        f"{base}/definition/pages/pages.json": json_text(
            {
                "$schema": SCHEMAS["pages"],
                "pageOrder": [page],
                "activePageName": page,
            }
        ),
        f"{base}/definition/pages/{page}/page.json": json_text(
            {
                "$schema": SCHEMAS["page"],
                "name": page,
                "displayName": "Spending",
                "displayOption": "FitToPage",
                "height": 720,
                "width": 1280,
            }
        ),
    }
    for visual in _report_visuals(tables, measures):
        files[f"{base}/definition/pages/{page}/visuals/{visual['name']}/visual.json"] = json_text(
            visual
        )
    return files
