-- The outbound queue (issue 17): one entry per message and destination
-- domain, until every recipient is delivered or failed. data is
-- store.QueueEntry's JSON; next_attempt, held and leased are kept in
-- columns only (what data says of them is ignored), so that leasing
-- and releasing write no JSON. A leased entry's next_attempt is its
-- lease's end: a node that dies mid-attempt leaves it due again then.
-- Each entry holds one reference on its body (blobs.refs).
CREATE SEQUENCE queue_ids;
CREATE TABLE queue (
	id bigint PRIMARY KEY,
	domain text NOT NULL,
	account bigint NOT NULL DEFAULT 0, -- the submitting subscriber (0: none)
	blob bigint NOT NULL REFERENCES blobs (id),
	created_at timestamptz NOT NULL,
	next_attempt timestamptz NOT NULL,
	held boolean NOT NULL DEFAULT false,
	leased boolean NOT NULL DEFAULT false,
	data jsonb NOT NULL
);
-- What the sender loops lease, oldest due first.
CREATE INDEX queue_due ON queue (next_attempt, id) WHERE NOT held;
-- Leases, for releasing the expired ones.
CREATE INDEX queue_leased ON queue (next_attempt, id) WHERE leased;
CREATE INDEX queue_held ON queue (id) WHERE held;
CREATE INDEX queue_domain ON queue (domain, id);
CREATE INDEX queue_account ON queue (account, id) WHERE account <> 0;

-- The number of entries, spread over 16 rows so that deliveries on
-- many nodes do not all wait on one row's lock; QueueStats sums them.
CREATE TABLE queue_count (
	slot smallint PRIMARY KEY,
	n bigint NOT NULL DEFAULT 0
);
INSERT INTO queue_count (slot) SELECT generate_series(0, 15);
