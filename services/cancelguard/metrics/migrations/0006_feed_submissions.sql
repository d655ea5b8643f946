-- Cancel feeds the API submits to Amazon's Feeds API for a decision (DecideCancellation submit_feed).
-- A row is written in the decision's own transaction, so a recorded decision never loses its feed; the
-- API's submitter takes due rows by pushing `next_at` past a lease (no transaction held across calls
-- to Amazon), so replicas never work on one row at once, and a row whose replica died is taken again
-- when its lease runs out.
CREATE TABLE feed_submissions (
    event_id          text        PRIMARY KEY,  -- the decision's order event
    seller_account    text        NOT NULL,
    marketplace_id    text        NOT NULL,
    amazon_order_id   text        NOT NULL,
    document          bytea       NOT NULL,     -- the POST_ORDER_ACKNOWLEDGEMENT_DATA feed
    state             text        NOT NULL DEFAULT 'PENDING'
                                  CHECK (state IN ('PENDING', 'SUBMITTED', 'DONE', 'FAILED')),
    feed_id           text,
    processing_status text,
    report            jsonb,                    -- the processing report's summary and results (DONE)
    error             text,
    attempts          integer     NOT NULL DEFAULT 0,
    next_at           timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feed_submissions_due ON feed_submissions (next_at) WHERE state IN ('PENDING', 'SUBMITTED');
CREATE INDEX feed_submissions_created ON feed_submissions (created_at);
