package aboxtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"abox/store/pgstore/pgtest"
)

// The cluster mode of the harness (issue 18: the same acceptance
// passes against a three-node cluster as against one bbolt node). With
// ABOX_TEST_CLUSTER=N (N >= 2) every Env gets a fresh PostgreSQL
// database and SeaweedFS bucket (store/pgstore/pgtest), named in the
// configuration every run and server reads, and Start starts N
// `abox serve` nodes on it, each in its own data directory (DIR,
// DIR.node2, ...: its own control socket and TLS pair, the same
// configuration). The Server it returns hands out the nodes' addresses
// in rotation, so a test's consecutive connections land on different
// nodes, and stops, kills and signals them all; CLI runs rotate over
// the nodes' data directories too (each through its node's control
// socket while it runs, or straight to the database). Without the
// variable nothing changes.

// ClusterEnv is the variable that turns the cluster mode on.
const ClusterEnv = "ABOX_TEST_CLUSTER"

// ClusterNodes is the number of nodes of the cluster mode, or 0 when
// the tests run on one bbolt node.
func ClusterNodes() int {
	n, err := strconv.Atoi(os.Getenv(ClusterEnv))
	if err != nil || n < 2 {
		return 0
	}
	return n
}

// InCluster reports whether the tests run in the cluster mode.
func InCluster() bool { return ClusterNodes() > 0 }

// SkipInCluster skips a test in the cluster mode: it is about what only
// the embedded bbolt store has (its file, backup, check, the
// write-ahead log) or about one process; reason says which, in one line.
// doc.go lists every such test.
func SkipInCluster(t testing.TB, reason string) {
	t.Helper()
	if InCluster() {
		t.Skipf("not in the cluster mode (%s=%s): %s", ClusterEnv, os.Getenv(ClusterEnv), reason)
	}
}

// SharedStore names the store of an Env in the cluster mode, for a
// test that reads it directly (store/pgstore.Open) where on bbolt it
// opens the file or a backup.
type SharedStore struct {
	DSN             string // PostgreSQL connection string
	ObjectEndpoint  string // the S3 gateway's URL
	ObjectBucket    string
	ObjectAccessKey string
	ObjectSecretKey string
	InlineMax       int // largest body kept in PostgreSQL
}

// SharedStore returns the store of the cluster mode, or nil on bbolt.
func (e *Env) SharedStore() *SharedStore {
	if e.cluster == nil {
		return nil
	}
	s := e.cluster.store
	return &s
}

// cluster is an Env's shared store in the cluster mode.
type cluster struct {
	nodes int
	lines string // the keys naming the store, first in every configuration
	store SharedStore

	next atomic.Uint32 // rotation of CLI runs over the nodes' data directories
}

