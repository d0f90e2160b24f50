-- abox distributed store, the core: the directory, accounts and their
-- usage, mailboxes, messages, bodies, expunged UIDs and the audit log.
-- Later migrations add the outbound queue, the evidence log, the
-- ledger, broadcasts and the node leases.

-- The directory. Values are the JSON of the accounts package's types,
-- as the embedded store keeps them.
CREATE TABLE domains (
	name text PRIMARY KEY,
	data jsonb NOT NULL
);
CREATE TABLE classes (
	name text PRIMARY KEY,
	data jsonb NOT NULL
);
CREATE TABLE senders (
	name text PRIMARY KEY,
	data jsonb NOT NULL
);
-- A counter every directory change (domains, classes, senders, DKIM
-- keys) raises, so that each node knows when to reload its caches.
CREATE TABLE directory_generation (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	gen bigint NOT NULL
);
INSERT INTO directory_generation VALUES (true, 1);

-- Accounts. data is accounts.Account's JSON; the columns beside it are
-- what is looked up or listed by. A purged account keeps its row (a
-- tombstone) with purged = true; its address is free for a new account,
-- which makes the tombstone's row drop (or, when its content is sealed
-- for a legal hold, only lose the address: address_held = false).
CREATE SEQUENCE account_ids;
CREATE TABLE accounts (
	id bigint PRIMARY KEY,
	login text NOT NULL,
	domain text NOT NULL,
	state text NOT NULL,
	class text NOT NULL,
	last_use_at timestamptz NOT NULL,
	iin text,               -- the consent certificate's subject serial, when bound
	address_held boolean NOT NULL DEFAULT true,
	data jsonb NOT NULL
);
CREATE UNIQUE INDEX accounts_address ON accounts (domain, login) WHERE address_held;
CREATE INDEX accounts_state ON accounts (state, id);
CREATE INDEX accounts_last_use ON accounts (last_use_at, id) WHERE state <> 'purged';
CREATE INDEX accounts_class ON accounts (class);
CREATE INDEX accounts_iin ON accounts (iin) WHERE iin IS NOT NULL;

-- Exact usage, changed in the same transaction as the messages it
-- counts. day is days since the epoch (UTC) that received and sent
-- count.
CREATE TABLE usage (
	account bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	bytes bigint NOT NULL DEFAULT 0,
	messages bigint NOT NULL DEFAULT 0,
	day integer NOT NULL DEFAULT 0,
	received bigint NOT NULL DEFAULT 0,
	sent bigint NOT NULL DEFAULT 0
);

-- UIDVALIDITY values come from one sequence seeded with the creation
-- time, so a mailbox created again under an old name gets a new value.
CREATE SEQUENCE uidvalidity MAXVALUE 4294967295 CYCLE;
SELECT setval('uidvalidity', extract(epoch FROM now())::bigint);

-- Mailboxes. uid_next and highest_modseq are allocated under the row's
-- lock, so UIDs have no gaps and no duplicates whichever node delivers.
CREATE TABLE mailboxes (
	account bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	id integer NOT NULL,
	name text NOT NULL,
	special_use text NOT NULL DEFAULT '',
	uid_validity bigint NOT NULL,
	uid_next bigint NOT NULL DEFAULT 1,
	messages integer NOT NULL DEFAULT 0,
	size bigint NOT NULL DEFAULT 0,
	unseen integer NOT NULL DEFAULT 0,
	highest_modseq bigint NOT NULL DEFAULT 1,
	subscribed boolean NOT NULL DEFAULT false,
	deleting boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL,
	recent_uid bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (account, id)
);
CREATE UNIQUE INDEX mailboxes_name ON mailboxes (account, name) WHERE NOT deleting;
-- The next mailbox id of each account.
CREATE TABLE mailbox_ids (
	account bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	next integer NOT NULL DEFAULT 1
);

-- Bodies. A body up to the inline limit is kept in body; a larger one
-- is an object in the object store under object (its SHA-256 and a
-- random suffix: a key is never reused, so deleting one can never
-- remove a body another row still names). sha256 is set for shareable
-- bodies (APPEND, import, broadcast), which the next identical copy
-- shares through blobs_sha; refs counts the messages (and queue
-- entries) that hold the body.
CREATE SEQUENCE blob_ids;
CREATE TABLE blobs (
	id bigint PRIMARY KEY,
	sha256 bytea,
	size bigint NOT NULL,
	structure bytea NOT NULL,
	body bytea,
	object text,
	refs integer NOT NULL DEFAULT 0,
	created_at timestamptz NOT NULL DEFAULT now(),
	CHECK ((body IS NULL) <> (object IS NULL))
);
CREATE UNIQUE INDEX blobs_sha ON blobs (sha256) WHERE sha256 IS NOT NULL;
-- Objects whose row is gone, to delete from the object store after the
-- commit (a crash in between leaves them here for the next sweep).
CREATE TABLE blob_trash (
	object text PRIMARY KEY,
	at timestamptz NOT NULL DEFAULT now()
);

-- Messages. flags holds the system flags and keywords as IMAP spells
-- them.
CREATE TABLE messages (
	account bigint NOT NULL,
	mailbox integer NOT NULL,
	uid bigint NOT NULL,
	modseq bigint NOT NULL,
	flags text[] NOT NULL DEFAULT '{}',
	seen boolean NOT NULL DEFAULT false,
	internal_date timestamptz NOT NULL,
	added_at timestamptz NOT NULL,
	size bigint NOT NULL,
	blob bigint NOT NULL REFERENCES blobs (id),
	PRIMARY KEY (account, mailbox, uid),
	FOREIGN KEY (account, mailbox) REFERENCES mailboxes (account, id) ON DELETE CASCADE
);
CREATE INDEX messages_modseq ON messages (account, mailbox, modseq);
CREATE INDEX messages_added ON messages (account, mailbox, added_at);
CREATE INDEX messages_blob ON messages (blob);

-- UIDs expunged, each at a MODSEQ of its own (QRESYNC's VANISHED).
CREATE TABLE vanished (
	account bigint NOT NULL,
	mailbox integer NOT NULL,
	uid bigint NOT NULL,
	modseq bigint NOT NULL,
	at timestamptz NOT NULL,
	PRIMARY KEY (account, mailbox, uid),
	FOREIGN KEY (account, mailbox) REFERENCES mailboxes (account, id) ON DELETE CASCADE
);
CREATE INDEX vanished_modseq ON vanished (account, mailbox, modseq);
CREATE INDEX vanished_at ON vanished (at);

-- The audit log, append only.
CREATE SEQUENCE audit_seq;
CREATE TABLE audit (
	seq bigint PRIMARY KEY,
	at timestamptz NOT NULL,
	account text NOT NULL DEFAULT '',
	account_id bigint NOT NULL DEFAULT 0,
	data jsonb NOT NULL
);
CREATE INDEX audit_account ON audit (account, seq) WHERE account <> '';
CREATE INDEX audit_at ON audit (at);
CREATE UNIQUE INDEX blobs_object ON blobs (object) WHERE object IS NOT NULL;
