"""A strict reader of the TMDL subset a semantic model needs, written for the tests only.

Independent of tracker/reports/powerbi.py (it shares no code with the generator): it follows
Microsoft's TMDL description (learn.microsoft.com, "TMDL overview"): objects are declared
as `<type> <name>` (single-quoted when the name has other characters than letters, digits
and _; a quote is doubled), one tab per level; a property is `name: value` or a bare
boolean flag; an object's default property (a measure's DAX, a partition's or a named
expression's M) follows `=`, on the same line or on the following lines indented two levels
deeper than the object; `///` lines describe the object below them. Anything else (an
unknown object type or property, spaces for indentation, a property at the wrong depth, a
description with nothing under it) is an error with its file and line.
"""

import re
from dataclasses import dataclass, field

CHILDREN = {
    None: {"database", "model", "table", "relationship", "expression", "annotation", "ref"},
    "model": {"annotation", "ref", "dataAccessOptions"},
    "dataAccessOptions": set(),
    "table": {"column", "measure", "partition", "annotation"},
    "column": {"annotation"},
    "measure": {"annotation"},
    "partition": set(),
    "relationship": set(),
    "expression": {"annotation"},
    "database": set(),
    "annotation": set(),
    "ref": set(),
}
PROPERTIES = {
    "database": {"compatibilityLevel"},
    "model": {"culture", "defaultPowerBIDataSourceVersion", "sourceQueryCulture"},
    "dataAccessOptions": set(),
    "table": {"lineageTag", "dataCategory"},
    "column": {
        "dataType",
        "formatString",
        "lineageTag",
        "summarizeBy",
        "sourceColumn",
        "sortByColumn",
        "dataCategory",
    },
    "measure": {"formatString", "lineageTag"},
    "partition": {"mode", "source"},
    "relationship": {
        "fromColumn",
        "toColumn",
        "crossFilteringBehavior",
        "fromCardinality",
        "toCardinality",
        "isActive",
    },
    "expression": {"lineageTag", "queryGroup"},
}
FLAGS = {
    "column": {"isHidden", "isKey"},
    "dataAccessOptions": {"legacyRedirects", "returnErrorValuesAsNull"},
    "measure": {"isHidden"},
    "table": {"isHidden"},
}
ENUMS = {
    ("column", "dataType"): {"int64", "decimal", "double", "dateTime", "string", "boolean"},
    ("column", "summarizeBy"): {"none", "sum", "count", "min", "max", "average"},
    ("partition", "mode"): {"import", "directQuery", "dual"},
    ("table", "dataCategory"): {"Time"},
}
# Objects whose declaration may carry "= default property".
DEFAULTS = {"measure", "partition", "expression", "annotation"}
# Relationship names are GUIDs, written bare as Power BI Desktop writes them.
NAME = r"(?:[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|[A-Za-z_][A-Za-z0-9_]*|'(?:[^']|'')+')"
DECLARATION = re.compile(
    rf"^(?P<type>[A-Za-z]+)(?: (?P<name>{NAME}(?:\.{NAME})?))?(?: = ?(?P<value>.*))?$"
)
PROPERTY = re.compile(r"^(?P<key>[A-Za-z]+): (?P<value>\S.*)$")


class TmdlError(Exception):
    pass


@dataclass
class Node:
    type: str
    name: str | None
    line: int
    value: str | None = None  # the default property (DAX, M, annotation value)
    properties: dict = field(default_factory=dict)
    flags: set = field(default_factory=set)
    children: list = field(default_factory=list)
    description: str | None = None

    def all(self, kind: str) -> list["Node"]:
        return [child for child in self.children if child.type == kind]


def unquote(name: str) -> str:
    if name.startswith("'"):
        return name[1:-1].replace("''", "'")
    return name


def _depth(line: str, path: str, number: int) -> int:
    depth = len(line) - len(line.lstrip("\t"))
    if line[depth : depth + 1] == " ":
        raise TmdlError(f"{path}:{number}: indentation must be tabs")
    return depth


