"""A turn's statements, sent on the driver's cursor: compiled by SQLAlchemy once, run with
none of its execution machinery per call.

SQLAlchemy's execution of a statement (its cache key, the parameters' processing, an
execution context, a result object) cost about as much CPU again as the driver's own work for
a turn's short statements, and was the largest share of a turn's cost (see README,
Performance). Here a statement is compiled once per dialect and parameter names (SQL text,
parameter order, the types' bind and result conversions: all SQLAlchemy's own), and each run
is the DB-API cursor's `execute` on the unit's connection, in its transaction or autocommit as
before: on PostgreSQL SQLAlchemy's asyncpg adapter (its prepared-statement cache, its naming of
asyncpg's errors), on SQLite the standard library driver. A failure is raised as SQLAlchemy
would raise it (an `IntegrityError` is one; a lost connection invalidated, for the unit to run
again on a fresh one); a statement stopped midway (a cancelled task) leaves its connection
unused; and the engine's `before_cursor_execute` listeners hear of every statement. A
statement with values made at execution (an expanding IN, a literal bound at execution, a
column's Python default) runs through `Connection.execute`, unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NoReturn, cast

from sqlalchemy import Connection
from sqlalchemy import Row as SqlRow
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

log = logging.getLogger(__name__)

_Convert = Callable[[Any], Any] | None


class Row(tuple[Any, ...]):
    """A result row as the units read SQLAlchemy's: by position, by column name as an
    attribute, and as `_mapping`."""

    __slots__ = ()
    _names: ClassVar[dict[str, int]] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._names[name]]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> dict[str, Any]:
        return {name: self[index] for name, index in self._names.items()}


AnyRow = Row | SqlRow[Any]
"""A row of `fetch`: ours, or SQLAlchemy's where the statement went through `execute`."""


class _Compiled:
    """One statement as the cursor runs it."""

    def __init__(self, stmt: Executable, dialect: Dialect, keys: tuple[str, ...]) -> None:
        # An INSERT or UPDATE takes the columns its parameters name, as `execute` has it.
        compiled = cast(
            SQLCompiler,
            cast(ClauseElement, stmt).compile(dialect=dialect, column_keys=list(keys)),
        )
        if (
            compiled.literal_execute_params
            or compiled.insert_prefetch
            or compiled.update_prefetch
            or any(bind.expanding or bind.callable for bind in compiled.binds.values())
        ):
            raise ValueError("a statement with values made at execution runs as is")
        self.sql = compiled.string
        self._dialect = dialect
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._values = {name: bind.value for name, bind in compiled.binds.items()}
        self._binds: tuple[_Convert, ...] = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self._names
        )
        self._columns = list(getattr(stmt, "exported_columns", ()))
        names = {column.key: index for index, column in enumerate(self._columns)}
        self._row: type[Row] = type("Row", (Row,), {"__slots__": (), "_names": names})
        # The columns' conversions, by the types the driver describes: known at the first run.
        self._results: tuple[_Convert, ...] | None = None

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The statement's parameters, in order and converted as SQLAlchemy would."""
        values = self._values
        out = []
        for name, convert in zip(self._names, self._binds, strict=True):
            value = params[name] if name in params else values[name]
            out.append(value if convert is None else convert(value))
        return tuple(out)

    def rows(self, cursor: Any) -> list[Row]:
        """The cursor's rows, each column converted as SQLAlchemy would."""
        results = self._results
        if results is None:
            described = cursor.description or ()
            if len(described) != len(self._columns):
                raise ValueError(f"{len(described)} columns came back, {len(self._columns)} named")
            results = self._results = tuple(
                column.type.dialect_impl(self._dialect).result_processor(self._dialect, about[1])
                for column, about in zip(self._columns, described, strict=True)
            )
        make = self._row
        if not any(results):
            return [make(record) for record in cursor.fetchall()]
        return [
            make(
                value if convert is None else convert(value)
                for value, convert in zip(record, results, strict=True)
            )
            for record in cursor.fetchall()
        ]


# By the statement's identity and its parameters' names. The statement is kept with it, so
# that identity is never another's: the statements run here are module constants, or made
# once per shape (`functools.cache`). A statement made afresh for every call would fill this
# up: past `_KEPT` entries, statements not seen yet go through `Connection.execute`.
_compiled: dict[tuple[int, str, tuple[str, ...]], tuple[Executable, _Compiled | None]] = {}
_KEPT = 256
_full = threading.Event()  # said once in the log


def _for(conn: Connection, stmt: Executable, params: Mapping[str, Any]) -> _Compiled | None:
    key = (id(stmt), conn.dialect.name, tuple(sorted(params)))
    found = _compiled.get(key)
    if found is None:
        if len(_compiled) >= _KEPT:
            if not _full.is_set():
                _full.set()
                log.warning("more statements than storage.direct keeps; the rest run as is")
            return None
        try:
            found = _compiled[key] = (stmt, _Compiled(stmt, conn.dialect, key[2]))
        except ValueError:
            found = _compiled[key] = (stmt, None)
    return found[1]


def fetch(conn: Connection, stmt: Executable, params: Mapping[str, Any]) -> Sequence[AnyRow]:
    """The rows `stmt` returns."""
    compiled = _for(conn, stmt, params)
    if compiled is None:
        return conn.execute(stmt, dict(params)).all()
    cursor = _execute(conn, compiled, params)
    try:
        return compiled.rows(cursor)
    finally:
        cursor.close()


def rowcount(conn: Connection, stmt: Executable, params: Mapping[str, Any]) -> int:
    """The rows `stmt` (an UPDATE or DELETE) touched."""
    compiled = _for(conn, stmt, params)
    if compiled is None:
        return int(conn.execute(stmt, dict(params)).rowcount or 0)
    cursor = _execute(conn, compiled, params)
    try:
        return max(0, int(cursor.rowcount))
    finally:
        cursor.close()


def _execute(conn: Connection, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
    args = compiled.args(params)
    cursor = conn.connection.cursor()
    told = conn.dispatch.before_cursor_execute
    if told:
        told(conn, cursor, compiled.sql, args, None, False)
    try:
        cursor.execute(compiled.sql, args)
    except conn.dialect.loaded_dbapi.Error as error:
        cursor.close()
        _raise(conn, compiled.sql, args, cursor, error)
    except BaseException:
        # Stopped mid-statement (a cancelled task, an exit): the connection may be halfway
        # through its protocol, so it is not used again, as SQLAlchemy has it.
        if not conn.invalidated:
            conn.invalidate()
        raise
    return cursor


def _raise(conn: Connection, sql: str, args: tuple[Any, ...], cursor: Any, error: Any) -> NoReturn:
    """`error` as SQLAlchemy raises a driver's failure: its own class for it. A lost
    connection is SQLAlchemy's to handle (it drops that connection and every other the pool
    opened before it): the statement goes once more through `exec_driver_sql`, fails there
    the same way, and is raised as SQLAlchemy raises it."""
    if conn.dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor):
        conn.exec_driver_sql(sql, args)  # (a connection taken for lost is: this fails too)
    raise DBAPIError.instance(
        sql, args, error, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
    ) from error
