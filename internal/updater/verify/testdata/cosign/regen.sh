#!/usr/bin/env bash
# Regenerates this fixture with the real cosign CLI. Not run by tests; the
# output is committed. Needs cosign v3 in PATH:
#   GOBIN=/tmp/cosign-bin go install github.com/sigstore/cosign/v3/cmd/cosign@v3.1.2
#   PATH=/tmp/cosign-bin:$PATH ./regen.sh
#
# cosign.key is encrypted with an EMPTY password and exists only so that tests
# can prove release.LoadPrivateKey reads cosign's key format. It signs nothing
# but this fixture; never trust it anywhere.
set -euo pipefail

cd "$(dirname "$0")"
export COSIGN_PASSWORD=""
artifact=teleport-v16.4.6-linux-amd64-bin.tar.gz

rm -f cosign.key cosign.pub "$artifact" "$artifact".sha256*
cosign generate-key-pair

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin"
printf '#!/bin/sh\necho "Teleport v16.4.6 git:fixture go1.26"\n' >"$stage/bin/teleport"
chmod 0755 "$stage/bin/teleport"
tar --sort=name --owner=0 --group=0 --mtime='2026-01-01 00:00Z' -C "$stage" -czf "$artifact" bin

sha256sum "$artifact" >"$artifact.sha256"
cosign sign-blob --yes --key cosign.key \
	--bundle "$artifact.sha256.sigstore.json" \
	--use-signing-config=false --tlog-upload=false \
	"$artifact.sha256"
# cosign v3 ignores --output-signature when writing a bundle; a second call
# in the old format writes the base64 DER signature install.sh checks.
cosign sign-blob --yes --key cosign.key \
	--new-bundle-format=false --output-signature "$artifact.sha256.sig" \
	--use-signing-config=false --tlog-upload=false \
	"$artifact.sha256"
chmod 0644 "$artifact".sha256* cosign.pub cosign.key