def parse(text: str, path: str = "<tmdl>") -> Node:
    """The file as a tree under a root Node(type=None); raises TmdlError on any deviation."""
    lines = text.split("\n")
    root = Node(None, None, 0)
    stack = [(root, -1)]  # (node, depth of its declaration)
    description: list[str] = []
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index]
        index += 1
        if not line.strip():
            continue
        if line != line.rstrip():
            raise TmdlError(f"{path}:{number}: trailing whitespace")
        depth = _depth(line, path, number)
        content = line[depth:]
        while stack[-1][1] >= depth:
            stack.pop()
        parent, parent_depth = stack[-1]
        if content.startswith("///"):
            if depth != parent_depth + 1:
                raise TmdlError(f"{path}:{number}: description at the wrong depth")
            description.append(content[3:].strip())
            continue
        if depth != parent_depth + 1:
            raise TmdlError(f"{path}:{number}: expected depth {parent_depth + 1}, got {depth}")
        kind = parent.type
        prop = PROPERTY.match(content)
        if prop and kind is not None and prop.group("key") in PROPERTIES.get(kind, set()):
            if description:
                raise TmdlError(f"{path}:{number}: a description must precede an object")
            key, value = prop.group("key"), prop.group("value")
            allowed = ENUMS.get((kind, key))
            if allowed and value not in allowed:
                raise TmdlError(f"{path}:{number}: {kind}.{key} = {value!r} not in {allowed}")
            if key in parent.properties:
                raise TmdlError(f"{path}:{number}: {key} given twice")
            parent.properties[key] = value
            continue
        if kind is not None and content in FLAGS.get(kind, set()):
            parent.flags.add(content)
            continue
        if kind == "partition" and content == "source =":
            block, index = _block(lines, index, depth, path)
            parent.properties["source"] = block
            continue
        if content.startswith("ref ") and "ref" in CHILDREN.get(kind, set()):
            ref = re.fullmatch(rf"ref (table) ({NAME})", content)
            if not ref:
                raise TmdlError(f"{path}:{number}: bad ref {content!r}")
            parent.children.append(Node("ref", unquote(ref.group(2)), number, value="table"))
            continue
        declaration = DECLARATION.match(content)
        if not declaration or declaration.group("type") not in CHILDREN.get(kind, set()):
            raise TmdlError(f"{path}:{number}: unexpected {content!r} inside {kind or 'file'}")
        node_type = declaration.group("type")
        value = declaration.group("value")
        if node_type == "annotation":
            annotation = re.fullmatch(r"annotation ([A-Za-z_][A-Za-z0-9_]*) = (.+)", content)
            if not annotation:
                raise TmdlError(f"{path}:{number}: bad annotation {content!r}")
            parent.children.append(
                Node("annotation", annotation.group(1), number, value=annotation.group(2))
            )
            continue
        if value is not None and node_type not in DEFAULTS:
            raise TmdlError(f"{path}:{number}: {node_type} takes no '= value'")
        if node_type in ("measure", "partition", "expression") and value is None:
            raise TmdlError(f"{path}:{number}: {node_type} needs '= ...'")
        name = declaration.group("name")
        node = Node(
            node_type,
            unquote(name) if name else None,
            number,
            description="\n".join(description) or None,
        )
        description = []
        if value == "" or (value is not None and content.endswith("=")):
            node.value, index = _block(lines, index, depth, path)
        elif value is not None:
            node.value = value
        parent.children.append(node)
        stack.append((node, depth))
    if description:
        raise TmdlError(f"{path}: a description at the end describes nothing")
    return root


def _block(lines: list[str], index: int, depth: int, path: str) -> tuple[str, int]:
    """The expression under a line at depth ending in "=": lines at depth + 2 or deeper."""
    block = []
    while index < len(lines):
        line = lines[index]
        if line.strip() and len(line) - len(line.lstrip("\t")) <= depth + 1:
            break
        block.append(line)
        index += 1
    while block and not block[-1].strip():
        block.pop()
    if not block:
        raise TmdlError(f"{path}:{index}: empty expression block")
    cut = depth + 2
    for number, line in enumerate(block, start=index - len(block) + 1):
        if line.strip() and not line.startswith("\t" * cut):
            raise TmdlError(f"{path}:{number}: expression lines need {cut} tabs")
    return "\n".join(line[cut:] for line in block), index
