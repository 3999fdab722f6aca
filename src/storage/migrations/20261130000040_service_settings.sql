-- Values every replica of the service shares, by name: the page token
-- signing key ('page_token_key', 32 random bytes written by the first
-- replica that needs it). Not customer data: under Citus a reference table.
CREATE TABLE service_settings (
    name       text        NOT NULL PRIMARY KEY,
    value      bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
