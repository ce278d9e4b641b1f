# Viaduct's commands. `make help` lists them. The two that matter: `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
# Packages whose tests talk to AWS; CI runs them again against fauxqs and against moto.
AWS_PACKAGES := ./pkg/awstest/... ./engines/e1/... ./internal/cli/... ./cmd/viaduct-dev/...

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-zA-Z0-9_/-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: db
db: ## Make sure PostgreSQL answers on 127.0.0.1:5432 (start it, or install it when absent).
	@bash .ci/postgres.sh

.PHONY: deps
deps: ## Download the pinned Go modules.
	$(GO) mod download

.PHONY: demo
demo: db deps ## The whole story: all five engines on local stand-ins (S3, SQS, the standalone fake CommCare); an export flows to CommCare, a tracer's edit flows back.
	@mkdir -p bin && $(GO) build -o bin/viaduct-dev ./cmd/viaduct-dev
	@export VIADUCT_WEBHOOK_PASSWORD="$${VIADUCT_WEBHOOK_PASSWORD:-$$(head -c 24 /dev/urandom | base64 | tr -d '/+=')}"; \
	  bin/viaduct-dev fake-commcare --addr 127.0.0.1:0 \
	    --forward-to "http://$${VIADUCT_WEBHOOK_ADDR:-127.0.0.1:8081}/api/commcare_cases" > bin/fake-commcare.out & fake=$$!; \
	  trap 'kill $$fake 2>/dev/null; wait $$fake 2>/dev/null' EXIT; \
	  for i in $$(seq 100); do url=$$(sed -n 's/^fake CommCare at //p' bin/fake-commcare.out); [ -n "$$url" ] && break; sleep 0.1; done; \
	  [ -n "$$url" ] || { echo "the fake CommCare did not start:"; cat bin/fake-commcare.out; exit 1; }; \
	  bin/viaduct-dev demo --commcare-url "$$url"

.PHONY: browser
browser: ## Make sure headless Chromium is installed, for the /status page's browser test (Debian's chromium package).
	@bash .ci/chromium.sh

.PHONY: test
test: db deps browser ## Run the whole test suite: lint (gofmt, vet, golangci-lint), all tests with in-process AWS stand-ins, then the AWS tests against fauxqs and against moto.
	$(MAKE) lint
	$(GO) test -race -shuffle=on -timeout 20m ./...
	$(MAKE) test/fauxqs
	$(MAKE) test/moto

.PHONY: test/fauxqs
test/fauxqs: db ## Run the AWS integration tests against fauxqs (installed from npm, started and stopped here).
	@trap 'bash .ci/fauxqs.sh stop' EXIT; \
	  vars=$$(bash .ci/fauxqs.sh start) && eval "$$vars" && \
	  $(GO) test -count=1 -timeout 15m $(AWS_PACKAGES)

.PHONY: test/moto
test/moto: db ## Run the AWS integration tests against moto_server, whose buckets send their own notifications (python3's moto 5.x, pip-installed when absent).
	@trap 'bash .ci/moto.sh stop' EXIT; \
	  vars=$$(bash .ci/moto.sh start) && eval "$$vars" && \
	  $(GO) test -count=1 -timeout 15m $(AWS_PACKAGES)

.PHONY: test/short
test/short: db browser ## Run the tests once, without the race detector or the second AWS leg.
	$(GO) test ./...

.PHONY: fuzz
fuzz: ## Fuzz everything that reads outside input, 30 seconds each.
	$(GO) test -run '^$$' -fuzz FuzzParseLine -fuzztime 30s ./pkg/eclrs
	$(GO) test -run '^$$' -fuzz FuzzDetectVersion -fuzztime 30s ./pkg/eclrs
	$(GO) test -run '^$$' -fuzz FuzzParseNotification -fuzztime 30s ./engines/e1
	$(GO) test -run '^$$' -fuzz FuzzParseCountyList -fuzztime 30s ./pkg/countylist
	$(GO) test -run '^$$' -fuzz FuzzMarshalData -fuzztime 30s ./engines/e2
	$(GO) test -run '^$$' -fuzz FuzzDecodeCase -fuzztime 30s ./pkg/commcare
	$(GO) test -run '^$$' -fuzz FuzzFormXML -fuzztime 30s ./pkg/commcare
	$(GO) test -run '^$$' -fuzz FuzzParseForm -fuzztime 30s ./pkg/commcare/commcaretest
	$(GO) test -run '^$$' -fuzz FuzzDecodeForwardedCase -fuzztime 30s ./engines/e5

