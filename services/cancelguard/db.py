"""Postgres: the connection pool and the numbered SQL migrations.

Every service uses its own schema (settings.postgres_schema) through search_path, so tests and several
deployments can share one server. Migrations are plain SQL files, applied once each, in order, under an
advisory lock so that several instances starting together do not race.
"""

from __future__ import annotations

import json
import logging
from importlib import resources

import asyncpg

log = logging.getLogger("cancelguard.db")

ACQUIRE_TIMEOUT_S = 10.0  # every pool use is bounded
_MIGRATIONS_PACKAGE = "cancelguard.metrics.migrations"
_LOCK_KEY = 0x63616E63  # "canc": the advisory lock id for migrations


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset query on release (asyncpg's default costs a round trip per use): for pools whose users
    leave no session state behind (no SET, LISTEN, advisory lock or open cursor), such as the API's."""


async def create_pool(
    *,
    dsn: str,
    schema: str,
    min_size: int = 1,
    max_size: int = 10,
    statement_timeout_s: float | None = None,
    reset_on_release: bool = True,
) -> asyncpg.Pool:
    settings = {
        "search_path": schema,
        "application_name": "cancelguard",
        # asyncpg prepares every statement; after five runs Postgres may switch to a generic plan
        # that ignores how many keys a batch holds (measured: the batch's order lookup scanned every
        # order of the seller account until the table was analyzed). Plan each run for its arguments.
        "plan_cache_mode": "force_custom_plan",
    }
    if statement_timeout_s is not None:  # the server cancels any statement running longer
        settings["statement_timeout"] = str(int(statement_timeout_s * 1000))
    return await asyncpg.create_pool(
        dsn=dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings=settings,
        command_timeout=60,
        reset=None if reset_on_release else _keep_session,
    )


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every NNNN_name.sql shipped with the package, in order."""
    found = []
    for entry in resources.files(_MIGRATIONS_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(*, dsn: str, schema: str) -> list[str]:
    """Apply the migrations not applied yet; returns their names."""
    conn = await asyncpg.connect(dsn=dsn)
    try:
        applied_now = []
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in migration_files():
                if version in done:
                    continue
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
                applied_now.append(name)
        if applied_now:
            log.info("applied migrations", extra={"schema": schema, "migrations": applied_now})
        return applied_now
    finally:
        await conn.close()


# --- what a failure means ---------------------------------------------------------------------------

# SQLSTATE classes that say "the server is away or busy", not "this statement is wrong": connection
# exception, insufficient resources, operator intervention (shutdown, starting up), transaction rollback
# (serialization failure, deadlock), system error.
_TRANSIENT_CLASSES = ("08", "53", "57", "40", "58")


def is_transient(exc: BaseException) -> bool:
    """Retry later: Postgres is down, restarting, or the connection broke."""
    if isinstance(exc, asyncpg.PostgresError):
        return (exc.sqlstate or "")[:2] in _TRANSIENT_CLASSES
    # InternalClientError: asyncpg's protocol was left mid-operation by a connection that failed
    return isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError)


def is_record_error(exc: BaseException) -> bool:
    """The data of a record is what Postgres (or asyncpg's encoder) refuses: isolate that record."""
    return isinstance(
        exc,
        asyncpg.DataError
        | asyncpg.IntegrityConstraintViolationError
        | UnicodeError
        | OverflowError
        | ValueError,
    )


async def ping(pool: asyncpg.Pool) -> None:
    """The health probe: one round trip on a pooled connection.

    When it fails, every pooled connection is marked for replacement: after Postgres restarts, the old
    connections are dead, and each would otherwise fail one more call, long after health said SERVING."""
    try:
        async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            await conn.fetchval("SELECT 1")
    except Exception as exc:
        if is_transient(exc):
            await pool.expire_connections()
        raise
