# verity: the two set-up commands are `make run` and `make test` (see README.md).

CARGO ?= cargo
VERITY := target/debug/verity
# Tools the test suite runs for real: a registry, an independent signer, htpasswd, kubectl, jq.
APT_PACKAGES := docker-registry openssl apache2-utils curl jq
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint deps build crds fixtures clean bench bench-deps

## run: serve the webhook on https://127.0.0.1:8443 with the policies in policies/ and dev certs
run: build certs/tls.crt
	$(VERITY) serve --policies policies \
		--tls-cert certs/tls.crt --tls-key certs/tls.key \
		--addr 127.0.0.1:8443 --admin-addr 127.0.0.1:9090

certs/tls.crt: | build
	$(VERITY) dev-certs --out certs

build:
	$(CARGO) build

## test: install what the suite needs, then run every test
test: deps
	$(CARGO) test --all-targets

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## deps: Debian packages the tests use (installed only when missing)
deps:
	@missing=""; \
	for tool in docker-registry:docker-registry openssl:openssl htpasswd:apache2-utils curl:curl jq:jq; do \
		command -v $${tool%%:*} >/dev/null 2>&1 || missing="$$missing $${tool##*:}"; \
	done; \
	command -v kubectl >/dev/null 2>&1 || missing="$$missing kubernetes-client"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

## bench: every benchmark (benches/admission) on an optimized build; rewrites BENCHMARKS.md.
## `cargo bench` builds verity with the bench profile, which inherits [profile.release].
## Not part of `make test` or CI. Sizes: BENCH_COLD_N, BENCH_HEY_N, BENCH_FILL... (benches/admission/main.rs).
bench: bench-deps
	$(CARGO) bench --bench admission

## bench-deps: the registry, signer and load generators the benchmarks run (installed only when missing)
bench-deps:
	@missing=""; \
	for tool in docker-registry:docker-registry openssl:openssl hey:hey wrk:wrk; do \
		command -v $${tool%%:*} >/dev/null 2>&1 || missing="$$missing $${tool##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

## crds: regenerate the chart's CRDs from the Rust types
crds: build
	$(VERITY) crds > charts/verity/crds/crds.yaml

## fixtures: regenerate the AdmissionReview fixtures with kubectl
fixtures:
	tests/fixtures/generate.sh

clean:
	$(CARGO) clean