.PHONY: bench-webhook
bench-webhook: db ## Benchmark case forwarding: a tracer's edit in the fake CommCare to the merged row (p50/p95), and the webhook's cases/s.
	$(GO) test -tags bench -run TestBenchWebhook -v -count=1 -timeout 30m ./engines/e5

.PHONY: bench-e5
bench-e5: db ## Benchmark Engine 5 pulling 100,000 changed cases from 10 domains of the fake CommCare at 10 ms per request; print cases/s.
	$(GO) test -tags bench -run TestBenchE5 -v -count=1 -timeout 30m ./engines/e5

.PHONY: bench-e4
bench-e4: db ## Benchmark Engine 4 posting 20,000 cases to the fake CommCare at 20 ms per request; print posts/s and job latency.
	$(GO) test -tags bench -run TestBenchE4 -v -count=1 -timeout 30m ./engines/e4

.PHONY: bench-e2
bench-e2: db ## Benchmark Engine 2 on the 200,000 new test results of a generated export and print the figures.
	$(GO) test -tags bench -run TestBenchE2 -v -count=1 -timeout 60m ./internal/cli

.PHONY: bench-e1
bench-e1: db ## Benchmark Engine 1 on generated 500k- and 2M-row exports and print the figures.
	$(GO) test -tags bench -run TestBenchE1 -v -count=1 -timeout 60m ./internal/cli

.PHONY: bench-latency
bench-latency: db ## Time new results from the S3 notification to CommCare through one `viaduct run --e1 --e2 --e3 --e4` on local S3/SQS and the fake CommCare; print p50/p90 per stage.
	$(GO) test -tags bench -run TestBenchLatency -v -count=1 -timeout 30m ./internal/cli

.PHONY: bench-history
bench-history: db ## Benchmark every engine pass and the status page on generated histories of 0.5M and 2M test results (QUICK=1: 0.5M only); print the figures per size.
	$(if $(QUICK),BENCH_HISTORY_SIZES=500000) $(GO) test -tags bench -run TestBenchHistory -v -count=1 -timeout 180m ./internal/cli

.PHONY: build
build: ## Build bin/viaduct (production) and bin/viaduct-dev (with demo, fake-commcare and generate).
	$(GO) build -o bin/viaduct ./cmd/viaduct
	$(GO) build -o bin/viaduct-dev ./cmd/viaduct-dev

# The version `make release` stamps in: `viaduct version`, `viaduct --version`, the daemon's start-up line and its
# build-info metric show it. Override with `make release VERSION=v1.2.3`.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)

.PHONY: release
release: ## Build bin/viaduct to deploy: static (CGO_ENABLED=0), -trimpath, VERSION (default: git describe) stamped in; print its sha256.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X github.com/viaduct-nys/viaduct/internal/cli.version=$(VERSION)" -o bin/viaduct ./cmd/viaduct
	@bin/viaduct version
	@cd bin && sha256sum viaduct | tee viaduct.sha256

.PHONY: image
image: release ## Build the container image (deploy/container: FROM scratch, uid 65532, no shell) from bin/viaduct with buildah, no registry needed; write bin/viaduct-image.tar (OCI).
	bash deploy/container/image.sh bin/viaduct bin/viaduct-image.tar "$(VERSION)"

# golangci-lint, pinned in tools/go.mod: a module of its own, so the main go.mod never gains the linter's
# dependencies. Built into bin/ on first use, and again whenever tools/go.mod or tools/go.sum changes.
GOLANGCI_LINT := bin/golangci-lint

$(GOLANGCI_LINT): tools/go.mod tools/go.sum
	cd tools && GOWORK=off GOBIN=$(CURDIR)/bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	@touch $@

.PHONY: lint
lint: $(GOLANGCI_LINT) ## gofmt, go vet, then golangci-lint with .golangci.yaml (installed into bin/ when absent).
	@# A linter built by another Go release than the one here misreads the standard library: rebuild it.
	@$(GOLANGCI_LINT) version | grep -qF "built with $$($(GO) env GOVERSION) " || { rm -f $(GOLANGCI_LINT) && $(MAKE) --no-print-directory $(GOLANGCI_LINT); }
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...
