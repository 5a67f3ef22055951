// Command package builds the .deb and .rpm of teleport-update for every
// architecture (make package):
//
//	go run ./scripts/package -version 1.2.3 -out dist
//
// It cross-compiles the binary (static, no cgo), generates the man page
// from the command tree by running the build for this machine, and
// packages both with nfpm.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/internal/keys"
	"github.com/gravitational/teleport-update/internal/packaging"
)

func main() {
	v := flag.String("version", "", "teleport-update version to build (semver, no v)")
	out := flag.String("out", "dist", "output directory")
	arches := flag.String("arch", strings.Join(packaging.Arches, ","), "architectures, comma-separated")
	formats := flag.String("format", strings.Join(packaging.Formats, ","), "formats, comma-separated")
	date := flag.String("date", "", "release date YYYY-MM-DD (default: SOURCE_DATE_EPOCH or today)")
	flag.Parse()
	if err := run(context.Background(), *v, *out, *date, split(*arches), split(*formats)); err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
}

func split(s string) []string { return strings.Split(s, ",") }

func run(ctx context.Context, v, out, date string, arches, formats []string) error {
	day, err := releaseDate(date)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	build := filepath.Join(out, "build")
	defer os.RemoveAll(build)
	man, err := manPage(ctx, v, build, day)
	if err != nil {
		return err
	}
	for _, arch := range arches {
		bin := filepath.Join(build, arch, "teleport-update")
		if err := goBuild(ctx, v, arch, bin); err != nil {
			return err
		}
		for _, format := range formats {
			path, err := packaging.Build(packaging.Spec{Version: v, Arch: arch, Binary: bin, ManPage: man, Keys: keys.FS, Date: day}, format, out)
			if err != nil {
				return fmt.Errorf("%s %s: %w", format, arch, err)
			}
			fmt.Println(path)
		}
	}
	return nil
}

// releaseDate is the date files and the changelog carry: -date, else
// SOURCE_DATE_EPOCH (reproducible builds), else today.
func releaseDate(s string) (time.Time, error) {
	if s != "" {
		return time.Parse(time.DateOnly, s)
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		var sec int64
		if _, err := fmt.Sscan(e, &sec); err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", e, err)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Now().UTC().Truncate(24 * time.Hour), nil
}

// goBuild cross-compiles teleport-update for arch.
func goBuild(ctx context.Context, v, arch, bin string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+v, "-o", bin, "./cmd/teleport-update")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOTOOLCHAIN=local")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s: %w", arch, err)
	}
	return nil
}

// manPage builds teleport-update for this machine and has it print its
// own manual page.
func manPage(ctx context.Context, v, build string, day time.Time) ([]byte, error) {
	bin := filepath.Join(build, "host", "teleport-update")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-X main.version="+v, "-o", bin, "./cmd/teleport-update")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+runtime.GOARCH, "GOTOOLCHAIN=local")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build for the man page: %w", err)
	}
	var page bytes.Buffer
	gen := exec.CommandContext(ctx, bin, "man", "--date", day.Format(time.DateOnly))
	gen.Stdout, gen.Stderr = &page, os.Stderr
	if err := gen.Run(); err != nil {
		return nil, fmt.Errorf("generating the man page: %w", err)
	}
	return page.Bytes(), nil
}
