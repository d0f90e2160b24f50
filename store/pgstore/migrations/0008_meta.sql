-- Installation-wide facts that are no row of their own: what `abox
-- migrate` brings from another store (its creation time, the last
-- ledger sequence number handed out), keyed by name.
CREATE TABLE abox_meta (
	key text PRIMARY KEY,
	value jsonb NOT NULL
);
