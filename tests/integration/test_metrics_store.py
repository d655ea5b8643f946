"""The metrics store against a real Postgres: exactly-once batches, idempotent replays, late facts.

The expected numbers come from the scenario's own ground truth (its stories), not from the domain code.
"""

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from cancelguard import db
from cancelguard.domain import alerts as rules
from cancelguard.domain.lifecycle import fold
from cancelguard.domain.model import (
    CancelledBy,
    Channel,
    ItemObservation,
    OrderEvent,
    OrderKey,
    OrderSnapshot,
    OrderStatus,
    Source,
)
from cancelguard.domain.policy import PolicyBook
from cancelguard.domain.windows import live_window
from cancelguard.ingestion.adapters.buyer_messages import parse_buyer_message
from cancelguard.ingestion.adapters.order_change import parse_order_change
from cancelguard.metrics import store as store_module
from cancelguard.metrics.store import (
    FOLD_READ,
    FOLD_UPDATE,
    KEY_LOOKUPS,
    AlertOptions,
    PartitionBatch,
    Store,
)
from cancelguard.simulator.scenario import Scenario, generate

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
GROUP = "test-metrics"
TOPIC = "order-events"


@pytest_asyncio.fixture(loop_scope="session")
async def store(postgres_dsn: str, pg_schema: str) -> AsyncIterator[Store]:
    await db.migrate(dsn=postgres_dsn, schema=pg_schema)
    pool = await db.create_pool(dsn=postgres_dsn, schema=pg_schema)
    yield Store(pool, PolicyBook())
    await pool.close()


def scenario_events(scenario: Scenario) -> list[OrderEvent]:
    events = [parse_order_change(n, observed_at=NOW) for n in scenario.notifications]
    for m in scenario.messages:
        event, _ = parse_buyer_message(m, observed_at=NOW)
        if event is not None:
            events.append(event)
    return events


def batches(
    events: list[OrderEvent], *, start: int = 0, size: int = 500, partition: int = 0
) -> list[PartitionBatch]:
    out = []
    for i in range(0, len(events), size):
        chunk = events[i : i + size]
        out.append(PartitionBatch(TOPIC, partition, [(start + i + n, e) for n, e in enumerate(chunk)]))
    return out


async def totals(store: Store, scenario: Scenario) -> dict[tuple[str, str], tuple[int, int]]:
    window = live_window(NOW)
    found = {}
    for seller, mkt in scenario.expected():
        orders, cancellations = await store.bucket_totals(seller, mkt, window.start, window.end)
        found[(seller, mkt)] = (orders, cancellations)
    return found


def truth(scenario: Scenario) -> dict[tuple[str, str], tuple[int, int]]:
    return {k: (e.orders, e.cancellations) for k, e in scenario.expected().items()}


async def test_scenario_totals_match_the_stories(store: Store) -> None:
    scenario = generate(NOW)
    for batch in batches(scenario_events(scenario)):
        await store.apply_batch(GROUP, [batch])
    assert await totals(store, scenario) == truth(scenario)


async def test_a_replayed_batch_is_skipped_by_offset(store: Store) -> None:
    scenario = generate(NOW, seed=3)
    all_batches = batches(scenario_events(scenario))
    for batch in all_batches:
        await store.apply_batch(GROUP, [batch])
    before = await totals(store, scenario)
    # the consumer crashed after the commit but before Kafka knew: the same records come again
    result = await store.apply_batch(GROUP, [all_batches[0]])
    assert result.events_applied == 0
    assert result.records_skipped == len(all_batches[0].records)
    assert await totals(store, scenario) == before == truth(scenario)
    assert (await store.load_offsets(GROUP, TOPIC))[0] == all_batches[-1].next_offset


async def test_two_instances_applying_the_same_first_batch_apply_it_once(store: Store) -> None:
    """A rebalance can leave two metrics instances reading the same partition for a moment."""
    scenario = generate(NOW, seed=8)
    events = scenario_events(scenario)
    batch = PartitionBatch(TOPIC, 3, [(n, e) for n, e in enumerate(events)])
    first, second = await asyncio.gather(store.apply_batch(GROUP, [batch]), store.apply_batch(GROUP, [batch]))
    assert sorted([first.events_applied, second.events_applied]) == [0, len(events)]
    assert await totals(store, scenario) == truth(scenario)


