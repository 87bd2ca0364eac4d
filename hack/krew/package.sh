#!/usr/bin/env bash
# Builds the release archives of kubectl pushmon and writes the krew manifest
# for them: hack/krew/pushmon.yaml with version, uri and sha256 filled in.
#
#   hack/krew/package.sh v0.1.0                   # every platform the manifest lists
#   PLATFORMS=linux/amd64 hack/krew/package.sh v0.1.0
#
# Output in $OUT (default dist/krew): kubectl-pushmon_<version>_<os>_<arch>.tar.gz
# and pushmon.yaml, which `kubectl krew install --manifest=... --archive=...`
# installs from locally, and which a release copies into krew-index.
set -euo pipefail

VERSION=${1:?usage: hack/krew/package.sh VERSION (e.g. v0.1.0)}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/dist/krew}
BASE_URL=${BASE_URL:-https://github.com/pushmon/pushmon/releases/download/$VERSION}

mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

shas=""
for p in $PLATFORMS; do
  os=${p%/*} arch=${p#*/}
  exe=kubectl-pushmon
  [ "$os" = windows ] && exe=kubectl-pushmon.exe
  dir="$work/$os-$arch"
  mkdir -p "$dir"
  (cd "$ROOT" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags='-s -w' -o "$dir/$exe" ./cmd/kubectl-pushmon)
  cp "$ROOT/LICENSE" "$dir/"
  archive="kubectl-pushmon_${VERSION}_${os}_${arch}.tar.gz"
  # Fixed owner, order and time, so that the same commit gives the same sha256.
  tar -C "$dir" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - "$exe" LICENSE | gzip -n > "$OUT/$archive"
  sha=$(sha256sum "$OUT/$archive" | cut -d' ' -f1)
  shas="$shas $os/$arch=$sha"
  echo "$OUT/$archive $sha"
done

# Fill in each platform block of the template: its selector's os and arch
# come before its uri and sha256.
awk -v version="$VERSION" -v base="$BASE_URL" -v shas="$shas" '
  BEGIN { n = split(shas, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); sha[p[1]] = p[2] } }
  /^  version:/ { print "  version: " version; next }
  /^        os:/ { os = $2 }
  /^        arch:/ { arch = $2 }
  /^    uri:/ { print "    uri: " base "/kubectl-pushmon_" version "_" os "_" arch ".tar.gz"; next }
  /^    sha256:/ {
    if (!((os "/" arch) in sha)) { printf "warning: %s/%s not built; its sha256 is left as in the template\n", os, arch > "/dev/stderr"; print; next }
    print "    sha256: \"" sha[os "/" arch] "\""; next
  }
  { print }
' "$ROOT/hack/krew/pushmon.yaml" > "$OUT/pushmon.yaml"
echo "$OUT/pushmon.yaml"
