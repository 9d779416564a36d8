"""The lake's manifest (what the next one holds, the previous one, the models' fingerprint)
and the database's record of what each lake has seen (tracker/pipeline/lake.py)."""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from tracker.errors import InputError, TrackerError
from tracker.pipeline.lake_layout import (
    FACTS,
    GENERATOR,
    LAKE_MODELS,
    LAYOUT,
    MANIFEST,
    is_lake_manifest,
)
from tracker.plumbing import config
from tracker.plumbing.db import connect


def next_manifest(url, previous, plan, fingerprint, include_pii, lake_id, commit) -> dict:
    """The manifest after this export: old entries of untouched files, new ones of the rest."""
    reason = plan["reason"]
    removed = set(plan["removals"])
    files = {path: entry for path, entry in plan["old_files"].items() if path not in removed}
    if reason is not None:
        # A full export describes only what it wrote.
        files = {}
    files.update(plan["entries"])
    ordered = sorted(
        files.values(),
        key=lambda entry: (
            LAKE_MODELS.index(entry["model"]) if entry["model"] in LAKE_MODELS else 99,
            entry["path"],
        ),
    )
    return {
        "generator": GENERATOR,
        "layout": LAYOUT,
        "lake_id": lake_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": config.mask_url(url),
        "git_commit": commit,
        "include_pii": include_pii,
        "models_sha256": fingerprint,
        "last_export": {
            "kind": "full" if reason is not None else "incremental",
            "reason": reason,
            "files_written": len(plan["moves"]),
            "files_removed": len(plan["removals"]),
            "changed_months_read": plan["changes_read"],
        },
        "tables": {
            name: {
                "kind": "fact" if name in FACTS else "dimension",
                "path": name if name in FACTS else f"{name}.parquet",
                "partitioned_by": ["year", "month"] if name in FACTS else [],
                "columns": [
                    {"name": column.name, "type": column.duckdb_type}
                    for column in plan["columns"].get(name, [])
                ],
            }
            for name in LAKE_MODELS
        },
        "files": ordered,
    }


def record_export(url: str, lake_id: str, snapshot: str) -> None:
    """Remember what this lake has seen; drop change rows that every known lake has seen."""
    with connect(url) as conn, conn.transaction():
        conn.execute(
            "insert into lake_exports (lake_id, snapshot) values (%s, cast(%s as pg_snapshot)) "
            "on conflict (lake_id) do update set snapshot = excluded.snapshot, "
            "exported_at = now()",
            [lake_id, snapshot],
        )
        conn.execute(
            """
                delete from lake_changes
                where not exists (
                    select 1
                    from lake_exports
                    where not pg_visible_in_snapshot(lake_changes.txid, lake_exports.snapshot)
                )
                """
        )


def previous_manifest(lake_dir: Path) -> dict | None:
    path = lake_dir / MANIFEST
    if not path.exists():
        foreign = [
            name
            for name in LAKE_MODELS
            if (lake_dir / name).exists() or (lake_dir / f"{name}.parquet").exists()
        ]
        if foreign or (lake_dir / "csv").exists() or (lake_dir / "parquet").exists():
            raise InputError(
                f"{lake_dir} holds data but no {MANIFEST}, so it was not written by "
                "`export --lake`. Choose an empty folder or an existing lake for --lake."
            )
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TrackerError(
            f"{path} is not valid JSON. Rebuild the lake: `python cli.py export --lake "
            f"{lake_dir} --full`."
        ) from None
    if not is_lake_manifest(manifest):
        raise InputError(
            f"{lake_dir} holds a plain export ({MANIFEST} of `cli.py export`), not a "
            "lake. Choose another folder for --lake, e.g. exports/lake."
        )
    return manifest


def models_fingerprint(project, models) -> str:
    """sha256 of the lake's model files, what they read and the macros: a change means --full.

    The template bytes, not the rendered SQL: rendering every model costs more than a small
    incremental export itself.
    """
    names = set()
    for model in models:
        names.add(model.name)
        names |= project.upstream(model.name)
    paths = [project[name].path for name in sorted(names)]
    paths += sorted((project.queries_dir / "macros").glob("*.sql"))
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
