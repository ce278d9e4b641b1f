#!/bin/sh
# Lays out the container image's whole file system in DIR: the static viaduct binary, the CA certificates that
# verify AWS and CommCare, and the user it runs as (uid 65532, no home, no shell). The Containerfile's build stage
# and `make image` both call it, so the image holds the same files whichever built it.
#
# Usage: rootfs.sh BINARY DIR
set -eu
bin=$1
dir=$2
certs=/etc/ssl/certs/ca-certificates.crt
if [ ! -f "$certs" ]; then
  echo "rootfs.sh: $certs is missing (Debian's ca-certificates package)" >&2
  exit 1
fi
mkdir -p "$dir/etc/ssl/certs"
cp "$bin" "$dir/viaduct"
cp "$certs" "$dir/etc/ssl/certs/ca-certificates.crt"
echo 'viaduct:x:65532:65532:viaduct:/nonexistent:/sbin/nologin' >"$dir/etc/passwd"
echo 'viaduct:x:65532:' >"$dir/etc/group"
chmod 0755 "$dir/viaduct"
chmod 0644 "$dir/etc/ssl/certs/ca-certificates.crt" "$dir/etc/passwd" "$dir/etc/group"
