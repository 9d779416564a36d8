"""Categories: add, list, rename, find by name or id (category_delete deletes them)."""

from dataclasses import dataclass
from typing import ClassVar

import psycopg
from psycopg.rows import class_row

from tracker.errors import InputError
from tracker.everyday import validate
from tracker.plumbing import db


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    description: str | None
    color: str


@dataclass(frozen=True)
class CategoryUsage:
    id: int
    name: str
    description: str | None
    color: str
    expense_count: int

    HEADERS: ClassVar[tuple[str, ...]] = ("id", "name", "description", "color", "expenses")

    def as_dict(self) -> dict:
        return dict(zip(self.HEADERS, self.as_row(), strict=True))

    def as_row(self) -> tuple:
        return (self.id, self.name, self.description, self.color, self.expense_count)


_COLUMNS = "id, name, description, color"


def add_category(
    conn: psycopg.Connection, name: str, description: str | None = None, color: str | None = None
) -> Category:
    """Create a category; a name already taken (in any letter case) is refused."""
    name = parse_category_name(name)
    color = validate.parse_color(color) if color is not None else None
    description = description.strip() or None if description is not None else None
    with conn.transaction(), conn.cursor(row_factory=class_row(Category)) as cursor:
        taken = conn.execute(
            "select name from categories where lower(name) = lower(%s)", [name]
        ).fetchone()
        if taken:
            raise _name_taken(taken[0])
        try:
            with conn.transaction():
                cursor.execute(
                    "insert into categories (name, description, color)"
                    " values (%s, %s, coalesce(%s, '#9E9E9E'))"
                    f" returning {_COLUMNS}",
                    [name, description, color],
                )
        except psycopg.errors.UniqueViolation:
            raise _name_taken(name) from None
        return db.one(cursor)


def list_categories(conn: psycopg.Connection) -> list[CategoryUsage]:
    """Every category with how many expenses use it, by name."""
    with conn.cursor(row_factory=class_row(CategoryUsage)) as cursor:
        return cursor.execute(
            """
            select
                categories.id,
                categories.name,
                categories.description,
                categories.color,
                count(expenses.id) as expense_count
            from categories
            left join expenses
                on expenses.category_id = categories.id
            group by categories.id
            order by categories.name
            """
        ).fetchall()


def parse_category_name(value) -> str:
    """A category name: not blank, and not all digits (digits always mean an id)."""
    name = validate.parse_name(value, what="category name")
    if name.isdigit():
        raise InputError(
            f'category name "{name}" is all digits, which reads as a category id. '
            "Use a name with at least one letter, like Rent2."
        )
    return name


def category_id_reference(text: str) -> int | None:
    """The id a reference names: "9" or "#9" are ids (names are never all digits)."""
    text = text.strip()
    digits = text[1:] if text.startswith("#") else text
    return int(digits) if validate.looks_like_id(digits) else None


def find_category(conn: psycopg.Connection, reference) -> Category:
    """The category with this id (9 or #9) or name (exact, else any letter case).

    A reference of digits is only ever an id, never a name, so `category delete 9` can
    only delete category 9. Unknown is an InputError.
    """
    text = str(reference).strip()
    with conn.cursor(row_factory=class_row(Category)) as cursor:
        category_id = category_id_reference(text)
        if category_id is not None:
            found = cursor.execute(
                f"select {_COLUMNS} from categories where id = %s", [category_id]
            ).fetchone()
            if found is None:
                raise category_not_found(reference)
            return found
        found = cursor.execute(
            f"select {_COLUMNS} from categories where name = %s", [text]
        ).fetchone()
        if found is None:
            matches = cursor.execute(
                f"select {_COLUMNS} from categories where lower(name) = lower(%s)", [text]
            ).fetchall()
            found = matches[0] if len(matches) == 1 else None
    if found is None:
        raise category_not_found(reference)
    return found


def category_not_found(reference) -> InputError:
    """The refusal of a reference (id or name) that names no category."""
    category_id = category_id_reference(str(reference))
    if category_id is not None:
        return InputError(
            f"category id {category_id} does not exist. "
            "Check `category list` (a category is named by its name or its id)."
        )
    return InputError(
        f'category "{reference}" does not exist. '
        "Check `category list`, or add it with `category add`."
    )


@dataclass(frozen=True)
class RenamedCategory:
    before: str
    category: Category


def rename_category(conn: psycopg.Connection, reference, new_name) -> RenamedCategory:
    """Give a category a new name (not all digits, not taken in any letter case).

    Expenses, budgets and alerts keep pointing at it; alert messages keep the name they
    were written with.
    """
    new_name = parse_category_name(new_name)
    with conn.transaction(), conn.cursor(row_factory=class_row(Category)) as cursor:
        category = find_category(conn, reference)
        taken = conn.execute(
            "select name from categories where lower(name) = lower(%s) and id <> %s",
            [new_name, category.id],
        ).fetchone()
        if taken:
            raise _name_taken(taken[0])
        try:
            with conn.transaction():
                cursor.execute(
                    f"update categories set name = %s where id = %s returning {_COLUMNS}",
                    [new_name, category.id],
                )
        except psycopg.errors.UniqueViolation:
            raise _name_taken(new_name) from None
        return RenamedCategory(category.name, db.one(cursor))


def _name_taken(name: str) -> InputError:
    return InputError(
        f'category "{name}" already exists. Choose another name, or see `category list`.'
    )