async def test_duplicate_events_at_new_offsets_change_nothing(store: Store) -> None:
    """Ingestion re-published after a crash: same event ids, later offsets."""
    scenario = generate(NOW, seed=4)
    events = scenario_events(scenario)
    for batch in batches(events):
        await store.apply_batch(GROUP, [batch])
    for batch in batches(events, start=len(events)):
        await store.apply_batch(GROUP, [batch])
    assert await totals(store, scenario) == truth(scenario)


async def test_five_percent_duplicated_events_on_another_partition_have_no_effect(store: Store) -> None:
    """At-least-once delivery upstream (SQS redelivery, a poll overlapping a notification): 5% of the
    events arrive twice, the copy on another partition, in another batch."""
    scenario = generate(NOW, seed=6)
    events = scenario_events(scenario)
    rng = random.Random(3)
    copies = rng.sample(events, len(events) * 5 // 100)
    main = list(events)
    rng.shuffle(copies)
    for batch in batches(main, partition=0, size=200):
        await store.apply_batch(GROUP, [batch])
    for batch in batches(copies, partition=1, size=37):
        await store.apply_batch(GROUP, [batch])
    assert await totals(store, scenario) == truth(scenario)
    by_order: dict[OrderKey, list[OrderEvent]] = {}
    for e in events:
        by_order.setdefault(e.key, []).append(e)
    for key, order_events in by_order.items():
        stored = await store.get_order(key)
        assert stored == fold(order_events), key


async def test_arrival_order_and_batch_cuts_do_not_matter(store: Store) -> None:
    scenario = generate(NOW, seed=5)
    events = scenario_events(scenario)
    random.Random(1).shuffle(events)
    offset = 0
    rng = random.Random(2)
    while offset < len(events):
        size = rng.randint(1, 300)
        chunk = events[offset : offset + size]
        await store.apply_batch(
            GROUP, [PartitionBatch(TOPIC, 0, [(offset + n, e) for n, e in enumerate(chunk)])]
        )
        offset += size
    assert await totals(store, scenario) == truth(scenario)
    async with store.pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM cr_buckets WHERE orders < 0 OR cancellations < 0") == 0
        )


async def test_a_late_cancel_changes_the_past_window_it_belongs_to(store: Store) -> None:
    key = OrderKey("A1LATE", "ATVPDKIKX0DER", "111-0000001-0000001")
    bought = NOW - timedelta(days=9)

    def snap(at: datetime, status: OrderStatus, n: int) -> OrderEvent:
        return OrderEvent(
            f"late-{n}",
            key,
            Source.ORDER_CHANGE,
            at,
            at,
            OrderSnapshot(status=status, channel=Channel.MFN, purchased_at=bought),
        )

    await store.apply_batch(
        GROUP,
        batches(
            [
                snap(bought, OrderStatus.PENDING, 1),
                snap(bought + timedelta(hours=1), OrderStatus.UNSHIPPED, 2),
            ]
        ),
    )
    past = (bought.replace(minute=0) - timedelta(days=1), bought.replace(minute=0) + timedelta(days=1))
    assert await store.bucket_totals(key.seller_account, key.marketplace_id, *past) == (1, 0)
    # Amazon auto-cancels it days later; the order still belongs to the window of its purchase date
    await store.apply_batch(GROUP, batches([snap(NOW, OrderStatus.CANCELED, 3)], start=2))
    assert await store.bucket_totals(key.seller_account, key.marketplace_id, *past) == (1, 1)
    recent = live_window(NOW)
    assert await store.bucket_totals(key.seller_account, key.marketplace_id, recent.start, recent.end) == (
        0,
        0,
    )


