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
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory test-cluster

# The acceptance packages (the real binary driven by cmd/abox/aboxtest)
# again, each test against three `abox serve` nodes on one PostgreSQL
# database and SeaweedFS bucket instead of one node on its bbolt file
# (issue 18; aboxtest's cluster mode). Without the race detector, to
# keep its time in bounds; without PostgreSQL or weed its tests skip
# unless ABOX_REQUIRE_POSTGRES=1 / ABOX_REQUIRE_S3=1 (.ci/run sets both).
ACCEPTANCE := ./cmd/abox ./smtpd ./imapd
test-cluster:
	ABOX_TEST_CLUSTER=3 $(GO) test -count=1 -timeout 20m $(ACCEPTANCE)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 20000x ./store/

clean:
	rm -rf bin
