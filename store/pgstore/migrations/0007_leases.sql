-- Leases of the jobs that must run on one node at a time (leases.go):
-- the retention and inactivity sweeps, the evidence tree heads and the
-- receipts mailed after them. One row per job; holder is the node that
-- runs it until expires_at (the database's clock), renewed well before.
CREATE TABLE leases (
	name text PRIMARY KEY,
	holder text NOT NULL,
	acquired_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);
