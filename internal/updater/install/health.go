package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// HealthOptions tune CheckUnitHealth. Zero fields take the defaults.
type HealthOptions struct {
	// Window is how long the unit must stay up unchanged.
	Window time.Duration
	// Max bounds the whole check; it is raised to Window if smaller.
	Max time.Duration
	// Poll is the interval between state queries.
	Poll time.Duration
}

// Health check defaults: the agent must stay up 10 s in a row, and gets
// at most 60 s to get there.
const (
	DefaultHealthWindow = 10 * time.Second
	DefaultHealthMax    = 60 * time.Second
	DefaultHealthPoll   = 500 * time.Millisecond

	// execCheckTimeout bounds `teleport version`.
	execCheckTimeout = 10 * time.Second
	// maxExecOutput is how much of its output CheckExec reads.
	maxExecOutput = 64 << 10
)

func (o HealthOptions) withDefaults() HealthOptions {
	if o.Window <= 0 {
		o.Window = DefaultHealthWindow
	}
	if o.Max <= 0 {
		o.Max = DefaultHealthMax
	}
	if o.Max < o.Window {
		o.Max = o.Window
	}
	if o.Poll <= 0 {
		o.Poll = DefaultHealthPoll
	}
	return o
}

// CheckUnitHealth watches unit (just restarted by the caller) until it has
// been active with the same non-zero MainPID and an unchanged NRestarts for
// Window, and returns nil. It returns ErrUnhealthy, naming what it saw, as
// soon as the unit is failed, inactive, deactivating or waiting for an
// automatic restart, when NRestarts grows or MainPID changes, or when Max
// passes without a stable Window. A state query error is returned as is;
// ctx ending returns ctx's error.
func CheckUnitHealth(ctx context.Context, sd Systemd, unit string, o HealthOptions) error {
	o = o.withDefaults()
	deadline := time.Now().Add(o.Max)
	ticker := time.NewTicker(o.Poll)
	defer ticker.Stop()

	var (
		first       = true
		base        UnitState
		stablePID   uint32
		stableSince time.Time
		last        UnitState
	)
	for {
		st, err := sd.State(ctx, unit)
		if err != nil {
			return fmt.Errorf("health check of %s: %w", unit, err)
		}
		now := time.Now()
		if first {
			base, first = st, false
		}
		last = st
		switch {
		case st.ActiveState == "failed" || st.ActiveState == "inactive" || st.ActiveState == "deactivating":
			return fmt.Errorf("health check of %s: %w: unit is %s (%s)", unit, ErrUnhealthy, st.ActiveState, st.SubState)
		case st.SubState == "auto-restart":
			return fmt.Errorf("health check of %s: %w: main process exited, unit is waiting to restart (%s)", unit, ErrUnhealthy, st.ActiveState)
		case st.NRestarts != base.NRestarts:
			return fmt.Errorf("health check of %s: %w: restarted by systemd (NRestarts %d -> %d)", unit, ErrUnhealthy, base.NRestarts, st.NRestarts)
		case stablePID != 0 && st.MainPID != 0 && st.MainPID != stablePID:
			return fmt.Errorf("health check of %s: %w: main PID changed from %d to %d", unit, ErrUnhealthy, stablePID, st.MainPID)
		case st.ActiveState == "active" && st.MainPID != 0:
			if stablePID == 0 {
				stablePID, stableSince = st.MainPID, now
			}
			if now.Sub(stableSince) >= o.Window {
				return nil
			}
		}
		if now.After(deadline) {
			return fmt.Errorf("health check of %s: %w: not stable for %s within %s; last seen %s (%s), main PID %d",
				unit, ErrUnhealthy, o.Window, o.Max, last.ActiveState, last.SubState, last.MainPID)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("health check of %s: %w", unit, ctx.Err())
		case <-ticker.C:
		}
	}
}

// CheckExec runs `binary version` and checks that it exits 0 within 10 s
// and prints v<version> as a word (Teleport prints
// "Teleport v16.4.6 git:… go1.22"). Failures wrap ErrUnhealthy and quote
// the start of the output.
func CheckExec(ctx context.Context, binary, version string) error {
	ctx, cancel := context.WithTimeout(ctx, execCheckTimeout)
	defer cancel()
	var out *limitedBuffer
	var err error
	// A binary written moments ago can briefly fail with ETXTBSY when any
	// goroutine of this process forks while its write descriptor was open
	// (golang.org/issue/22315); that is not the binary's fault, so retry.
	for attempt := 0; ; attempt++ {
		cmd := exec.CommandContext(ctx, binary, "version")
		out = &limitedBuffer{max: maxExecOutput}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.WaitDelay = time.Second // do not wait for grandchildren holding the pipe
		err = cmd.Run()
		if !errors.Is(err, syscall.ETXTBSY) || attempt == 4 || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
	}
	excerpt := strings.TrimSpace(out.String())
	if len(excerpt) > 200 {
		excerpt = excerpt[:200] + "…"
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("check %s version: %w: no answer within %s", binary, ErrUnhealthy, execCheckTimeout)
	}
	if err != nil {
		return fmt.Errorf("check %s version: %w: %v; output %q", binary, ErrUnhealthy, err, excerpt)
	}
	want := "v" + version
	for _, w := range strings.Fields(out.String()) {
		if w == want {
			return nil
		}
	}
	return fmt.Errorf("check %s version: %w: output does not contain %q: %q", binary, ErrUnhealthy, want, excerpt)
}

// limitedBuffer keeps the first max bytes written and drops the rest.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
