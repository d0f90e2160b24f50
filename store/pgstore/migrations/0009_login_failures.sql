-- Failed-login counters shared by every node (policy/logins.go says
-- which counters a login touches and why; store/pgstore/logincount.go
-- how they are counted). One row per counter, named by the SHA-256 of
-- policy's key ("ip:ADDRESS", "acct:LOGIN", "pair:LOGIN|NETWORK"): a
-- fixed-size key however long the name a client typed, and no typed
-- name (perhaps a password typed as one) kept in clear. Times are Unix
-- nanoseconds, as the nodes' clocks give them (0: none).
--
-- A counter is a bucket of per_minute failures refilled over a minute
-- (tokens as of refilled_at), the failures in a row (streak, since
-- last_failure), and a lockout (locked_until). A pair's row also says
-- when the account last logged in from that network (last_success):
-- the known logins. keep_until is when the row stops mattering (its
-- last failure forgotten, its lockout over, its pair no longer known):
-- the sweep removes such rows in batches on login_counters_keep.
CREATE TABLE login_counters (
	key bytea PRIMARY KEY,
	tokens double precision NOT NULL,
	refilled_at bigint NOT NULL DEFAULT 0,
	streak integer NOT NULL DEFAULT 0,
	last_failure bigint NOT NULL DEFAULT 0,
	locked_until bigint NOT NULL DEFAULT 0,
	last_success bigint NOT NULL DEFAULT 0,
	keep_until bigint NOT NULL
);
CREATE INDEX login_counters_keep ON login_counters (keep_until);
