// Package scripts holds the shell scripts the project ships, embedded so the
// proxy can serve them.
package scripts

import _ "embed" // for go:embed

// InstallSH is the text/template source of install.sh, the installer a proxy
// serves at /scripts/install.sh. It is executed with a value that has the
// fields ProxyAddr (host[:port]), Group, Version (semver without "v"),
// BaseURL (https:// CDN base, empty for the built-in one) and PublicKey (the
// release signing key as PEM).
//
// Each field is placed inside single quotes in a bash assignment, so the
// renderer must make sure no value contains a single quote, or replace each
// with the four characters quote, backslash, quote, quote; the script
// re-validates every value before using it.
//
//go:embed install.sh
var InstallSH []byte
