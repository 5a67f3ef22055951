// Command demo shows teleport-update working end to end on loopback, without
// root, systemd or any configuration (`make demo`, or `go run ./demo`):
//
//  1. it builds teleport-update and a tiny demo agent in three releases,
//     1.0.0 and 2.0.0 good and 3.0.0 broken;
//  2. generates a throwaway signing key and signs the releases with
//     `teleport-update release keygen|sign`;
//  3. starts a local HTTPS CDN and `teleport-update proxy serve`, both with
//     certificates from a throwaway CA that only the demo's processes trust;
//  4. installs 1.0.0 into a temporary root, moves the policy to 2.0.0 and
//     updates, then to 3.0.0, whose health check fails, so the host rolls
//     back to 2.0.0 and skips 3.0.0;
//  5. prints the host's status and the proxy's census summary, stops its
//     processes and removes its files.
//
// It exits 0 only when every step had the expected outcome.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// demoTimeout bounds the whole demo, builds included.
const demoTimeout = 10 * time.Minute

func main() {
	keep := flag.Bool("keep", false, "keep the demo's temporary directory for inspection")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout, options{keep: *keep})
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nThe demo FAILED: %v\n", err)
		os.Exit(1)
	}
}

// options adjust a demo run.
type options struct {
	// work is the scratch directory. Empty means a new temporary directory.
	work string
	// keep leaves the scratch directory in place.
	keep bool
}

// run plays the whole demo, writing its narration to out. It returns an
// error when any step has an unexpected outcome.
func run(ctx context.Context, out io.Writer, o options) (err error) {
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	repo, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	work := o.work
	if work == "" {
		work, err = os.MkdirTemp("", "teleport-update-demo-")
		if err != nil {
			return fmt.Errorf("create the demo directory: %w", err)
		}
	}
	d := &demo{out: out, repo: repo, work: work}
	defer func() {
		d.cleanup()
		if o.keep {
			d.printf("\nKept the demo's files in %s.\n", work)
			return
		}
		if rmErr := os.RemoveAll(work); rmErr != nil && err == nil {
			err = fmt.Errorf("remove the demo directory: %w", rmErr)
		}
	}()
	return d.play(ctx)
}

// shorten replaces the demo directory in s with $DEMO, to keep lines short,
// and the enrollment tokens with placeholders.
func (d *demo) shorten(s string) string {
	s = strings.ReplaceAll(s, d.work, "$DEMO")
	for _, t := range []struct{ secret, name string }{{d.token, "$TOKEN"}, {d.adminToken, "$ADMIN_TOKEN"}} {
		if t.secret != "" {
			s = strings.ReplaceAll(s, t.secret, t.name)
		}
	}
	return s
}

func (d *demo) printf(format string, args ...any) {
	fmt.Fprintf(d.out, format, args...)
}

// stepf starts a numbered step.
func (d *demo) stepf(format string, args ...any) {
	d.step++
	d.printf("\n== Step %d: %s\n", d.step, fmt.Sprintf(format, args...))
}

// sayf explains what just happened, in plain words.
func (d *demo) sayf(format string, args ...any) {
	d.printf("  -> %s\n", fmt.Sprintf(format, args...))
}