async def test_writes_are_one_upsert_per_order_and_bucket_per_batch(
    store: Store, postgres_dsn: str, pg_schema: str
) -> None:
    scenario = generate(NOW, seed=6)
    events = scenario_events(scenario)
    result = await store.apply_batch(GROUP, batches(events, size=len(events)))
    conn = await asyncpg.connect(postgres_dsn, server_settings={"search_path": pg_schema})
    try:
        orders = await conn.fetchval("SELECT count(*) FROM orders")
        buckets = await conn.fetchval("SELECT count(*) FROM cr_buckets")
    finally:
        await conn.close()
    assert result.orders_written == orders == len(scenario.stories)
    assert result.buckets_written == buckets
    assert result.events_applied == len(events)


async def _waiting_for_locks(conn: asyncpg.Connection) -> int:
    # pg_locks, not pg_stat_activity: the latter is a snapshot taken once per transaction
    return await conn.fetchval("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")


async def _until_waiting(conn: asyncpg.Connection, n: int, tasks: list[asyncio.Task]) -> None:
    """Until `n` backends wait for a lock (or a task already ended, which the test then reports)."""
    deadline = asyncio.get_running_loop().time() + 30
    while await _waiting_for_locks(conn) < n and not any(t.done() for t in tasks):
        assert asyncio.get_running_loop().time() < deadline, f"{n} batches never waited for a lock"
        await asyncio.sleep(0.02)


async def test_one_order_on_two_partitions_in_racing_batches_loses_no_update(
    store: Store, postgres_dsn: str, pg_schema: str
) -> None:
    """Two batches from different partitions hold the same new order (a producer keyed by order, or a
    partition count change). The first is held inside its transaction, after it read the order, by a
    lock the test takes on the hour bucket it must update; the second starts meanwhile. Without row
    locks the second folds the order from nothing and overwrites the first (and counts the order twice
    in the denominator); with them it waits, then folds into what the first committed."""
    bought = NOW - timedelta(hours=3)
    key = OrderKey("A1DEMOSELLERUS", "ATVPDKIKX0DER", "114-0000000-0000001")

    def snapshot(event_id: str, status: OrderStatus, at: datetime, order: OrderKey = key) -> OrderEvent:
        return OrderEvent(
            event_id,
            order,
            Source.ORDER_CHANGE,
            at,
            NOW,
            OrderSnapshot(status=status, channel=Channel.MFN, purchased_at=bought),
        )

    # another order of the same hour, so that the hour bucket row exists for the test to lock
    other = snapshot(
        "e-other", OrderStatus.UNSHIPPED, bought, OrderKey(key.seller_account, key.marketplace_id, "114-9")
    )
    await store.apply_batch(GROUP, [PartitionBatch(TOPIC, 2, [(0, other)])])
    unshipped = snapshot("e-unshipped", OrderStatus.UNSHIPPED, bought + timedelta(minutes=40))
    cancelled = snapshot("e-cancelled", OrderStatus.CANCELED, bought + timedelta(hours=1))

    blocker = await asyncpg.connect(postgres_dsn, server_settings={"search_path": pg_schema})
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT * FROM cr_buckets FOR UPDATE")
        first = asyncio.create_task(store.apply_batch(GROUP, [PartitionBatch(TOPIC, 0, [(0, unshipped)])]))
        await _until_waiting(blocker, 1, [first])
        second = asyncio.create_task(store.apply_batch(GROUP, [PartitionBatch(TOPIC, 1, [(0, cancelled)])]))
        await _until_waiting(blocker, 2, [first, second])
        await tx.rollback()
        await asyncio.wait_for(asyncio.gather(first, second), 30)
    finally:
        await blocker.close()

    order = await store.get_order(key)
    assert order is not None
    assert order.left_pending_at == unshipped.occurred_at, "the first batch's update was lost"
    assert order.is_canceled
    window = live_window(NOW)
    # two orders in the hour (this one once), one counted cancellation
    assert await store.bucket_totals(key.seller_account, key.marketplace_id, window.start, window.end) == (
        2,
        1,
    )


