package verify

import "io/fs"

// UnsafeFileReason applies the rule key files in keys.d follow to another
// file of trusted configuration: fi (from Lstat, or Stat of an opened file)
// must be a regular file, not a symlink, neither group- nor world-writable,
// and owned by uid 0 or euid. It returns why fi breaks the rule, or "".
func UnsafeFileReason(fi fs.FileInfo, euid int) string {
	return unsafeReason(fi, false, euid)
}