// newCluster makes the database and bucket of one Env.
func newCluster(t testing.TB, nodes int) *cluster {
	t.Helper()
	// Without PostgreSQL or weed the test skips, or fails when
	// ABOX_REQUIRE_POSTGRES=1 / ABOX_REQUIRE_S3=1 (pgtest).
	w := pgtest.ObjectServer(t)
	dsn := clusterDatabase(t)
	secret := filepath.Join(t.TempDir(), "s3-secret")
	if err := os.WriteFile(secret, []byte(w.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := SharedStore{DSN: dsn, ObjectEndpoint: w.Endpoint(), ObjectBucket: w.NewBucket(),
		ObjectAccessKey: w.AccessKey, ObjectSecretKey: w.SecretKey, InlineMax: 64}
	lines := []string{
		"# aboxtest's cluster mode (" + ClusterEnv + "): the shared store",
		"store = " + strconv.Quote(dsn),
		"object-store-endpoint = " + strconv.Quote(st.ObjectEndpoint),
		"object-store-bucket = " + strconv.Quote(st.ObjectBucket),
		"object-store-access-key = " + strconv.Quote(st.ObjectAccessKey),
		"object-store-secret-key-file = " + strconv.Quote(secret),
		"object-store-create-bucket = true",
		// Test letters are small: most then go to the object store too.
		`object-store-inline-max = "64B"`,
	}
	return &cluster{nodes: nodes, lines: strings.Join(lines, "\n") + "\n", store: st}
}

// The migrated template every cluster database is copied from: the
// schema's migrations run once per test binary, not once per test.
var migrated struct {
	once sync.Once
	name string
	err  error
}

// clusterDatabase creates a database for one Env, a copy of the
// migrated template, and drops it at the test's cleanup.
func clusterDatabase(t testing.TB) string {
	t.Helper()
	pg := pgtest.Server(t)
	ctx := context.Background()
	exec := func(sql string) error {
		c, err := pgx.Connect(ctx, pg.DSN("postgres"))
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, sql)
		return err
	}
	migrated.once.Do(func() {
		name := fmt.Sprintf("abox_template_%d", os.Getpid())
		if migrated.err = exec("CREATE DATABASE " + name + " TEMPLATE template0"); migrated.err != nil {
			return
		}
		// Any command opening the store migrates it.
		dir, err := os.MkdirTemp("", "aboxtest-template-")
		if err != nil {
			migrated.err = err
			return
		}
		defer os.RemoveAll(dir)
		cmd := osexec.Command(CLIBin(t), "--data", dir, "--store", pg.DSN(name), "domain", "list")
		cmd.Env = Environ()
		if out, err := cmd.CombinedOutput(); err != nil {
			migrated.err = fmt.Errorf("migrating the template database: %v\n%s", err, out)
			return
		}
		migrated.name = name
	})
	if migrated.err != nil {
		t.Fatalf("the cluster mode's template database: %v", migrated.err)
	}
	name := fmt.Sprintf("abox_c%d_%d", os.Getpid(), dbSeq.Add(1))
	if err := exec("CREATE DATABASE " + name + " TEMPLATE " + migrated.name); err != nil {
		t.Fatalf("creating the cluster's database: %v", err)
	}
	t.Cleanup(func() { exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	return pg.DSN(name)
}

var dbSeq atomic.Int64

// nodeDir is the data directory of node i (0-based) of a cluster whose
// first node's is dir.
func nodeDir(dir string, i int) string {
	if i == 0 {
		return dir
	}
	return dir + ".node" + strconv.Itoa(i+1)
}

// storeKey finds a configuration that names its store already (a test
// that makes its own cluster).
var storeKey = regexp.MustCompile(`(?m)^[ \t]*store[ \t]*=`)

// cliDir is the data directory of the next CLI run: the nodes' in
// rotation in the cluster mode.
func (e *Env) cliDir(cluster bool) string {
	if !cluster {
		return e.Dir
	}
	i := int(e.cluster.next.Add(1)-1) % e.cluster.nodes
	return nodeDir(e.Dir, i)
}

// startCluster starts every node, at once, and returns the Server of
// them all once each is ready; when one fails the others are killed.
func (e *Env) startCluster() (*Server, error) {
	e.t.Helper()
	n := e.cluster.nodes
	nodes := make([]*Server, n)
	errs := make([]error, n)
	all := newLog()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = e.startNode(nodeDir(e.Dir, i), &linesTo{to: all})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, s := range nodes {
				if s != nil {
					s.Kill()
				}
			}
			return nil, fmt.Errorf("node %d of %d (%s): %w", i+1, n, nodeDir(e.Dir, i), err)
		}
	}
	s := &Server{Log: all, env: e, nodes: nodes, exited: make(chan struct{})}
	for _, node := range nodes {
		e.started(node)
	}
	return s, nil
}

// linesTo copies whole lines of one node's output into the log of the
// cluster, so that two nodes' lines never interleave within a line.
type linesTo struct {
	to      *Log
	mu      sync.Mutex
	partial []byte
}

func (l *linesTo) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	if i := bytes.LastIndexByte(l.partial, '\n'); i >= 0 {
		l.to.Write(l.partial[:i+1])
		l.partial = append(l.partial[:0], l.partial[i+1:]...)
	}
	return len(p), nil
}

// nodeAddrs is the rotation of Addr and Addrs over a cluster's nodes.
func (s *Server) nextNode() *Server {
	return s.nodes[int(s.rot.Add(1)-1)%len(s.nodes)]
}

// Dir is the data directory the server runs on (a node's own in the
// cluster mode: its TLS pair, its control socket).
func (s *Server) Dir() string {
	if s.nodes != nil {
		return s.nodes[0].dir
	}
	return s.dir
}

// NodeOf returns the node whose listener has address addr, or s when
// none has (a single server).
func (s *Server) NodeOf(addr string) *Server {
	for _, n := range s.nodes {
		for _, a := range n.addrs {
			if a == addr {
				return n
			}
		}
	}
	return s
}

// Nodes returns the servers of the cluster's nodes (Start in the
// cluster mode), or s alone.
func (s *Server) Nodes() []*Server {
	if s.nodes == nil {
		return []*Server{s}
	}
	return append([]*Server(nil), s.nodes...)
}
