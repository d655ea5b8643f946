-- Per-order facts, hourly CR buckets, and the consumer offsets they were computed up to.
-- All three change in one transaction per batch: that is what makes the metrics service exactly-once.

CREATE TABLE orders (
    seller_account      text        NOT NULL,
    marketplace_id      text        NOT NULL,
    amazon_order_id     text        NOT NULL,
    state               jsonb       NOT NULL,  -- the domain Order (metrics/state_codec.py)
    status              text,
    fulfillment_channel text,
    purchased_at        timestamptz,
    verdict             text        NOT NULL,  -- attribution.Verdict
    rule                text        NOT NULL,  -- attribution.Rule
    needs_review        boolean     NOT NULL DEFAULT false,
    open_request        text,                  -- FORMAL / INFORMAL while a request is open, else NULL
    request_at          timestamptz,
    -- the hour buckets this order is counted in (NULL: not counted there); kept so that a change of
    -- the order moves exactly one count out of the old bucket and into the new one
    denominator_bucket  timestamptz,
    numerator_bucket    timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (seller_account, marketplace_id, amazon_order_id)
);

CREATE INDEX orders_open_requests
    ON orders (seller_account, marketplace_id, request_at, amazon_order_id)
    WHERE open_request IS NOT NULL;

-- roll-off: the counted cancellations of a window
CREATE INDEX orders_counted
    ON orders (seller_account, marketplace_id, numerator_bucket)
    WHERE numerator_bucket IS NOT NULL;

-- suppression risk: the orders of the last 30 days
CREATE INDEX orders_purchased ON orders (seller_account, marketplace_id, purchased_at);

CREATE TABLE cr_buckets (
    seller_account  text        NOT NULL,
    marketplace_id  text        NOT NULL,
    bucket_start    timestamptz NOT NULL,  -- hour-aligned UTC
    orders          integer     NOT NULL DEFAULT 0,  -- denominator
    cancellations   integer     NOT NULL DEFAULT 0,  -- numerator
    -- no CHECK (orders >= 0): Postgres checks the row proposed by INSERT .. ON CONFLICT before it sees
    -- the conflict, and a bucket delta of -1 is proposed whenever an order moves out of a bucket
    PRIMARY KEY (seller_account, marketplace_id, bucket_start)
);

CREATE TABLE consumer_offsets (
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    next_offset     bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
