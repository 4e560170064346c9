# distlock: the commands the README and CI use.
GO      ?= go
PKGS    ?= ./...
BENCHTIME ?= 2s

.PHONY: test bench bench-peers bench-sql lint demo build

# The whole test suite, every package, under the race detector. CI runs this.
test: lint
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	cd bench && $(GO) test -race -count=1 ./...

# Go benchmarks with round trips per operation as a custom metric, then the
# side-by-side runners: Redis (nested module bench/: floor, distlock, redsync,
# bsm/redislock on one private redis-server), PostgreSQL and MariaDB (floor
# and both modes on one private server each).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)
	$(MAKE) bench-peers
	$(MAKE) bench-sql

# The side-by-side runners print Markdown tables. Contenders take turns in
# slices; a ratio is the median over the rounds. Longer runs:
# make bench-peers BENCH_SLICE=2s BENCH_ROUNDS=9
BENCH_SLICE  ?= 1s
BENCH_ROUNDS ?= 5
bench-peers:
	cd bench && DISTLOCK_BENCH=1 DISTLOCK_BENCH_SLICE=$(BENCH_SLICE) DISTLOCK_BENCH_ROUNDS=$(BENCH_ROUNDS) \
		$(GO) test -run '^TestSideBySide$$' -count=1 -v -timeout 30m .

# One package at a time (-p 1): two runners at once would measure each other.
bench-sql:
	DISTLOCK_BENCH=1 DISTLOCK_BENCH_SLICE=$(BENCH_SLICE) DISTLOCK_BENCH_ROUNDS=$(BENCH_ROUNDS) \
		$(GO) test -p 1 -run '^TestSideBySide$$' -count=1 -v -timeout 30m ./pglock ./mysqllock

# go vet, plus gofmt as a check (no file is rewritten).
lint:
	$(GO) vet $(PKGS)
	cd bench && $(GO) vet ./...
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# The main job on the embedded default store (SQLite, no server).
demo:
	$(GO) run ./cmd/distlock run demo -- sh -c 'echo "holding $$DISTLOCK_KEY with fence $$DISTLOCK_FENCE"'

build:
	$(GO) build -o bin/distlock ./cmd/distlock
