package main

import (
	"archive/tar"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
)

// binaryLike fills p with bytes that compress roughly like a Go binary
// under gzip -6 (about 2.2:1): a mix of random runs (code, compressed
// data), repeated strings (symbol tables) and sparse zero-heavy runs
// (data sections, padding).
func binaryLike(rng *rand.Rand, p []byte) {
	words := []string{"runtime.", "github.com/gravitational/teleport/lib/", "func", "type.", ".go",
		"sync.(*Mutex).Lock", "reflect.Value", "0123456789abcdef", "errors.New", "context.Context"}
	for i := 0; i < len(p); {
		n := min(len(p)-i, 256+rng.IntN(3840))
		chunk := p[i : i+n]
		switch r := rng.IntN(100); {
		case r < 45: // random
			for j := range chunk {
				chunk[j] = byte(rng.Uint32())
			}
		case r < 75: // text
			for j := 0; j < len(chunk); {
				j += copy(chunk[j:], words[rng.IntN(len(words))])
			}
		default: // sparse
			for j := range chunk {
				chunk[j] = 0
				if rng.IntN(16) == 0 {
					chunk[j] = byte(rng.Uint32())
				}
			}
		}
		i += n
	}
}

// release describes the binaries of the generated release.
var releaseFiles = []struct {
	name  string
	share float64 // of the total unpacked size
}{
	{"bin/teleport", 0.40},
	{"bin/tctl", 0.15},
	{"bin/tsh", 0.15},
	{"bin/tbot", 0.15},
	{"bin/fdpass-teleport", 0.05},
	{"bin/teleport-update", 0.10},
}

// generate writes a release tarball of about unpacked bytes (before
// compression) to path, compressed with gzip -6 like release tooling does.
func generate(path string, unpacked int64) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	gz := exec.Command("gzip", "-6", "-c")
	gz.Stdout = out
	gz.Stderr = os.Stderr
	in, err := gz.StdinPipe()
	if err != nil {
		return err
	}
	if err := gz.Start(); err != nil {
		return fmt.Errorf("start gzip: %w", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	tw := tar.NewWriter(in)
	buf := make([]byte, 1<<20)
	writeFile := func(name string, size int64, mode int64) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: size, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		for left := size; left > 0; {
			n := min(left, int64(len(buf)))
			binaryLike(rng, buf[:n])
			if _, err := tw.Write(buf[:n]); err != nil {
				return err
			}
			left -= n
		}
		return nil
	}
	if err := tw.WriteHeader(&tar.Header{Name: "bin/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	for _, f := range releaseFiles {
		if err := writeFile(f.name, int64(f.share*float64(unpacked)), 0o755); err != nil {
			return err
		}
	}
	if err := writeFile("lib/systemd/system/teleport.service", 400, 0o644); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := in.Close(); err != nil {
		return err
	}
	if err := gz.Wait(); err != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	return out.Sync()
}
