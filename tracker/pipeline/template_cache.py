"""Compiled Jinja templates kept on disk, so a run does not parse and compile every model again.

Compiling the templates is most of the Jinja cost of a cold `check` (parsing, generating Python,
compiling it); rendering a compiled one is cheap. Each compiled template is stored as marshalled
Python code in target/jinja/<key>.code, where the key is a SHA-256 of everything that decides
that code: the template sources, the Jinja version, the Python bytecode version and the
Environment's options. A changed model, macro, Jinja or Python therefore misses and compiles
afresh; nothing is ever invalidated in place. Jinja's own BytecodeCache is not used: its key
holds neither the Jinja version nor the Environment's options.

The cache is an optimisation only: a missing, unreadable or corrupt file is a miss, and a folder
that cannot be written is ignored. Deleting target/jinja/ is always safe.
"""

import hashlib
import importlib.util
import marshal
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import CodeType

import jinja2

from tracker.plumbing import config

# Bumped when what is stored changes shape, so old files are never read as the new shape.
FORMAT = b"tracker-jinja-cache 1"
_DIGEST_SIZE = hashlib.sha256().digest_size


def cache_dir() -> Path:
    """Where compiled templates live (read at call time: tests point config elsewhere)."""
    return config.TARGET_DIR / "jinja"


def cache_key(options: dict, sources: Sequence[str]) -> str:
    """A name for the code compiled from sources (joined by newlines) under options."""
    digest = hashlib.sha256(FORMAT)
    stamp = (jinja2.__version__, importlib.util.MAGIC_NUMBER.hex(), sorted(options.items()))
    digest.update(repr(stamp).encode())
    for source in sources:
        # Each source is length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        data = source.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def load(key: str) -> CodeType | None:
    """The code stored under key, or None if absent or damaged."""
    try:
        data = (cache_dir() / f"{key}.code").read_bytes()
    except OSError:
        return None
    checksum, payload = data[:_DIGEST_SIZE], data[_DIGEST_SIZE:]
    if hashlib.sha256(payload).digest() != checksum:
        return None
    try:
        code = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def store(key: str, code: CodeType) -> None:
    """Keep code under key; any failure to write only means a later miss."""
    payload = marshal.dumps(code)
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Written whole then renamed: a reader never sees half a file.
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(hashlib.sha256(payload).digest() + payload)
            os.replace(temporary, folder / f"{key}.code")
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        pass


def compiled(
    environment: jinja2.Environment,
    options: dict,
    sources: Sequence[str],
    check: Callable[[], None] | None = None,
) -> jinja2.Template:
    """The template of sources joined by newlines, compiled once and then read from disk.

    check runs before compiling on a miss (e.g. to name the file with a syntax error); a hit
    means the same sources already passed it.
    """
    key = cache_key(options, sources)
    code = load(key)
    if code is None:
        if check is not None:
            check()
        code = environment.compile("\n".join(sources))
        store(key, code)
    return environment.template_class.from_code(environment, code, environment.make_globals(None))
