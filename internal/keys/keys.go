// Package keys holds the public keys that teleport-update trusts for release
// signatures, compiled into the binary.
//
// teleport-update-release.pem is the public half of the release signing key
// (ECDSA P-256). The private half is kept offline by the release team and is
// never in this repository; tests sign with keys they generate themselves.
//
// To rotate: add the new public key here as another *.pem (optionally with
// "Not-Before:"/"Not-After:" RFC 3339 PEM headers), ship it, start signing with
// the new key, and only then remove or expire the old one.
package keys

import "embed"

// FS holds every *.pem public key in this directory.
//
//go:embed *.pem
var FS embed.FS
