-- The evidence log of official letters (docs/EVIDENCE.md), its Merkle
-- tree and signed heads, the records of official copies and first
-- reads, and the notice ledger of older installations.

-- Events committed by a delivery, retrieval or expunge, not yet given
-- their place in the log. Many nodes write here concurrently; the
-- builder (evidence_build.go, one at a time under an advisory lock)
-- moves them into evidence in seq order. entry is the event's JSON as
-- the embedded store encodes it, with "index":0 (the builder writes the
-- position in).
CREATE SEQUENCE evidence_seq;
CREATE TABLE evidence_pending (
	seq bigint PRIMARY KEY,
	message_id text NOT NULL,
	sender text NOT NULL,
	account bigint NOT NULL,
	entry bytea NOT NULL
);
CREATE INDEX evidence_pending_msg ON evidence_pending (message_id);
CREATE INDEX evidence_pending_acct ON evidence_pending (account) WHERE account <> 0;
-- A queue: every row is deleted soon after it is written, so vacuum it
-- by the number of dead rows, not by a fraction of a table that is
-- mostly empty.
ALTER TABLE evidence_pending SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);

-- The log: append only, positions 0..n-1 without gaps. entry is the
-- Merkle leaf's bytes (never re-encoded), leaf its hash
-- (SHA-256(0x00 || entry)).
CREATE TABLE evidence (
	position bigint PRIMARY KEY,
	message_id text NOT NULL,
	sender text NOT NULL,
	account bigint NOT NULL,
	entry bytea NOT NULL,
	leaf bytea NOT NULL
);
CREATE INDEX evidence_msg ON evidence (message_id, position);
CREATE INDEX evidence_acct ON evidence (account, position) WHERE account <> 0;

-- The tree's perfect subtrees of 64 leaves and more (RFC 9162 §2.1:
-- the node over leaves idx·2^level .. (idx+1)·2^level-1) under
-- key = level·2^56 + idx, one integer so that a proof's nodes are one
-- cheaply planned `key = ANY(...)`; those below level 6 are computed
-- from the leaves when a proof needs them.
CREATE TABLE evidence_tree (
	key bigint PRIMARY KEY,
	hash bytea NOT NULL
);

-- Signed tree heads (evidence.SignedHead's JSON).
CREATE TABLE evidence_heads (
	tree_size bigint NOT NULL,
	ts bigint NOT NULL,
	data jsonb NOT NULL,
	PRIMARY KEY (tree_size, ts)
);

-- built: how many entries the log holds; receipts_mailed: the log size
-- up to which receipts were mailed (NULL: never); ledger_head: the
-- notice ledger's last hash.
CREATE TABLE evidence_state (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	built bigint NOT NULL DEFAULT 0,
	receipts_mailed bigint,
	ledger_head text NOT NULL DEFAULT ''
);
INSERT INTO evidence_state (one) VALUES (true);

-- One account's copies of one official letter (they share a blob), so
-- that deleting the last one is recorded; retrieved says its first
-- retrieval is in the log.
CREATE TABLE official_copies (
	account bigint NOT NULL,
	blob bigint NOT NULL,
	count integer NOT NULL,
	message_id text NOT NULL,
	sender text NOT NULL,
	recipient text NOT NULL,
	sha256 text NOT NULL DEFAULT '',
	retrieved boolean NOT NULL DEFAULT false,
	PRIMARY KEY (account, blob)
);

-- First reads under user agreement 2.4, one per letter and recipient.
CREATE TABLE ledger_reads (
	sender text NOT NULL,
	message_id text NOT NULL,
	recipient text NOT NULL,
	at timestamptz NOT NULL,
	PRIMARY KEY (sender, message_id, recipient)
);

-- The notice ledger of installations from before the evidence log
-- (moved here by abox migrate; never written otherwise): store.LedgerEntry's
-- JSON in a hash chain.
CREATE TABLE ledger (
	seq bigint PRIMARY KEY,
	message_id text NOT NULL,
	data jsonb NOT NULL
);
CREATE INDEX ledger_msg ON ledger (message_id, seq);
