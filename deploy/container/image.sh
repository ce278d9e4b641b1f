#!/usr/bin/env bash
# Builds Viaduct's container image with buildah and no registry: the Containerfile's final stage (FROM scratch), with
# its build stage stood in for by rootfs.sh's layout of a binary built on this machine (`make release`). Writes an
# OCI archive (`podman load -i`, `skopeo copy oci-archive:…`), then checks the image: its entrypoint prints the
# version it was stamped with, it runs as uid 65532, and it has no shell.
#
# Usage: image.sh BINARY OUT.tar VERSION
set -euo pipefail
bin=$1
out=$2
version=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if ! command -v buildah >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "image.sh: buildah is missing: sudo apt-get install buildah" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
fi

work=$(mktemp -d)
# Rootless, the storage's files belong to the user namespace's ids: only inside it may they be removed.
if [ "$(id -u)" = 0 ]; then trap 'rm -rf "$work"' EXIT; else trap 'buildah unshare rm -rf "$work"' EXIT; fi
# Storage of its own on vfs (plain copies, no overlay mounts), gone when the script ends: the archive is the product.
B=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
tag=localhost/viaduct:${version//[^A-Za-z0-9_.-]/_}

sh "$here/rootfs.sh" "$bin" "$work/build/rootfs"
mkdir "$work/context" # the final stage copies only from the build stage
"${B[@]}" bud --quiet --pull=never --isolation chroot --build-context build="$work/build" \
  --label org.opencontainers.image.version="$version" -f "$here/Containerfile" -t "$tag" "$work/context" >/dev/null
rm -f "$out"
"${B[@]}" push --quiet "$tag" "oci-archive:$out:$tag"

# Check the archive, not the store: what an operator loads is what runs here.
ctr=$("${B[@]}" from --quiet --pull=never "oci-archive:$out")
got=$("${B[@]}" run --isolation chroot "$ctr" -- /viaduct version)
if [ "$got" != "viaduct $version" ]; then
  echo "image.sh: the image's viaduct says \"$got\", not \"viaduct $version\"" >&2
  exit 1
fi
user=$("${B[@]}" inspect --format '{{.OCIv1.Config.User}}' "$ctr")
if [ "$user" != "65532:65532" ]; then
  echo "image.sh: the image runs as \"$user\", not 65532:65532" >&2
  exit 1
fi
if "${B[@]}" run --isolation chroot "$ctr" -- /bin/sh -c true >/dev/null 2>&1; then
  echo "image.sh: the image has a shell" >&2
  exit 1
fi
echo "$out: $tag, $(du -h "$out" | cut -f1), sha256 $(sha256sum "$out" | cut -d' ' -f1)"
