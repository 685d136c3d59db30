#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd from the Go module proxy into DEST, for the
# Kubernetes rule tests (controller-runtime's envtest runs them through
# KUBEBUILDER_ASSETS). Neither can be fetched with `go install`:
#
#   - k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apiserver, ...)
#     at v0.0.0 and points them at its own source tree with replace directives, which
#     only count in the main module. So a scratch module requires k8s.io/kubernetes
#     and replaces each of those staging modules with its published build of the same
#     release (v1.X.Y -> v0.X.Y). The version the API server reports is stamped at link
#     time, as Kubernetes' own build does.
#   - etcd's server module has replace directives of its own, so a scratch module with
#     a main that calls etcdmain.Main builds it instead.
#
# Usage: scripts/build-kube.sh DEST [KUBERNETES_VERSION] [ETCD_VERSION]
set -euo pipefail
dest=${1:?usage: scripts/build-kube.sh DEST [KUBERNETES_VERSION] [ETCD_VERSION]}
kube_version=${2:-v1.37.2}
etcd_version=${3:-v3.6.16}
staging_version=v0.${kube_version#v1.}

say() { printf '==> %s\n' "$*" >&2; }

mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0

if [ ! -x "$dest/kube-apiserver" ]; then
	start=$SECONDS
	mkdir "$work/apiserver"
	cd "$work/apiserver"
	go mod init gatehouse.test/kube-apiserver >/dev/null 2>&1
	gomod=$(go mod download -json "k8s.io/kubernetes@$kube_version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
	[ -f "$gomod" ] || { echo "build-kube.sh: cannot download k8s.io/kubernetes@$kube_version" >&2; exit 1; }
	# Every k8s.io module that k8s.io/kubernetes requires at v0.0.0 is one of its
	# staging modules.
	args=("-require=k8s.io/kubernetes@$kube_version")
	while read -r mod; do
		args+=("-replace=$mod@v0.0.0=$mod@$staging_version")
	done < <(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$gomod" | sort -u)
	go mod edit "${args[@]}"
	go get "k8s.io/kubernetes/cmd/kube-apiserver@$kube_version" >/dev/null 2>&1 || go get "k8s.io/kubernetes/cmd/kube-apiserver@$kube_version"
	minor=${kube_version#v1.}
	minor=${minor%%.*}
	ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	done
	go build -trimpath -ldflags "$ldflags" -o "$dest/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
	mv "$dest/kube-apiserver.tmp" "$dest/kube-apiserver"
	say "built kube-apiserver $kube_version in $((SECONDS - start)) s"
fi

if [ ! -x "$dest/etcd" ]; then
	start=$SECONDS
	mkdir "$work/etcd"
	cd "$work/etcd"
	go mod init gatehouse.test/etcd >/dev/null 2>&1
	cat >main.go <<'EOF'
// Command etcd is etcd's own server, built from its module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
	go get "go.etcd.io/etcd/server/v3@$etcd_version" >/dev/null 2>&1 || go get "go.etcd.io/etcd/server/v3@$etcd_version"
	go mod tidy >/dev/null 2>&1 || go mod tidy
	go build -trimpath -ldflags "-s -w" -o "$dest/etcd.tmp" .
	mv "$dest/etcd.tmp" "$dest/etcd"
	say "built etcd $etcd_version in $((SECONDS - start)) s"
fi