async def test_a_batch_finds_its_orders_by_key_however_big_the_account(
    store: Store, postgres_dsn: str, pg_schema: str
) -> None:
    """One account with 3,000 orders and a batch touching 1,000 of them. Left to itself the planner
    joined such a batch to the account's orders with a merge join (quadratic: 11 s at 40,000 orders) or
    a hash join (every order of the table), and before the table had statistics it scanned the whole
    account for each key: the store gathers them, and its batches run with KEY_LOOKUPS, under which each
    key is one primary-key lookup."""
    seller, mkt = "A1DEMOSELLERUS", "ATVPDKIKX0DER"
    keys = [OrderKey(seller, mkt, f"114-0000000-{n:07d}") for n in range(3000)]

    def unshipped(n: int, key: OrderKey, minutes: int) -> OrderEvent:
        bought = NOW - timedelta(hours=30) + timedelta(seconds=n)
        snap = OrderSnapshot(status=OrderStatus.UNSHIPPED, channel=Channel.MFN, purchased_at=bought)
        return OrderEvent(
            f"big-{n}-{minutes}", key, Source.ORDER_CHANGE, bought + timedelta(minutes=minutes), NOW, snap
        )

    await store.apply_batch(GROUP, batches([unshipped(n, k, 1) for n, k in enumerate(keys)], size=1000))
    conn = await asyncpg.connect(postgres_dsn, server_settings={"search_path": pg_schema})
    try:
        # what the store's own transaction runs with, seen from inside it by a trigger of this test
        await conn.execute(
            "CREATE TABLE seen_settings (hashjoin text, mergejoin text);"
            " CREATE FUNCTION record_settings() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " INSERT INTO seen_settings VALUES"
            " (current_setting('enable_hashjoin'), current_setting('enable_mergejoin')); RETURN NULL; END $$;"
            " CREATE TRIGGER record_settings AFTER UPDATE ON orders"
            " FOR EACH STATEMENT EXECUTE FUNCTION record_settings()"
        )
        later = [unshipped(n, k, 20) for n, k in enumerate(keys[:1000])]
        result = await store.apply_batch(
            GROUP, [PartitionBatch(TOPIC, 0, [(3000 + n, e) for n, e in enumerate(later)])]
        )
        assert result.orders_written == 1000
        assert await conn.fetch("SELECT DISTINCT * FROM seen_settings") == [("off", "off")]

        generation = await conn.fetchval("SELECT generation FROM generations WHERE state = 'active'")
        ids = [k.amazon_order_id for k in keys[:1000]]
        async with conn.transaction():
            await conn.execute(KEY_LOOKUPS)
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    f"EXPLAIN {FOLD_READ}", generation, [seller] * 1000, [mkt] * 1000, ids
                )
            )
    finally:
        await conn.close()
    assert "Merge Join" not in plan and "Hash Join" not in plan, plan
    assert "orders_pkey" in plan, plan


async def test_suppression_alerts_of_several_accounts_in_one_batch_stay_apart(
    postgres_dsn: str, pg_schema: str
) -> None:
    """One batch cancels the same SKU name at three shops: twice in a row at the first, once at the second
    and once at the third (the same marketplace as the first). Only the first is at risk; the one statement
    that looks for every shop of the batch never pairs orders of different shops."""
    await db.migrate(dsn=postgres_dsn, schema=pg_schema)
    pool = await db.create_pool(dsn=postgres_dsn, schema=pg_schema)
    store = Store(pool, PolicyBook(), alerts=AlertOptions())
    bought = NOW - timedelta(days=2)
    shops = [("A1TWICE", "ATVPDKIKX0DER"), ("A2ONCE", "A1PA6795UKMFR9"), ("A3ONCE", "ATVPDKIKX0DER")]
    events = []
    for seller, mkt in shops:
        for n in range(2 if seller == "A1TWICE" else 1):
            key = OrderKey(seller, mkt, f"111-{n:07d}-0000001")
            for step, status in enumerate((OrderStatus.UNSHIPPED, OrderStatus.CANCELED)):
                cancelled = status is OrderStatus.CANCELED
                events.append(
                    OrderEvent(
                        f"{seller}:{n}:{step}",
                        key,
                        Source.ORDERS_V2026,
                        bought + timedelta(minutes=n * 10 + step),
                        NOW,
                        OrderSnapshot(
                            status=status,
                            channel=Channel.MFN,
                            purchased_at=bought + timedelta(minutes=n * 10),
                            items=(
                                ItemObservation(
                                    f"{n}-1",
                                    seller_sku="SKU-SHARED",
                                    quantity_ordered=1,
                                    cancelled_by=CancelledBy.MERCHANT if cancelled else None,
                                    cancel_reason="NoInventory" if cancelled else "",
                                ),
                            ),
                        ),
                    )
                )
    try:
        await store.apply_batch(GROUP, batches(events, size=len(events)), now=NOW)
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT seller_account, marketplace_id, seller_sku, first_order, second_order"
                " FROM suppression_alerts"
            )
    finally:
        await pool.close()
    assert [tuple(r) for r in rows] == [
        ("A1TWICE", "ATVPDKIKX0DER", "SKU-SHARED", "111-0000000-0000001", "111-0000001-0000001")
    ]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fold in chunks of 7 keys, folded 3 at a time: a test's batch spans many chunks."""
    monkeypatch.setattr(store_module, "_FOLD_CHUNK", 7)
    monkeypatch.setattr(store_module, "_FOLD_SLICE", 3)


