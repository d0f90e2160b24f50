# abox — the two commands a newcomer needs are `make run` and `make test`.
GO ?= go
BIN := bin/abox
DATA ?= ./abox-data

.PHONY: build run test test-cluster vet fmt bench clean

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/abox

# Builds and starts a server on the embedded default: a bbolt file in
# ./abox-data, listeners on 127.0.0.1 (see README.md).
run: build
	./$(BIN) serve --data $(DATA)

# Every test: formatting, vet, the whole suite with the race detector,
# then the acceptance against a three-node cluster (test-cluster). go
# test's own summary is the last thing printed.
test:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m -skip '$(OWN_NODES)' ./...
	$(MAKE) --no-print-directory test-cluster

# cmd/abox's tests that start their own abox nodes on PostgreSQL (the
# cluster tests, the fault tests, the shared login limits) do the same
# with or without the cluster mode: the race run skips them and
# test-cluster runs them once, without the race detector (with it, they
# were the longest part of the suite; the store's own PostgreSQL tests
# run under it).
OWN_NODES := ^(TestPostgres(Cluster|Leases|NodeKill|Outage|IdleKill|OutageLeases|WatchdogOutage|LoginLockout|SharedLoginRules)|TestObjectStoreOutage)$$

# The acceptance packages (the real binary driven by cmd/abox/aboxtest)
# again, each test against three `abox serve` nodes on one PostgreSQL
# database and SeaweedFS bucket instead of one node on its bbolt file
# (issue 18; aboxtest's cluster mode), and the OWN_NODES tests, which
# ignore that mode. Without the race detector, to keep its time in
# bounds; without PostgreSQL or weed its tests skip unless
# ABOX_REQUIRE_POSTGRES=1 / ABOX_REQUIRE_S3=1 (.ci/run sets both).
ACCEPTANCE := ./cmd/abox ./smtpd ./imapd
test-cluster:
	ABOX_TEST_CLUSTER=3 $(GO) test -count=1 -timeout 20m $(ACCEPTANCE)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 20000x ./store/

clean:
	rm -rf bin
