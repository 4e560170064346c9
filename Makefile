# distlock: the commands the README and CI use.
GO      ?= go
PKGS    ?= ./...
BENCHTIME ?= 2s

.PHONY: test bench lint demo build

# The whole test suite, every package, under the race detector. CI runs this.
test: lint
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Go benchmarks with round trips per operation as a custom metric.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

# go vet, plus gofmt as a check (no file is rewritten).
lint:
	$(GO) vet $(PKGS)
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# The main job on the embedded default store (SQLite, no server).
demo:
	$(GO) run ./cmd/distlock run demo -- sh -c 'echo "holding $$DISTLOCK_KEY with fence $$DISTLOCK_FENCE"'

build:
	$(GO) build -o bin/distlock ./cmd/distlock
