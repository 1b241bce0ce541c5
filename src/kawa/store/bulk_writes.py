"""Writes of many rows in one statement.

On PostgreSQL each column's values travel as one array and ``unnest`` turns them back
into rows: one statement, one plan and one round trip, however many rows, with no
per-row work in the driver. Other databases (SQLite, in the host's own process) get the
plain many-row forms, which cost them no round trips."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Insert,
    String,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

Row = dict[str, Any]


def _table_of(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table), f"{model!r} is not mapped to one table"
    return table


def _on_postgresql(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def _array_of(kind: TypeEngine[Any]) -> TypeEngine[Any]:
    """The array type a column's values travel in: JSON as text (cast back in the
    statement), strings as text (so a value too long for its column is refused by the
    column, never cut short by the cast)."""
    if isinstance(kind, JSON | String):
        return ARRAY(Text)
    return ARRAY(kind)


def _unnested(table: Table, names: Sequence[str], prefix: str) -> Any:
    """``unnest`` of one array parameter per column of ``names`` (named ``prefix`` +
    column), as a derived table whose columns carry those names."""
    arrays = [cast(bindparam(prefix + name), _array_of(table.c[name].type)) for name in names]
    return func.unnest(*arrays).table_valued(*names).render_derived()


def _value(table: Table, source: Any, name: str) -> ColumnElement[Any]:
    """Column ``name`` of the derived table, as the type of the table's column."""
    column = table.c[name]
    return cast(source.c[name], column.type) if isinstance(column.type, JSON) else source.c[name]


def _arrays(
    table: Table, rows: Sequence[Mapping[str, Any]], names: Sequence[str], prefix: str
) -> Row:
    """One parameter per column: the values of every row, JSON serialised."""
    params: Row = {}
    for name in names:
        values = [row[name] for row in rows]
        if isinstance(table.c[name].type, JSON):
            values = [None if v is None else json.dumps(v) for v in values]
        params[prefix + name] = values
    return params


class BulkInsert:
    """INSERTs of many rows into the table of ``model`` (a mapped class), a statement
    built once for each set of columns the rows have."""

    def __init__(self, model: type[Any]) -> None:
        self.table = _table_of(model)
        self._plain: Insert = insert(self.table)
        self._arrays: dict[tuple[str, ...], Insert] = {}

    def _statement(self, names: tuple[str, ...]) -> Insert:
        found = self._arrays.get(names)
        if found is None:
            source = _unnested(self.table, names, "v_")
            chosen = select(*(_value(self.table, source, n) for n in names))
            found = self._arrays[names] = insert(self.table).from_select(list(names), chosen)
        return found

    def __call__(self, s: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (column -> value), every row with the columns of the first."""
        if not rows:
            return
        if _on_postgresql(s):
            names = tuple(rows[0])
            s.execute(self._statement(names), _arrays(self.table, rows, names, "v_"))
        else:
            s.execute(self._plain, list(rows))


class BulkUpdate:
    """An UPDATE of many rows of the table of ``model`` (a mapped class) by id, each
    row with its own values of the columns ``names``, written only where ``where`` (a
    condition on the table's own columns) holds; its statements built once."""

    def __init__(self, model: type[Any], names: Sequence[str], where: ColumnElement[bool]) -> None:
        table = _table_of(model)
        self.table, self.names = table, tuple(names)
        source = _unnested(table, ("id", *self.names), "v_")
        self._arrays = (
            update(table)
            .where(table.c.id == source.c.id, where)
            .values({n: _value(table, source, n) for n in self.names})
            .returning(*table.columns)
        )
        self._read = select(*table.columns).where(
            table.c.id.in_(bindparam("ids", expanding=True)), where
        )
        self._one = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({n: bindparam("b_" + n) for n in self.names})
        )

    def __call__(self, s: Session, rows: Sequence[Mapping[str, Any]]) -> dict[int, Row]:
        """Write ``rows`` (``id`` and the columns of :attr:`names`). Returns the rows
        written, as they now are (column -> value), by id; the others are left as
        they were."""
        if not rows:
            return {}
        if _on_postgresql(s):
            names = ("id", *self.names)
            return _by_id(s.execute(self._arrays, _arrays(self.table, rows, names, "v_")))
        found: dict[int, Row] = {}
        ids = [row["id"] for row in rows]
        for at in range(0, len(ids), 500):  # SQLite binds a few thousand values at most
            found |= _by_id(s.execute(self._read, {"ids": ids[at : at + 500]}))
        written = [row for row in rows if row["id"] in found]
        if written:
            s.execute(self._one, [{"b_" + k: v for k, v in row.items()} for row in written])
            for row in written:
                found[row["id"]].update(row)
        return found


def _by_id(result: Any) -> dict[int, Row]:
    """The rows of ``result`` (column -> value) by their ``id``."""
    keys = list(result.keys())
    at = keys.index("id")
    return {row[at]: dict(zip(keys, row, strict=True)) for row in result.all()}
