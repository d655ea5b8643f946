-- The pollers' state (ingestion/pollers): how far each source has been read, and the ORDER_CHANGE
-- notifications waiting for an Orders API call that says who cancelled and why.

-- Per seller account x marketplace x source: every change Amazon showed up to `read_until` is on the
-- order-events topic (acknowledged by Kafka before the row moved). Orders polls resume from it minus an
-- overlap; report sources keep the createdTime of the last report they published.
CREATE TABLE poll_cursors (
    seller_account  text        NOT NULL,
    marketplace_id  text        NOT NULL,
    source          text        NOT NULL,  -- orders-v0, orders-v2026, or a report type
    read_until      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (seller_account, marketplace_id, source)
);

-- One row per order whose notification needs the Orders API (a buyer request without its reason, a
-- cancel without who and why). Kept here, not in memory, so that a crash or a slow API never loses one
-- and never holds back the raw topic: the enrichment consumer commits its offsets once the rows exist.
CREATE TABLE enrichment_requests (
    seller_account   text        NOT NULL,
    marketplace_id   text        NOT NULL,
    amazon_order_id  text        NOT NULL,
    purchased_at     timestamptz NOT NULL,  -- from the notification: a v0 items-only snapshot needs it
    changed_at       timestamptz NOT NULL,  -- the latest notification's TimeOfOrderChange
    canceled         boolean     NOT NULL,  -- a notification said Canceled: who cancelled, and why?
    requested        boolean     NOT NULL,  -- a notification said the buyer asked to cancel: why?
    attempts         integer     NOT NULL DEFAULT 0,
    due_at           timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    PRIMARY KEY (seller_account, marketplace_id, amazon_order_id)
);

CREATE INDEX enrichment_requests_due ON enrichment_requests (seller_account, due_at);
