"""The export folder: all or nothing, only what an export wrote is replaced, one writer.

A new set of files is written into a staging folder inside the output folder, marked
COMMITTED when complete, then swapped in (a roll-forward journal, safe after a crash at any
step). An exclusive lock on the folder makes a second export wait for the first.
"""

import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tracker.errors import InputError, TrackerError

FORMATS = ("csv", "parquet")


MANIFEST = "manifest.json"


STAGING_PREFIX = ".export-staging-"


# How long a second export into the same folder waits for the first one (--lock-timeout).
LOCK_TIMEOUT_SECONDS = 600.0


# What marks a manifest.json (and the files it lists) as written by this exporter.
GENERATOR = "smart-spending-tracker export"


COMMITTED_MARKER = "COMMITTED"


def prepare_out_dir(out_dir: Path) -> Path:
    out_dir = out_dir.expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(
            f"--out {out_dir} is a file, not a directory. Choose a directory for --out."
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f"{STAGING_PREFIX}probe-{uuid.uuid4().hex[:8]}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise InputError(
            f"cannot write to --out {out_dir}: {exc.strerror or exc}. "
            "Choose a directory you can write to (its parents must be directories)."
        ) from None
    return out_dir


class locked:
    """An exclusive lock on the output directory, so two exports never interleave.

    A second export waits for the first (polling, so it can give up): up to
    `timeout` seconds, then it fails with one line. on_wait is told once when it starts
    waiting.
    """

    POLL_SECONDS = 0.2

    def __init__(
        self,
        out_dir: Path,
        timeout: float = LOCK_TIMEOUT_SECONDS,
        on_wait: Callable[[Path], None] | None = None,
    ):
        self.out_dir = out_dir
        self.timeout = timeout
        self.on_wait = on_wait

    def __enter__(self):
        self.fd = os.open(self.out_dir, os.O_RDONLY)
        deadline = time.monotonic() + self.timeout
        waited = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise TrackerError(
                        f"another export is still writing to {self.out_dir} after "
                        f"waiting {self.timeout:g} s. Wait for it to finish (or raise "
                        "--lock-timeout), or choose another --out."
                    ) from None
                if not waited and self.on_wait is not None:
                    self.on_wait(self.out_dir)
                waited = True
                time.sleep(self.POLL_SECONDS)
            except BaseException:
                os.close(self.fd)
                raise

    def __exit__(self, *exc_info):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def make_staging(out_dir: Path) -> Path:
    # Inside out_dir, so the final moves are renames on one filesystem.
    staging = out_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    return staging


def check_replaceable(out_dir: Path) -> None:
    """Refuse to replace anything an earlier export of this tool did not write.

    An export replaces manifest.json, csv/ and parquet/. That is only safe when
    manifest.json is this exporter's (its "generator") and every file now in csv/ and
    parquet/ is one it lists: a folder of the user's own files with an unrelated
    manifest.json, or a file of theirs dropped into csv/, is never deleted.
    """
    manifest_path = out_dir / MANIFEST
    if not manifest_path.exists():
        foreign = [name for name in FORMATS if (out_dir / name).exists()]
        if foreign:
            raise InputError(
                f"{out_dir / foreign[0]} exists but {out_dir} has no {MANIFEST}, so it "
                "was not written by `cli.py export` and would be replaced. Choose an empty or "
                "export directory for --out, or move that folder away."
            )
        return
    listed = _exported_files(manifest_path)
    if listed is None:
        raise InputError(
            f"{manifest_path} was not written by `cli.py export`, and an export would "
            f"replace it (and {out_dir}'s csv/ and parquet/ folders). Choose an empty or "
            "export directory for --out, or move those files away."
        )
    for name in FORMATS:
        folder = out_dir / name
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise InputError(
                f"{folder} is not a folder an export wrote, and an export would replace "
                "it. Choose another --out, or move it away."
            )
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(out_dir).as_posix()
            if path.is_dir() and not path.is_symlink():
                continue
            if relative not in listed:
                raise InputError(
                    f"{path} was not written by `cli.py export` (it is not in "
                    f"{manifest_path}), and an export replaces {folder}. Move it away, or "
                    "choose another --out."
                )


def _exported_files(manifest_path: Path) -> set[str] | None:
    """The paths an export's manifest lists; None when it is not this exporter's manifest."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("generator") != GENERATOR:
        return None
    files = manifest.get("files")
    if not isinstance(files, list):
        return None
    return {
        entry["path"]
        for entry in files
        if isinstance(entry, dict) and isinstance(entry.get("path"), str)
    }


def recover(out_dir: Path) -> None:
    """Finish a swap that a crash interrupted; drop staging folders that never committed."""
    for staging in sorted(out_dir.glob(f"{STAGING_PREFIX}*")):
        if staging.is_dir() and (staging / COMMITTED_MARKER).exists():
            swap_in(out_dir, staging)
        else:
            shutil.rmtree(staging, ignore_errors=True)


def swap_in(out_dir: Path, staging: Path) -> None:
    """Move a committed staging set into out_dir; safe to repeat after a crash at any step.

    Why not one rename: readers want stable paths (exports/csv/x.csv), so the set spans
    two folders and a file, and no single rename replaces them together. So the swap is
    a roll-forward journal: the staging folder is complete and marked COMMITTED before
    anything in out_dir changes; the old manifest.json is moved out first, so while the
    folders move no manifest describes them (a reader sees "export in progress"); the new
    manifest.json goes in last. Each step checks what is already done, so if the process
    dies half-way the next export (even one that fails later) finishes the swap before
    doing anything else, and out_dir ends with one consistent set either way. An export
    that fails before COMMITTED never touches out_dir.
    """
    new, old = staging / "new", staging / "old"
    if (new / MANIFEST).exists():
        old.mkdir(exist_ok=True)
        produced = json.loads((new / MANIFEST).read_text(encoding="utf-8"))["formats"]
        if (out_dir / MANIFEST).exists():
            os.replace(out_dir / MANIFEST, old / MANIFEST)
        for fmt in FORMATS:
            if (new / fmt).exists():
                if (out_dir / fmt).exists():
                    os.replace(out_dir / fmt, old / fmt)
                os.replace(new / fmt, out_dir / fmt)
            elif fmt not in produced and (out_dir / fmt).exists():
                # A csv-only export replaces the whole set: stale Parquet files would
                # disagree with the manifest.
                os.replace(out_dir / fmt, old / fmt)
        os.replace(new / MANIFEST, out_dir / MANIFEST)
        fsync_path(out_dir)
    shutil.rmtree(staging, ignore_errors=True)


def write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as target:
        target.write(data)
        target.flush()
        os.fsync(target.fileno())


def fsync_path(path: Path) -> None:
    """fsync a file, or a folder (which makes the names in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
