-- 通报: the bulletin of each closed month and quarter, generated once at the period's end by
-- whichever replica fires its timer (the key makes a second attempt — another replica, a
-- restart, a timer fired again — a no-op) and kept as the documents departments download.
CREATE TABLE bulletins (
    period_kind  text        NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    title        text        NOT NULL,
    event_id     text        NOT NULL,
    published_at timestamptz NOT NULL,
    body         jsonb       NOT NULL,
    csv          text        NOT NULL,
    html         text        NOT NULL,
    PRIMARY KEY (period_kind, period_start)
);
