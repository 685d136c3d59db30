#!/usr/bin/env bash
# Runs every Gatehouse test against real services: a throwaway PostgreSQL cluster
# (initdb + pg_ctl in a temporary folder, on a free loopback port) with PgBouncer in
# transaction mode in front of it, nginx, Debian's Caddy and a current Caddy in front of
# an Express app and Go's http.FileServer for the proxy end-to-end tests,
# headless Chromium for the browser test (passkeys through nginx), a real Kubernetes
# API server (kube-apiserver and etcd, built once) for the rules from Kubernetes, wrk
# for the bench suite's small run, and the race
# detector. It installs what is missing from Debian's packages when run as root;
# otherwise it says what to install.
#
# Usage: scripts/test.sh [extra go test flags]   (README: "Run all the tests")
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/common.sh

# --- packages --------------------------------------------------------------------
find_pg_bin
need=()
[ -x "${pg_bin:-/nonexistent}/initdb" ] || need+=(postgresql)
command -v nginx >/dev/null || need+=(nginx)
command -v caddy >/dev/null || need+=(caddy)
command -v pgbouncer >/dev/null || need+=(pgbouncer)
command -v chromium >/dev/null || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v wrk >/dev/null || need+=(wrk)
ensure_packages "${need[@]}"
find_pg_bin

# --- third-party software that is not in Debian, cached outside the repository ----
# A current Caddy (Debian's is 2.6, whose forward_auth copies headers differently),
# Express 4, the app framework the proxy tests protect, and two relying parties the
# OpenID Connect tests sign in with: openid-client 6 (certified) and oauth2-proxy 7, and
# axe-core, which the browser test runs on every page. Built or installed once per
# machine into the cache folder, then reused.
tools=${GATEHOUSE_TEST_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse-test-tools}
caddy_version=v2.11.9
if [ ! -x "$tools/caddy-$caddy_version/caddy" ]; then
	say "building Caddy $caddy_version with go install into $tools (once per machine: about 5 minutes)"
	GOBIN="$tools/caddy-$caddy_version" go install "github.com/caddyserver/caddy/v2/cmd/caddy@$caddy_version"
fi
express_version=4.22.3
if [ ! -f "$tools/express-$express_version/node_modules/express/package.json" ]; then
	say "installing Express $express_version from npm into $tools"
	npm install --prefix "$tools/express-$express_version" --no-save --no-audit --no-fund --loglevel=error "express@$express_version" >/dev/null
fi
oauth2_proxy_version=v7.15.6
if [ ! -x "$tools/oauth2-proxy-$oauth2_proxy_version/oauth2-proxy" ]; then
	say "building oauth2-proxy $oauth2_proxy_version with go install into $tools (once per machine: about 4 minutes)"
	GOBIN="$tools/oauth2-proxy-$oauth2_proxy_version" go install "github.com/oauth2-proxy/oauth2-proxy/v7@$oauth2_proxy_version"
fi
export TEST_GATEHOUSE_OAUTH2_PROXY="$tools/oauth2-proxy-$oauth2_proxy_version/oauth2-proxy"
zitadel_oidc_version=v3.52.0
if [ ! -x "$tools/zitadel-oidc-$zitadel_oidc_version/server" ]; then
	say "building the zitadel/oidc example OpenID provider $zitadel_oidc_version with go install into $tools (once per machine: about a minute)"
	GOBIN="$tools/zitadel-oidc-$zitadel_oidc_version" go install "github.com/zitadel/oidc/v3/example/server@$zitadel_oidc_version"
fi
export TEST_GATEHOUSE_ZITADEL_OP="$tools/zitadel-oidc-$zitadel_oidc_version/server"
mailpit_version=v1.33.1
if [ ! -x "$tools/mailpit-$mailpit_version/mailpit" ]; then
	say "building Mailpit $mailpit_version (an SMTP server with an API) with go install into $tools (once per machine: about two minutes)"
	GOBIN="$tools/mailpit-$mailpit_version" go install "github.com/axllent/mailpit@$mailpit_version"
fi
export TEST_GATEHOUSE_MAILPIT="$tools/mailpit-$mailpit_version/mailpit"
openid_client_version=6.8.9
if [ ! -f "$tools/openid-client-$openid_client_version/node_modules/openid-client/package.json" ]; then
	say "installing openid-client $openid_client_version from npm into $tools"
	npm install --prefix "$tools/openid-client-$openid_client_version" --no-save --no-audit --no-fund --loglevel=error "openid-client@$openid_client_version" >/dev/null
fi
axe_version=4.14.1
if [ ! -f "$tools/axe-core-$axe_version/node_modules/axe-core/axe.min.js" ]; then
	say "installing axe-core $axe_version from npm into $tools"
	npm install --prefix "$tools/axe-core-$axe_version" --no-save --no-audit --no-fund --loglevel=error "axe-core@$axe_version" >/dev/null
