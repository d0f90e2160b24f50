# abox — the two commands a newcomer needs are `make run` and `make test`.
GO ?= go
BIN := bin/abox
DATA ?= ./abox-data

.PHONY: build run test vet fmt bench clean

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/abox

# Builds and starts a server on the embedded default: a bbolt file in
# ./abox-data, listeners on 127.0.0.1 (see README.md).
run: build
	./$(BIN) serve --data $(DATA)

# Every test: formatting, vet, then the whole suite with the race detector.
# go test's own summary is the last thing printed.
test:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 20000x ./store/

clean:
	rm -rf bin
