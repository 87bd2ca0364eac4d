# pushmon — `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(CURDIR)/bin
CONTROLPLANE_DIR ?= $(LOCALBIN)/k8s
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
# kubectl from PATH, else the one built into bin/k8s.
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo $(CONTROLPLANE_DIR)/kubectl)
# envtest finds etcd and kube-apiserver here (built from source by hack/).
export KUBEBUILDER_ASSETS ?= $(CONTROLPLANE_DIR)

GO_TEST_FLAGS ?= -race -count=1
TEST_TIMEOUT ?= 20m

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests from markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods from markers.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

GO_FILES = $(shell find . -name '*.go' -not -path './bin/*')

.PHONY: fmt
fmt: ## Run gofmt over the code.
	gofmt -l -w $(GO_FILES)

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Fail if gofmt, go vet or golangci-lint (.golangci.yml, with kube-api-linter on api/) finds anything.
	@out=$$(gofmt -l $(GO_FILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(GOLANGCI_LINT) run ./...

.PHONY: test
test: controlplane lint verify-generated check-rules ## Run every test (unit and integration, -race); builds the control plane once.
	go test $(GO_TEST_FLAGS) -timeout $(TEST_TIMEOUT) ./...

.PHONY: check-rules
check-rules: ## Check the Prometheus alert rules and run their unit tests with promtool (Debian package prometheus).
	promtool check rules config/prometheus/rules/pushmon.rules.yaml
	promtool test rules config/prometheus/rules/pushmon.rules_test.yaml

.PHONY: bench
bench: controlplane build ## Measure throughput, API writes, Down delay, scale; prints one table (docs/performance.md).
	go test -run '^$$' -bench . -benchmem ./internal/push/
	go run ./test/bench $(BENCH_FLAGS)

# The long chaos run; the flags' defaults are the short form go test ./...
# (make test) runs.
CHAOS_FLAGS ?= -chaos.duration=3m -chaos.monitors=200 -chaos.kill-interval=15s

.PHONY: chaos
chaos: controlplane ## Chaos run: 3 replicas, SIGKILLs, an API server restart, 200 monitors for 3m; prints one table, fails on a missed target (docs/reliability.md).
	go test -count=1 -v -timeout 20m -run '^TestChaos$$' ./test/chaos/ -args $(CHAOS_FLAGS)

# Each fuzz target and its package; go test -fuzz takes one target at a time.
FUZZ_TARGETS ?= ./internal/push:FuzzParse ./internal/push:FuzzServePush ./internal/push:FuzzClientIP \
	./internal/token:FuzzWellFormed ./internal/token:FuzzLookup
FUZZTIME ?= 60s

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 60s); make test runs only their seed corpora.
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "--- $$name ($$pkg) for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

.PHONY: verify-generated
verify-generated: controller-gen ## Fail if make manifests generate would change a file (committed or not).
	@before=$$(find api config -type f | sort | xargs sha256sum); \
	$(MAKE) -s manifests generate >/dev/null; \
	after=$$(find api config -type f | sort | xargs sha256sum); \
	[ "$$before" = "$$after" ] || { diff <(echo "$$before") <(echo "$$after"); echo "generated files are stale: run make manifests generate"; exit 1; }

##@ Build

# The manager image docker-build builds and build-installer writes into dist/install.yaml.
IMG ?= ghcr.io/pushmon/pushmon:latest
CONTAINER_TOOL ?= docker

.PHONY: build
build: ## Build the manager binary into bin/manager (static; the Dockerfile runs the same go build).
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/manager ./cmd

.PHONY: docker-build
docker-build: ## Build the manager image $(IMG) from the Dockerfile (needs a running Docker engine).
	@command -v $(CONTAINER_TOOL) >/dev/null || { echo "docker-build: '$(CONTAINER_TOOL)' not found; install Docker or set CONTAINER_TOOL (e.g. podman)" >&2; exit 1; }
	@$(CONTAINER_TOOL) info >/dev/null 2>&1 || { echo "docker-build: '$(CONTAINER_TOOL)' cannot reach its engine ('$(CONTAINER_TOOL) info' fails); start it and retry" >&2; exit 1; }
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: build-installer
build-installer: manifests controlplane ## Render config/default with image $(IMG) into one file, dist/install.yaml.
	@mkdir -p dist
	$(CONTROLPLANE_DIR)/kubectl kustomize config/default | sed 's|image: ghcr.io/pushmon/pushmon:latest$$|image: $(IMG)|' > dist/install.yaml.tmp
	@grep -qF 'image: $(IMG)' dist/install.yaml.tmp || { echo "build-installer: image $(IMG) not set in the manifests" >&2; exit 1; }
	@mv dist/install.yaml.tmp dist/install.yaml
	@echo "wrote dist/install.yaml (image $(IMG))"

.PHONY: demo
demo: controlplane ## Run pushmon on a local control plane (no cluster) and walk a monitor through its states.
	go build -o $(LOCALBIN)/pushmon-demo ./hack/demo
	$(LOCALBIN)/pushmon-demo

.PHONY: install
install: manifests ## Install the CRD into the cluster KUBECONFIG points to.
	$(KUBECTL) apply -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRD (and every PushMonitor) from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: run
run: manifests generate ## Run the manager against the cluster KUBECONFIG points to (after make install).
	go run ./cmd --push-base-url=http://localhost:8082

##@ Tools

.PHONY: controlplane
controlplane: ## Build etcd, kube-apiserver, kube-controller-manager and kubectl from source into bin/k8s (once).
	@CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) ./hack/build-controlplane.sh

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen (pinned in hack/tools) into bin/.
$(CONTROLLER_GEN): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen

# golangci-lint with kube-api-linter compiled in as a module plugin: what
# `golangci-lint custom` would build, from the module proxy alone.
.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build golangci-lint with kube-api-linter (pinned in hack/tools) into bin/.
$(GOLANGCI_LINT): hack/tools/go.mod hack/tools/go.sum hack/tools/golangci-kal/main.go
	cd hack/tools && go build -o $(GOLANGCI_LINT) ./golangci-kal
