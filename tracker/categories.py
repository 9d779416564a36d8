"""Categories: add, list, delete (moving their expenses when asked), find by name or id."""

from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row

from . import validate
from .errors import InputError, TrackerError


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


@dataclass(frozen=True)
class DeletedCategory:
    category: Category
    moved_expenses: int
    moved_to: Category | None
    removed_budgets: int


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
        return cursor.fetchone()


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
            f'Error: category name "{name}" is all digits, which reads as a category id. '
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
                raise InputError(
                    f"Error: category id {category_id} does not exist. "
                    "Check `category list` (a category is named by its name or its id)."
                )
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
        raise InputError(
            f'Error: category "{reference}" does not exist. '
            "Check `category list`, or add it with `category add`."
        )
    return found


def delete_category(
    conn: psycopg.Connection, reference, move_to=None
) -> DeletedCategory:
    """Delete a category; expenses using it are moved to `move_to` first, else it is refused."""
    with conn.transaction():
        category = find_category(conn, reference)
        target = find_category(conn, move_to) if move_to is not None else None
        if target is not None and target.id == category.id:
            raise InputError(
                f'Error: --move-to "{move_to}" is the category being deleted. '
                "Move its expenses to another category."
            )
        moved = 0
        if target is not None:
            moved = conn.execute(
                "update expenses set category_id = %s where category_id = %s",
                [target.id, category.id],
            ).rowcount
        budgets = conn.execute(
            "select count(*) from budgets where category_id = %s", [category.id]
        ).fetchone()[0]
        try:
            with conn.transaction():
                conn.execute("delete from categories where id = %s", [category.id])
        except psycopg.errors.ForeignKeyViolation as exc:
            reason = exc.diag.message_primary or f'category "{category.name}" is in use'
            raise TrackerError(
                f"Error: cannot delete category: {reason}. Move them with "
                f"`category delete {category.name} --move-to OTHER`, or delete them first."
            ) from None
    return DeletedCategory(category, moved, target, budgets)


def _name_taken(name: str) -> InputError:
    return InputError(
        f'Error: category "{name}" already exists. Choose another name, or see `category list`.'
    )
