-- Broadcasts: data is store.Broadcast's JSON (its cursor, the last
-- account id done, advances in the same transaction as each batch's
-- deliveries). An unfinished broadcast holds one reference on its body.
CREATE SEQUENCE broadcast_ids;
CREATE TABLE broadcasts (
	id bigint PRIMARY KEY,
	source text NOT NULL,
	sender text NOT NULL,
	class text NOT NULL,
	blob bigint NOT NULL,
	done boolean NOT NULL DEFAULT false,
	data jsonb NOT NULL
);
-- A rerun of the same file finds its broadcast.
CREATE INDEX broadcasts_source ON broadcasts (source, sender, class, id);
