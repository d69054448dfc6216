"""Which engine this process's Piccolo uses: binding it, finding it, and write transactions.

Piccolo finds its engine through the module `PICCOLO_CONF` names (`piccolo_conf`); the tables
carry a reference to it too. `bind_engine` points all of them at one engine, SQLite or
PostgreSQL, and the queries of `tasks` find it with `bound_engine`.
"""

from __future__ import annotations

import os
from typing import TypeAlias

from piccolo.apps.migrations.tables import Migration
from piccolo.engine.postgres import PostgresTransaction
from piccolo.engine.sqlite import SQLiteTransaction, TransactionType

from apiclub.db import piccolo_conf
from apiclub.db.postgres import Postgres
from apiclub.db.sqlite import SQLiteDatabase
from apiclub.db.tables import Task

Database: TypeAlias = SQLiteDatabase | Postgres
"""The engines apiclub runs on (both implement `interface.Engine`)."""


def bind_engine(engine: Database) -> None:
    """Make this process's Piccolo (tables, migrations, `piccolo` commands) use `engine`."""
    piccolo_conf.DB = engine
    # Piccolo finds its engine only through the module that PICCOLO_CONF names (its migration
    # manager calls engine_finder() itself), so pointing the variable at our module is the hook.
    os.environ["PICCOLO_CONF"] = piccolo_conf.__name__
    Task._meta.db = engine
    Migration._meta.db = engine


def write_transaction() -> SQLiteTransaction | PostgresTransaction:
    """A transaction for writes that must go together (migrations; tests).

    A single task write needs none: on SQLite it is group-committed (`SQLiteDatabase.write`),
    on PostgreSQL it runs in a transaction of its own (`tasks._write`).

    SQLite: IMMEDIATE, so writers queue on the busy timeout. A DEFERRED transaction that reads
    first and then writes cannot wait for the lock (SQLite answers SQLITE_BUSY at once to avoid
    a deadlock); IMMEDIATE takes the lock up front.

    PostgreSQL: a plain READ COMMITTED transaction. Each write is one statement (INSERT, UPDATE
    or DELETE ... RETURNING) whose row locks make concurrent writers to a row wait, and an
    UPDATE that waited re-reads the row's latest version, so no write is lost; there is no
    read-then-write for a stricter level to protect.
    """
    engine = bound_engine()
    if isinstance(engine, Postgres):
        return engine.transaction()
    return engine.transaction(transaction_type=TransactionType.immediate)


def bound_engine() -> Database:
    """The engine `bind_engine` installed.

    Raises:
        RuntimeError: no engine is bound (a programming error, not an operator's).
    """
    engine = piccolo_conf.DB
    if not isinstance(engine, SQLiteDatabase | Postgres):
        raise RuntimeError(
            "no database engine bound: call bind_engine(create_sqlite_engine(path)) first"
        )
    return engine
