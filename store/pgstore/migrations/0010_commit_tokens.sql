-- A delivery's transaction inserts a random token here (commit.go).
-- When its COMMIT gets no answer, the node looks for the token on
-- another connection: present, the transaction committed; absent once
-- the transaction has ended, it did not. (The transaction id alone
-- cannot say: after a crash PostgreSQL can give an id that never
-- reached its WAL to a new transaction, whose outcome it would then
-- report.) Tokens matter for seconds; each node deletes those older
-- than ten minutes every minute.
CREATE TABLE commit_tokens (
	token bytea PRIMARY KEY,
	at timestamptz NOT NULL DEFAULT now()
);
