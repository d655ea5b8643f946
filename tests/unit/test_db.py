"""Which Postgres failures are an outage to wait out (retried), and which are not."""

from __future__ import annotations

import asyncpg
import pytest

from cancelguard import db


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (TimeoutError(), True),
        (asyncpg.ConnectionDoesNotExistError("closed in the middle"), True),
        (asyncpg.InterfaceError("cannot perform operation: another operation is in progress"), True),
        (
            asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
            True,
        ),
        (asyncpg.CannotConnectNowError("the database system is shutting down"), True),
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.UniqueViolationError("duplicate key"), False),
        (asyncpg.UndefinedTableError("no such table"), False),
        (ValueError("a bug"), False),
    ],
)
def test_an_outage_is_retried_and_a_fault_is_not(error: Exception, transient: bool) -> None:
    assert db.is_transient(error) is transient
