-- abox distributed store, the directory beyond domains and accounts:
-- DKIM keys, the provisioning API's tokens and idempotent answers, the
-- login history and the signed consents' CMS objects.

-- An account is always on a hosted domain: the key makes RemoveDomain
-- and a CreateAccount racing it on another node meet on the domain's
-- row (CreateAccount's insert takes a key-share lock on it), so no
-- account is ever left on a domain no longer hosted. accounts_domain
-- (every row, tombstones without their address included) is what the
-- key's check on a domain's removal reads.
CREATE INDEX accounts_domain ON accounts (domain);
ALTER TABLE accounts ADD CONSTRAINT accounts_domain_hosted FOREIGN KEY (domain) REFERENCES domains (name);

-- Purged tombstones whose content is still sealed (or whose purge was
-- interrupted before the content went): what DestroySealed walks,
-- never the whole purged population.
CREATE INDEX accounts_sealed ON accounts (id) WHERE state = 'purged' AND data ? 'sealed_until';

-- DKIM keys (RFC 6376), store.DKIMKey's JSON; they go with their
-- domain.
CREATE TABLE dkim_keys (
	domain text NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
	selector text NOT NULL,
	data jsonb NOT NULL,
	PRIMARY KEY (domain, selector)
);

-- The provisioning API's tokens: the SHA-256 of the secret, never the
-- secret; data is store.APIToken's JSON.
CREATE TABLE api_tokens (
	hash bytea PRIMARY KEY,
	name text NOT NULL UNIQUE,
	data jsonb NOT NULL
);

-- Answers given under an Idempotency-Key (store.IdempotentResult's
-- JSON), per token name; they go with their token.
CREATE TABLE api_idempotent (
	token text NOT NULL,
	key text NOT NULL,
	at timestamptz NOT NULL,
	data jsonb NOT NULL,
	PRIMARY KEY (token, key)
);
CREATE INDEX api_idempotent_at ON api_idempotent (at);

-- Login history (store.LoginRecord's JSON). at is the record's time in
-- Unix nanoseconds, moved on by one when an account has two records at
-- the same nanosecond. No foreign key: recording a login never waits
-- for a transaction holding the account's row.
CREATE TABLE logins (
	account bigint NOT NULL,
	at bigint NOT NULL,
	data jsonb NOT NULL,
	PRIMARY KEY (account, at)
);
CREATE INDEX logins_at ON logins (at);

-- The signed CMS object of every consent an account gave, under the
-- consent's RecordedAt in Unix nanoseconds; kept after a purge while
-- the content is sealed, destroyed with it.
CREATE TABLE consent_cms (
	account bigint NOT NULL,
	recorded bigint NOT NULL,
	cms bytea NOT NULL,
	PRIMARY KEY (account, recorded)
);
