# sendworker — everyday commands. `make test` is the suite CI runs.
GO ?= go

.PHONY: all build test vet fmt demo fuzz-corpus clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

# The whole test suite, with the race detector. Tests start their own
# throwaway redis-server (apt-get install -y redis-server) and simulator.
test:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 45m ./...

# The one-command demo: in-process Redis + the provider simulator. Nothing real is sent.
demo:
	$(GO) run ./cmd/sendworker -dev

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# Run every fuzz target for FUZZTIME seconds and keep the interesting inputs
# under testdata/fuzz/ (replayed by every `make test`).
FUZZTIME ?= 20
fuzz-corpus:
	scripts/fuzz-corpus.sh $(FUZZTIME)
