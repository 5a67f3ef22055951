package main

import "github.com/gravitational/teleport-update/bench/internal/relgen"

// generate writes a release tarball in the flat layout of about unpacked
// bytes (before compression) to path.
func generate(path string, unpacked int64) error {
	return relgen.Write(path, unpacked, []string{"bin"}, relgen.Flat)
}
