# distlock: the commands the README and CI use.
GO      ?= go
PKGS    ?= ./...
BENCHTIME ?= 2s

.PHONY: test bench bench-peers lint demo build

# The whole test suite, every package, under the race detector. CI runs this.
test: lint
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	cd bench && $(GO) test -race -count=1 ./...

# Go benchmarks with round trips per operation as a custom metric, then the
# side-by-side Redis runner (nested module bench/: floor, distlock, redsync,
# bsm/redislock on one private redis-server).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)
	$(MAKE) bench-peers

# The side-by-side Redis runner alone; prints Markdown tables. Longer runs:
# make bench-peers BENCH_SLICE=3s BENCH_ROUNDS=5
BENCH_SLICE  ?= 1s
BENCH_ROUNDS ?= 3
bench-peers:
	cd bench && DISTLOCK_BENCH=1 DISTLOCK_BENCH_SLICE=$(BENCH_SLICE) DISTLOCK_BENCH_ROUNDS=$(BENCH_ROUNDS) \
		$(GO) test -run '^TestSideBySide$$' -count=1 -v -timeout 30m .

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
