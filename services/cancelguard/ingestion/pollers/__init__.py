"""The pollers: what Amazon's APIs say about the configured seller accounts -> order events.

    orders.py       Orders API v0 / v2026-01-01, one query per account per poll, cursors in Postgres
    enrichment.py   one Orders API call for an ORDER_CHANGE notification that lacks the reason or canceller
    reports.py      the Unshipped Orders flat file and the seller performance report
    cursors.py      where each source has read up to (moves only after Kafka acknowledged)
    service.py      `cancelguard serve pollers`: the accounts of one shard, health, outages

Every document goes the same route as the raw records (`ingestion.routing`): adapter, bounds, encode,
or a dead letter with its JSON path and reason.
"""
