"""Run-time values for the models' var() calls: declared once, with types and ranges.

queries/vars.json declares every var a model may read: its type (number, integer, string,
boolean), an optional inclusive minimum and maximum, whether null is allowed, its default and
what it means. `--vars` is checked against it, so an unknown name or a value of the wrong
type or range is refused with one line instead of silently changing (or not changing) results.
"""

import json
import math
from decimal import Decimal
from pathlib import Path

from tracker.errors import InputError, TrackerError

DECLARATIONS_FILE = "vars.json"
TYPES = ("number", "integer", "string", "boolean")
_EXAMPLE = """For example --vars '{"near_threshold_pct": 75}'"""


def load_var_declarations(queries_dir: Path) -> dict[str, dict]:
    """The declarations in queries_dir/vars.json ({} when there is no such file)."""
    path = Path(queries_dir) / DECLARATIONS_FILE
    if not path.exists():
        return {}
    try:
        declarations = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrackerError(f"{path} is not valid JSON ({exc}). Fix the file.") from None
    if not isinstance(declarations, dict):
        raise TrackerError(f"{path} must be a JSON object of var names. Fix the file.")
    for name, spec in declarations.items():
        if not isinstance(spec, dict) or spec.get("type") not in TYPES:
            raise TrackerError(
                f'{path}: var "{name}" needs a "type", one of {", ".join(TYPES)}. Fix the file.'
            )
    return declarations


def parse_vars(text: str | None, queries_dir: Path) -> dict:
    """--vars (a JSON object) checked against the declarations; {} when not given."""
    if not text:
        return {}
    try:
        values = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--vars is not valid JSON ({exc.msg} at character {exc.pos}). "
            f"Pass an object, {_EXAMPLE.lower()}."
        ) from None
    if not isinstance(values, dict):
        raise InputError(f"--vars must be a JSON object. Pass an object, {_EXAMPLE.lower()}.")
    return check_vars(values, load_var_declarations(queries_dir))


def check_vars(values: dict, declarations: dict[str, dict]) -> dict:
    """values, each checked against its declaration; an unknown or invalid one is refused."""
    known = ", ".join(sorted(declarations)) or "none"
    for name, value in values.items():
        spec = declarations.get(name)
        if spec is None:
            raise InputError(
                f'--vars names "{name}", which no model declares (declared in '
                f"queries/{DECLARATIONS_FILE}: {known}). Check the spelling."
            )
        _check_value(name, value, spec)
    return values


def _check_value(name: str, value, spec: dict) -> None:
    kind = spec["type"]
    expected = _describe(spec)
    if value is None:
        if spec.get("nullable"):
            return
        raise InputError(
            f'--vars "{name}" is null; it must be {expected}. '
            f"Leave it out for its default ({spec.get('default')})."
        )
    is_number = isinstance(value, (int, Decimal, float)) and not isinstance(value, bool)
    ok = {
        "number": is_number and (not isinstance(value, float) or math.isfinite(value)),
        "integer": is_number and (value == int(value) if is_number else False),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
    }[kind]
    if not ok:
        raise InputError(f'--vars "{name}" is {json.dumps(_plain(value))}; it must be {expected}.')
    if kind in ("number", "integer"):
        low, high = spec.get("minimum"), spec.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise InputError(f'--vars "{name}" is {value}; it must be {expected}.')


def _describe(spec: dict) -> str:
    kind = spec["type"]
    text = {
        "number": "a number",
        "integer": "a whole number",
        "string": "a string",
        "boolean": "true or false",
    }[kind]
    low, high = spec.get("minimum"), spec.get("maximum")
    if low is not None and high is not None:
        text += f" from {low} to {high}"
    elif low is not None:
        text += f" of at least {low}"
    elif high is not None:
        text += f" of at most {high}"
    return text


def _plain(value):
    return str(value) if isinstance(value, Decimal) else value
