# Hookstream. `make run` and `make test` work on a fresh Debian/Ubuntu machine
# with Go: they install what they need.
GO        ?= go
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: run test bench lint deps build

build:
	$(GO) build -o bin/hookstream ./cmd/hookstream

# The whole pipeline in one process on embedded Kafka and Redis, with a demo
# receiver printing every verified webhook. Ctrl-C to stop. The binary is
# built, then exec'd rather than `go run`, which exits 1 on Ctrl-C and makes
# make report an error after a clean shutdown.
run: build
	exec ./bin/hookstream dev --demo

# Integration tests need a real redis-server; the signature interop tests and
# the events page's snippets run under Node, Python and PHP; pages are tested
# in headless Chromium.
deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v php >/dev/null || missing="$$missing php-cli"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v python3 >/dev/null || missing="$$missing python3"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The race detector is on: the deliverer's lanes, pools and group callbacks
# share state across goroutines. deploy/ is its own module (its Kubernetes
# and compose libraries stay out of the library's go.mod).
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./envelope/ ./schemas/ ./signature/ ./producer/ ./subscription/ ./fanout/
	$(GO) run ./bench

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	cd deploy && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...
