"""The API's own tables (migrations 0005, 0006): writes once per request_id, answered requests, the log
of request changes that WatchCancellationRequests streams, and the cancel feeds submitted to Amazon.
All their SQL is here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from cancelguard.db import ACQUIRE_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class StoredRequest:
    method: str
    fingerprint: bytes
    response: bytes
    event: bytes | None
    partition_key: str | None
    published: bool


@dataclass(frozen=True, slots=True)
class Position:
    """A place in the request change log: every change up to and including (tx, seq) was delivered."""

    tx: int
    seq: int


@dataclass(frozen=True, slots=True)
class Change:
    position: Position
    seller_account: str
    marketplace_id: str
    amazon_order_id: str
    kind: str  # OPENED, CHANGED, CLOSED, ANSWERED
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class PendingFeed:
    """A cancel feed to submit to Amazon for a decision, recorded with it."""

    event_id: str
    seller_account: str
    marketplace_id: str
    amazon_order_id: str
    document: bytes


@dataclass(frozen=True, slots=True)
class FeedRow:
    event_id: str
    seller_account: str
    marketplace_id: str
    amazon_order_id: str
    document: bytes
    state: str  # PENDING, SUBMITTED, DONE, FAILED
    feed_id: str | None
    processing_status: str | None
    report: dict[str, Any] | None
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewRequest:
    caller: str
    request_id: str
    method: str
    fingerprint: bytes
    response: bytes
    event: bytes | None = None
    partition_key: str | None = None
    feed: PendingFeed | None = None  # recorded in the same transaction


_INSERT = (
    "INSERT INTO api_requests (caller, request_id, method, fingerprint, response, event, partition_key)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (caller, request_id) DO NOTHING RETURNING 1"
)


class Records:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def find(self, caller: str, request_id: str, *, timeout: float | None) -> StoredRequest | None:
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            row = await conn.fetchrow(
                "SELECT method, fingerprint, response, event, partition_key, published_at IS NOT NULL"
                " FROM api_requests WHERE caller = $1 AND request_id = $2",
                caller,
                request_id,
                timeout=timeout,
            )
        return StoredRequest(*row) if row is not None else None

    async def insert(self, new: NewRequest, *, timeout: float | None) -> bool:
        """False when a request with this id was recorded first (a concurrent retry)."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            if new.feed is None:  # one statement: no transaction round trips on the common writes
                return bool(await conn.fetchval(_INSERT, *_values(new), timeout=timeout))
            async with conn.transaction():
                if not await conn.fetchval(_INSERT, *_values(new), timeout=timeout):
                    return False
                f = new.feed
                await conn.execute(
                    "INSERT INTO feed_submissions (event_id, seller_account, marketplace_id, amazon_order_id,"
                    " document) VALUES ($1, $2, $3, $4, $5)",
                    f.event_id,
                    f.seller_account,
                    f.marketplace_id,
                    f.amazon_order_id,
                    f.document,
                    timeout=timeout,
                )
        return True

    async def mark_published(self, caller: str, request_id: str) -> None:
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            await conn.execute(
                "UPDATE api_requests SET published_at = now() WHERE caller = $1 AND request_id = $2",
                caller,
                request_id,
            )

    async def unpublished(self, older_than: datetime, limit: int) -> list[tuple[str, str, bytes, str]]:
        """(caller, request_id, event, partition_key) of events recorded but not known to be on the topic."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            rows = await conn.fetch(
                "SELECT caller, request_id, event, partition_key FROM api_requests"
                " WHERE published_at IS NULL AND event IS NOT NULL AND created_at < $1"
                " ORDER BY created_at LIMIT $2",
                older_than,
                limit,
            )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def answer(
        self,
        new: NewRequest,
        seller: str,
        marketplace_id: str,
        order_id: str,
        answered_at: datetime,
        *,
        timeout: float | None,
    ) -> bool:
        """Record the answer, its change-log entry and the request, in one transaction: all or none.
        False when the request id was recorded first."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            if not await conn.fetchval(_INSERT, *_values(new), timeout=timeout):
                return False
            await conn.execute(
                "INSERT INTO request_answers (seller_account, marketplace_id, amazon_order_id, answered_at,"
                " answered_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seller_account, marketplace_id,"
                " amazon_order_id) DO UPDATE SET answered_at = EXCLUDED.answered_at,"
                " answered_by = EXCLUDED.answered_by",
                seller,
                marketplace_id,
                order_id,
                answered_at,
                new.caller,
                timeout=timeout,
            )
            await conn.execute(
                "INSERT INTO request_changes (seller_account, marketplace_id, amazon_order_id, kind)"
                " VALUES ($1, $2, $3, 'ANSWERED')",
                seller,
                marketplace_id,
                order_id,
                timeout=timeout,
            )
        return True

    # --- the change log ---

    async def now_position(self) -> Position:
        """The position of "now": everything of transactions already finished counts as delivered."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            xmin = await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return Position(int(xmin) - 1, 2**62)

    async def changes(
        self, after: Position, sellers: Sequence[str], marketplace_id: str, limit: int
    ) -> list[Change]:
        """Changes after `after`, of finished transactions only, in log order."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            rows = await conn.fetch(
                "SELECT tx::text::bigint, seq, seller_account, marketplace_id, amazon_order_id, kind,"
                " changed_at FROM request_changes WHERE tx < pg_snapshot_xmin(pg_current_snapshot())"
                " AND (tx, seq) > ($1::text::xid8, $2) AND seller_account = ANY($3::text[])"
                " AND ($4 = '' OR marketplace_id = $4) ORDER BY tx, seq LIMIT $5",
                str(after.tx),
                after.seq,
                list(sellers),
                marketplace_id,
                limit,
            )
        return [Change(Position(r[0], r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows]

    # --- cancel feeds submitted to Amazon ---

    async def feed(self, seller: str, event_id: str, *, timeout: float | None) -> FeedRow | None:
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            row = await conn.fetchrow(
                f"SELECT {_FEED_COLUMNS} FROM feed_submissions WHERE seller_account = $1 AND event_id = $2",
                seller,
                event_id,
                timeout=timeout,
            )
        return _feed_row(row) if row is not None else None

    async def claim_feeds(self, lease: timedelta, limit: int) -> list[FeedRow]:
        """Due submissions, each leased to this process: its next_at moves past the lease, so no other
        replica takes it meanwhile, and it is due again if this process dies with it."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            rows = await conn.fetch(
                "WITH due AS (SELECT event_id FROM feed_submissions WHERE state IN ('PENDING', 'SUBMITTED')"
                " AND next_at <= now() ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
                " UPDATE feed_submissions f SET next_at = now() + $1 FROM due WHERE f.event_id = due.event_id"
                f" RETURNING {', '.join('f.' + c for c in _FEED_COLUMNS.split(', '))}",
                lease,
                limit,
            )
        return [_feed_row(r) for r in rows]

    async def update_feed(
        self,
        event_id: str,
        *,
        state: str,
        again_in: timedelta | None = None,
        feed_id: str | None = None,
        processing_status: str | None = None,
        report: dict[str, Any] | None = None,
        error: str | None = None,
        failed_call: bool = False,
    ) -> None:
        """Record what Amazon said. `again_in`: when to look again (None: never, the row is final);
        `failed_call`: a call to Amazon failed (counted in attempts)."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            await conn.execute(
                "UPDATE feed_submissions SET state = $2, next_at = now() + COALESCE($3, interval '0'),"
                " feed_id = COALESCE($4, feed_id), processing_status = COALESCE($5, processing_status),"
                " report = COALESCE($6::jsonb, report), error = $7, attempts = attempts + $8::int,"
                " updated_at = now() WHERE event_id = $1",
                event_id,
                state,
                again_in,
                feed_id,
                processing_status,
                report,
                error,
                int(failed_call),
            )

    async def prune(self, before: datetime) -> tuple[int, int]:
        """Drop change-log entries and request records older than `before` (retention)."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            changes = await conn.execute("DELETE FROM request_changes WHERE changed_at < $1", before)
            requests = await conn.execute(
                "DELETE FROM api_requests WHERE created_at < $1"
                " AND (published_at IS NOT NULL OR event IS NULL)",
                before,
            )
        return int(changes.split()[-1]), int(requests.split()[-1])


_FEED_COLUMNS = (
    "event_id, seller_account, marketplace_id, amazon_order_id, document, state, feed_id,"
    " processing_status, report, error, attempts, created_at, updated_at"
)


def _feed_row(r: asyncpg.Record) -> FeedRow:
    return FeedRow(*r)


def _values(new: NewRequest) -> tuple[object, ...]:
    return (
        new.caller,
        new.request_id,
        new.method,
        new.fingerprint,
        new.response,
        new.event,
        new.partition_key,
    )