def _with_copies(events: list[OrderEvent], seed: int) -> list[OrderEvent]:
    """The events shuffled, 5% of them twice (at-least-once delivery upstream)."""
    rng = random.Random(seed)
    out = events + rng.sample(events, len(events) * 5 // 100)
    rng.shuffle(out)
    return out


async def _folded_as_the_events_say(store: Store, events: list[OrderEvent]) -> None:
    by_order: dict[OrderKey, list[OrderEvent]] = {}
    for e in events:
        by_order.setdefault(e.key, []).append(e)
    for key, order_events in by_order.items():
        assert await store.get_order(key) == fold(order_events), key


async def test_a_batch_folded_in_many_chunks_counts_each_order_and_bucket_once(
    store: Store, small_chunks: None, postgres_dsn: str, pg_schema: str
) -> None:
    scenario = generate(NOW, seed=9)
    events = scenario_events(scenario)
    mixed = _with_copies(events, seed=4)
    third = len(mixed) // 3
    first = await store.apply_batch(GROUP, batches(mixed[:third], size=third))
    conn = await asyncpg.connect(postgres_dsn, server_settings={"search_path": pg_schema})
    try:
        assert first.buckets_written == await conn.fetchval("SELECT count(*) FROM cr_buckets")
    finally:
        await conn.close()
    # the rest in two batches of old and new orders mixed: updates and inserts in the same chunks
    for batch in batches(mixed[third:], start=third, size=third + 1):
        await store.apply_batch(GROUP, [batch])
    assert await totals(store, scenario) == truth(scenario)
    await _folded_as_the_events_say(store, events)


async def test_racing_batches_folded_in_many_chunks_lose_no_update(
    store: Store, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batches on two partitions hold events of the same orders and run at once: the one that
    loses the race fails in the middle of its chunks (its later statements never run), rolls back and
    is applied again on top of the other."""
    scenario = generate(NOW, seed=10)
    events = scenario_events(scenario)
    rng = random.Random(5)
    halves: list[list[OrderEvent]] = [[], []]
    for e in events:
        halves[rng.randrange(2)].append(e)
    conflicts = 0
    insert = Store._insert_orders

    async def counting(self: Store, *args: object) -> None:
        nonlocal conflicts
        try:
            await insert(self, *args)  # type: ignore[arg-type]
        except store_module._Conflict:
            conflicts += 1
            raise

    monkeypatch.setattr(Store, "_insert_orders", counting)
    await asyncio.gather(
        *(
            store.apply_batch(GROUP, [PartitionBatch(TOPIC, p, [(n, e) for n, e in enumerate(half)])])
            for p, half in enumerate(halves)
        )
    )
    assert conflicts >= 1, "the batches never raced"
    assert await totals(store, scenario) == truth(scenario)
    await _folded_as_the_events_say(store, events)


async def test_python_folds_while_postgres_reads_and_writes_the_other_chunks(
    store: Store, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The point of the chunks: while Python folds one, the fold's read of the next chunk and its update
    of the one before are already in Postgres. Recorded from the statements themselves: which of them
    were sent and not yet answered each time a slice of keys was folded."""
    scenario = generate(NOW, seed=11)
    events = scenario_events(scenario)
    half = len(events) // 2
    await store.apply_batch(GROUP, batches(events[:half], size=half))
    in_flight: set[str] = set()
    seen: list[frozenset[str]] = []

    def watched(method: Any) -> Any:
        async def run(self: asyncpg.Connection, sql: str, *args: Any, **kw: Any) -> Any:
            name = {FOLD_READ: "read", FOLD_UPDATE: "update"}.get(sql)
            if name is not None:
                in_flight.add(name)
            try:
                return await method(self, sql, *args, **kw)
            finally:
                in_flight.discard(name or "")

        return run

    monkeypatch.setattr(asyncpg.Connection, "fetch", watched(asyncpg.Connection.fetch))
    monkeypatch.setattr(asyncpg.Connection, "fetchval", watched(asyncpg.Connection.fetchval))
    keys = store_module._BatchFold.keys

    def folding(self: Any, *args: Any) -> None:
        seen.append(frozenset(in_flight))
        keys(self, *args)

    monkeypatch.setattr(store_module._BatchFold, "keys", folding)
    await store.apply_batch(GROUP, batches(events[half:], start=half, size=len(events) - half))
    assert len(seen) > 20, "the batch was not folded in many slices"
    assert any("read" in s for s in seen), "no read of a chunk ran while Python folded another"
    assert any("update" in s for s in seen), "no update of a chunk ran while Python folded another"
    assert await totals(store, scenario) == truth(scenario)


async def test_window_sums_of_one_read_per_account_equal_a_sum_per_window(store: Store) -> None:
    """The alerts' window totals read each account's buckets once over the span of its windows and sum
    them per window: each must equal the plain sum over that window alone (`bucket_totals`, the API's).
    Orders sit inside and outside each window, for accounts with two windows (live, Amazon's 7 days)
    and three (India: also 30 days), and one account has no buckets at all."""
    accounts = [("A1SUMS", "ATVPDKIKX0DER"), ("A2SUMS", "A21TJRUUN4KGV"), ("A3SUMS", "A1PA6795UKMFR9")]
    events = []
    for seller, mkt in accounts[:2]:
        for n, hours in enumerate((2, 30, 80, 7 * 24 + 5, 9 * 24, 20 * 24, 31 * 24 - 3, 35 * 24)):
            key = OrderKey(seller, mkt, f"111-{n:07d}-0000001")
            bought = NOW - timedelta(hours=hours)
            for step, status in enumerate((OrderStatus.UNSHIPPED, OrderStatus.CANCELED)[: 1 + n % 2]):
                events.append(
                    OrderEvent(
                        f"{seller}:{n}:{step}",
                        key,
                        Source.ORDER_CHANGE,
                        bought + timedelta(minutes=step),
                        NOW,
                        OrderSnapshot(status=status, channel=Channel.MFN, purchased_at=bought),
                    )
                )
    await store.apply_batch(GROUP, batches(events, size=len(events)))
    watched = {
        (seller, mkt, w.name): (w, store.policies.for_marketplace(mkt))
        for seller, mkt in accounts
        for w in rules.watched_windows(store.policies.for_marketplace(mkt), NOW)
    }
    assert {name for _, _, name in watched} == {"LIVE", "AMAZON_7", "AMAZON_30"}
    async with store.pool.acquire() as conn:
        generation = await conn.fetchval("SELECT generation FROM generations WHERE state = 'active'")
        totals = await store._window_totals(conn, generation, sorted(accounts), watched)
    expected = {
        subject: await store.bucket_totals(subject[0], subject[1], w.window.start, w.window.end)
        for subject, (w, _) in watched.items()
    }
    assert totals == expected
    india = [totals[("A2SUMS", "A21TJRUUN4KGV", name)] for name in ("LIVE", "AMAZON_7", "AMAZON_30")]
    assert len(set(india)) == 3, f"the windows do not tell their sums apart: {india}"
    assert all(totals[s] == (0, 0) for s in watched if s[0] == "A3SUMS")
