"""Where each poller has read up to, per seller account x marketplace x source, in Postgres.

A cursor moves only after Kafka acknowledged every event read before it (the pollers call `save` after
`Sender.send_all` returned True), so a crash at any point re-reads from the last saved cursor: some
events are published twice, with the same ids, and the fold absorbs them; none is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from cancelguard.db import ACQUIRE_TIMEOUT_S


class CursorStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def load(self, seller_account: str, source: str) -> dict[str, datetime]:
        """marketplace id -> read_until, for the marketplaces that have one."""
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            rows = await conn.fetch(
                "SELECT marketplace_id, read_until FROM poll_cursors"
                " WHERE seller_account = $1 AND source = $2",
                seller_account,
                source,
            )
        return {r["marketplace_id"]: r["read_until"] for r in rows}

    async def save(
        self, seller_account: str, marketplace_ids: Sequence[str], source: str, read_until: datetime
    ) -> None:
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            await conn.execute(
                "INSERT INTO poll_cursors (seller_account, marketplace_id, source, read_until)"
                " SELECT $1, m, $3, $4 FROM unnest($2::text[]) AS m"
                " ON CONFLICT (seller_account, marketplace_id, source)"
                " DO UPDATE SET read_until = EXCLUDED.read_until, updated_at = now()",
                seller_account,
                list(marketplace_ids),
                source,
                read_until,
            )
