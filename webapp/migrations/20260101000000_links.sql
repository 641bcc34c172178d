-- One row per distinct target URL. The URL text itself is not indexed (a btree row
-- holds at most ~2.7 kB, less than a long URL); its SHA-256 carries the uniqueness.
CREATE TABLE links (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        TEXT        NOT NULL,
    url         TEXT        NOT NULL,
    url_hash    BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT links_code_key UNIQUE (code),
    CONSTRAINT links_url_hash_key UNIQUE (url_hash),
    CONSTRAINT links_code_shape CHECK (code ~ '^[0-9A-Za-z]{7}$'),
    CONSTRAINT links_url_hash_length CHECK (octet_length(url_hash) = 32)
);
