package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// timer is one time.After call the agent made; the test fires it by hand.
type timer struct {
	d    time.Duration
	fire chan time.Time
}

// fakeClock replaces time.After: each call is reported on requested.
type fakeClock struct {
	requested chan timer
}

func newFakeClock() *fakeClock {
	return &fakeClock{requested: make(chan timer, 100)}
}

func (f *fakeClock) after(d time.Duration) <-chan time.Time {
	tm := timer{d: d, fire: make(chan time.Time, 1)}
	f.requested <- tm
	return tm.fire
}

func TestVersionInEveryMode(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"ok", "exit", "crash", "bogus"} {
		var out, errOut bytes.Buffer
		a := agent{version: "1.2.3", mode: mode, crashAfter: "5s", after: time.After}
		if code := a.run(context.Background(), []string{"version"}, &out, &errOut); code != exitOK {
			t.Errorf("mode %s: version exited %d, want 0 (stderr %q)", mode, code, errOut.String())
		}
		if got, want := out.String(), "Teleport v1.2.3 git:test go1.26\n"; got != want {
			t.Errorf("mode %s: version printed %q, want %q", mode, got, want)
		}
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		mode       string
		crashAfter string
		// act drives the running agent: cancel stops it, clock fires timers.
		act      func(cancel context.CancelFunc, clock *fakeClock)
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{
			name: "ok runs until stopped", mode: "ok",
			act: func(cancel context.CancelFunc, clock *fakeClock) {
				first := <-clock.requested
				if first.d != heartbeat {
					panic("first timer is not the heartbeat: " + first.d.String())
				}
				first.fire <- time.Time{}
				<-clock.requested // second heartbeat timer: the loop went round
				cancel()
			},
			wantCode: exitOK, wantOut: "Teleport v2.0.0 running.",
		},
		{name: "exit fails at start", mode: "exit", wantCode: exitFailed, wantErr: "failed to start"},
		{
			name: "crash fails after the delay", mode: "crash", crashAfter: "5s",
			act: func(_ context.CancelFunc, clock *fakeClock) {
				crash := <-clock.requested
				if crash.d != 5*time.Second {
					panic("crash timer is not 5s: " + crash.d.String())
				}
				crash.fire <- time.Time{}
			},
			wantCode: exitFailed, wantErr: "crashed",
		},
		{name: "crash stopped before the delay exits 0", mode: "crash", crashAfter: "1h",
			act:      func(cancel context.CancelFunc, clock *fakeClock) { <-clock.requested; cancel() },
			wantCode: exitOK, wantOut: "stopping"},
		{name: "bad crashAfter", mode: "crash", crashAfter: "soon", wantCode: exitBadBuild, wantErr: "bad crashAfter"},
		{name: "bad mode", mode: "sideways", wantCode: exitBadBuild, wantErr: "bad mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			clock := newFakeClock()
			a := agent{version: "2.0.0", mode: tt.mode, crashAfter: tt.crashAfter, after: clock.after}
			var out, errOut bytes.Buffer
			done := make(chan int)
			go func() { done <- a.run(ctx, []string{"start", "--config", "/etc/teleport.yaml"}, &out, &errOut) }()
			if tt.act != nil {
				tt.act(cancel, clock)
			}
			code := <-done
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout %q does not contain %q", out.String(), tt.wantOut)
			}
			if !strings.Contains(errOut.String(), tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", errOut.String(), tt.wantErr)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"frobnicate"}} {
		var out, errOut bytes.Buffer
		a := agent{version: "1.0.0", mode: "ok", after: time.After}
		if code := a.run(context.Background(), args, &out, &errOut); code != exitUsage {
			t.Errorf("args %q: exit %d, want %d", args, code, exitUsage)
		}
	}
}
