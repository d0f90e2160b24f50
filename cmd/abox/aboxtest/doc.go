// Package aboxtest is the test harness of the abox binary: the
// integration tests of smtpd, imapd and cmd/abox run the real binary
// through it (CONVENTIONS.md, Tests).
//
// It owns building the binary once per test binary (with -race when the
// test binary has it, for `abox serve` and the commands that run
// goroutines of their own; the other one-shot commands then run a build
// without it: CLIBin), the environment every run gets, running CLI
// commands against a temporary data directory with the CLI's contracts
// (exit codes, one line on stderr), starting `abox serve` with every
// listener on a port the kernel picks and stopping it (SIGTERM and exit
// 0 within a bound, or SIGKILL), capturing the server's log, and the
// checks at the cleanup of every test that started a server: no internal
// error in any server's log (logcheck.go) and `abox check` clean on the
// data directory (through the control socket of the server the test left
// running: the harness speaks that one operation of its line protocol).
//
// Protocol clients (raw SMTP, raw IMAP, ...) stay in the packages that
// test the protocol, built on this.
//
// Every Env's configuration starts with a cheap argon2id cost
// (config.go): the login path is the same, and at the production cost
// each password check took 280 ms under the race detector, on thousands
// of logins. Env.ProductionHashing keeps the default (smtpd's
// TestPasswordChecksBounded needs checks that last).
//
// The cluster mode (cluster.go): with ABOX_TEST_CLUSTER=3 every Env
// runs on a fresh PostgreSQL database and SeaweedFS bucket
// (store/pgstore/pgtest) and Start starts three nodes on it, each in its
// own data directory; Addr and Addrs hand out the nodes' listeners in
// rotation and the CLI runs rotate over the nodes' data directories, so
// a test's steps land on different nodes. The log checks apply to each
// node; `abox check` (bbolt's) does not apply. `make test-cluster` runs
// the acceptance packages (cmd/abox, smtpd, imapd) so. A test about what
// only the embedded store or one process has skips there through
// SkipInCluster, with its reason:
//
//   - cmd/abox TestBackupCheck: abox backup and abox check work on the
//     bbolt file (PostgreSQL: pg_dump, amcheck).
//   - cmd/abox TestRestore: abox restore of a bbolt backup file.
//   - cmd/abox TestDamagedLogIsLoud: a damaged write-ahead log beside
//     the bbolt file.
//   - cmd/abox TestDiskFull: a full disk under the bbolt file, its
//     write-ahead log and reserve-space.
//   - cmd/abox TestStandardPortsAsUnprivilegedUser: one process on the
//     fixed standard ports, which three nodes cannot share.
//   - cmd/abox TestMigrate: moves a bbolt installation into PostgreSQL
//     and back (its own source and target).
//   - cmd/abox TestPostgresConfig: refusals of a configuration naming no
//     store or an unreachable one, where the cluster's name theirs.
//   - cmd/abox TestOutboundSurvivesKill: kill -9 of the only process,
//     whose next start releases its attempts at once; a killed node's
//     attempts wait for their leases to expire instead.
//   - imapd TestMbsyncFirstSyncStandardClass: fills 10,000 letters
//     through the store first, minutes on PostgreSQL.
//
// cmd/abox's tests that start their own nodes on PostgreSQL
// (TestPostgres*, TestObjectStoreOutage) do the same in either mode:
// `make test` runs them once, in test-cluster, without the race detector
// (its race run skips them; the store's own tests run under it).
//
// And parts of tests: the tampered copies of the bbolt file in
// TestEvidenceEndToEnd and TestOfficialLetter, and `abox check` between
// the steps of the official-letter and broadcast tests. cmd/abox's own
// cluster tests (postgres_test.go) make their own cluster and run one
// node per data directory as before.
//
// aboxtest must never be imported by production code (a test in
// cmd/abox keeps it so), and it imports nothing of abox but pgtest (the
// private servers of the cluster mode): it drives the binary from
// outside, as an operator and a client would.
package aboxtest