fi
export TEST_GATEHOUSE_AXE="$tools/axe-core-$axe_version/node_modules/axe-core/axe.min.js"
standardwebhooks_version=1.1.1
if [ ! -f "$tools/standardwebhooks-$standardwebhooks_version/node_modules/standardwebhooks/package.json" ]; then
	say "installing standardwebhooks $standardwebhooks_version from npm into $tools"
	npm install --prefix "$tools/standardwebhooks-$standardwebhooks_version" --no-save --no-audit --no-fund --loglevel=error "standardwebhooks@$standardwebhooks_version" >/dev/null
fi
export TEST_GATEHOUSE_STANDARDWEBHOOKS_MODULES="$tools/standardwebhooks-$standardwebhooks_version/node_modules"
# A real Kubernetes API server for the rules-from-Kubernetes tests: kube-apiserver and
# etcd built from the Go module proxy (neither installs with go install; see
# scripts/build-kube.sh), run by controller-runtime's envtest through
# KUBEBUILDER_ASSETS, and the Gateway API's CRDs from its module.
kube_version=v1.37.2
etcd_version=v3.6.16
kube_dir="$tools/kube-$kube_version-etcd-$etcd_version"
if [ ! -x "$kube_dir/kube-apiserver" ] || [ ! -x "$kube_dir/etcd" ]; then
	say "building kube-apiserver $kube_version and etcd $etcd_version from the Go module proxy into $kube_dir (once per machine: about 10 minutes on 2 cores)"
	scripts/build-kube.sh "$kube_dir" "$kube_version" "$etcd_version"
fi
export KUBEBUILDER_ASSETS="$kube_dir"
gateway_api_version=v1.6.3
gateway_api_dir=$(go mod download -json "sigs.k8s.io/gateway-api@$gateway_api_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$gateway_api_dir/config/crd/standard" ] || die "could not download sigs.k8s.io/gateway-api@$gateway_api_version for its CRDs"
export TEST_GATEHOUSE_GATEWAY_CRDS="$gateway_api_dir/config/crd/standard"
export TEST_GATEHOUSE_CADDY_CURRENT="$tools/caddy-$caddy_version/caddy"
export TEST_GATEHOUSE_OPENID_CLIENT_MODULES="$tools/openid-client-$openid_client_version/node_modules"
export TEST_GATEHOUSE_EXPRESS_MODULES="$tools/express-$express_version/node_modules"

# --- a throwaway PostgreSQL --------------------------------------------------------
. scripts/lib/postgres.sh
. scripts/lib/pgbouncer.sh

export TEST_GATEHOUSE_POSTGRES_URL="$pg_url"
export TEST_GATEHOUSE_PGBOUNCER_URL="$pgbouncer_url"
export TEST_GATEHOUSE_REQUIRE_ALL=1

# --- the tests -------------------------------------------------------------------
say "go vet"
go vet ./...
say "go test -race (SQLite, PostgreSQL, nginx, Caddy, Chromium, fuzz seed corpora)"
go test -race -count=1 -timeout 20m "$@" ./...
say "Helm chart: lint, render, and compare with deploy/manifests (Helm's Go library)"
(cd deploy/helm/chartcheck && go vet ./... && go test -count=1 ./...)
say "fuzzing the network-facing parsers briefly"
for spec in access:FuzzNoReadingIsWeaker forwardauth:FuzzForwardedRequest forwardauth:FuzzOriginalOf forwardauth:FuzzAppPasswordOf web:FuzzReturnURL config:FuzzLoad oidc:FuzzRedirectAllowed api:FuzzRequestParsing upstream:FuzzVerify kuberules:FuzzCompile; do
	pkg=./internal/${spec%%:*} target=${spec#*:}
	# A failing input is written under testdata/fuzz and fails the run. A run that
	# fails without one is the fuzzing engine's trouble (a worker it took for hung on
	# a busy machine, or "context deadline exceeded" as the time runs out): it is
	# shown and tried again, up to three times.
	for try in 1 2 3; do
		if out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime=15s -fuzzminimizetime=0 "$pkg" 2>&1); then
			break
		fi
		if grep -q "Failing input written to" <<<"$out"; then
			printf '%s\n' "$out" | tail -40 >&2
			die "fuzz target $target found a failure: see $pkg/testdata/fuzz"
		fi
		printf '%s\n' "$out" | tail -10 >&2
		[ "$try" = 3 ] && die "fuzzing $target failed three times without a failing input (the fuzzing engine's trouble, not a found bug): see above"
		say "fuzzing $target failed without a failing input; trying again"
	done
done
say "all tests passed"
