"""The lake's crash safety: the journal (the commit point), rolling it forward, and the
batched fsyncs (tracker/pipeline/lake.py explains the design)."""

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tracker.pipeline.export_folder import fsync_path, write_durably
from tracker.pipeline.lake_layout import JOURNAL, MANIFEST, STAGING_PREFIX

__all__ = ["JOURNAL", "commit_journal", "fsync_all", "manifest_bytes", "recover_lake"]


def commit_journal(staging: Path, moves: list, removals: list, manifest: dict) -> None:
    """Make the staged export durable, then commit it: the journal moved into the lake.

    Every staged file, the new manifest (staged too, moved in last) and the journal are
    fsynced together (one batch, not one after the other), with the staging folder's names;
    only then does the journal appear in the lake, and from then on the next export rolls
    this one forward. The journal is compact JSON (json's C encoder).
    """
    lake_dir = staging.parent
    journal = {"staging": staging.name, "moves": moves, "removals": removals, "manifest": manifest}
    (staging / MANIFEST).write_bytes(manifest_bytes(manifest))
    (staging / "journal.tmp").write_bytes(json.dumps(journal).encode("utf-8"))
    fsync_all(
        [staging / source for source, _ in moves]
        + [staging / MANIFEST, staging / "journal.tmp", staging]
    )
    os.replace(staging / "journal.tmp", lake_dir / JOURNAL)
    fsync_all([lake_dir])


def recover_lake(lake_dir: Path) -> bool:
    """Finish an export that committed its journal; drop staging folders that never did.

    Safe to repeat after a crash at any step: a move whose source is gone was done, a
    removal of a missing file was done. Returns True when a journal was rolled forward.
    """
    journal_path = lake_dir / JOURNAL
    rolled = False
    if journal_path.exists():
        journal = json.loads(journal_path.read_text(encoding="utf-8"))
        staging = lake_dir / journal["staging"]
        touched: set[Path] = set()
        for source, target in journal["moves"]:
            source_path, target_path = staging / source, lake_dir / target
            if source_path.exists():
                folder = target_path.parent
                # A new month (year, fact) folder: the folder holding it is changed too.
                while not folder.is_dir():
                    touched.add(folder.parent)
                    folder = folder.parent
                target_path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source_path, target_path)
                touched.add(target_path.parent)
        for relative in journal["removals"]:
            path = lake_dir / relative
            if path.exists():
                path.unlink()
            touched.add(path.parent)
            # An emptied month (and year) folder goes too, so readers see no empty partition.
            for folder in (path.parent, path.parent.parent):
                if folder.is_dir() and folder != lake_dir and not any(folder.iterdir()):
                    folder.rmdir()
                    touched.add(folder.parent)
        # The manifest last: staged (and fsynced) with the files, or, for a journal whose
        # manifest was already moved in (or an older journal), written from the journal.
        if (staging / MANIFEST).exists():
            os.replace(staging / MANIFEST, lake_dir / MANIFEST)
        else:
            write_durably(lake_dir / f"{MANIFEST}.tmp", manifest_bytes(journal["manifest"]))
            os.replace(lake_dir / f"{MANIFEST}.tmp", lake_dir / MANIFEST)
        # Every changed folder durable, in one batch, before the journal goes.
        touched.add(lake_dir)
        fsync_all(sorted(folder for folder in touched if folder.is_dir()))
        # Not fsynced: should the journal come back after a power cut, rolling it forward
        # again changes nothing, and the next export's commit point makes its removal durable.
        journal_path.unlink()
        rolled = True
    for staging in lake_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(staging, ignore_errors=True)
    stale = lake_dir / f"{MANIFEST}.tmp"
    if stale.exists():
        stale.unlink()
    return rolled


def fsync_all(paths: list[Path]) -> None:
    """fsync files and folders at once, from threads: the file system writes its journal once
    for the lot instead of once per path (the export's fsyncs were a good part of a small
    incremental export's time)."""
    if len(paths) <= 1:
        for path in paths:
            fsync_path(path)
        return
    with ThreadPoolExecutor(max_workers=min(len(paths), 8)) as pool:
        for done in [pool.submit(fsync_path, path) for path in paths]:
            done.result()


def manifest_bytes(manifest: dict) -> bytes:
    """The manifest indented one level, each file's entry (and each table) on its own line:
    json's indenting encoder is pure Python, and a lake's manifest lists hundreds of files,
    rewritten by every export; the C encoder writes each line."""
    fields = []
    for key, value in manifest.items():
        if isinstance(value, list) and value:
            text = "[\n" + ",\n".join(f"    {json.dumps(item)}" for item in value) + "\n  ]"
        elif isinstance(value, dict) and value:
            lines = (f"    {json.dumps(name)}: {json.dumps(item)}" for name, item in value.items())
            text = "{\n" + ",\n".join(lines) + "\n  }"
        else:
            text = json.dumps(value)
        fields.append(f"  {json.dumps(key)}: {text}")
    return ("{\n" + ",\n".join(fields) + "\n}\n").encode("utf-8")
