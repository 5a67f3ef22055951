package install

import (
	"context"
	"errors"
	"fmt"
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

func TestWaitJob(t *testing.T) {
	t.Parallel()
	callErr := errors.New("access denied")
	tests := []struct {
		name    string
		result  string // sent on the channel; "" sends nothing
		callErr error
		wantErr error
	}{
		{"done", "done", nil, nil},
		{"failed", "failed", nil, ErrJobFailed},
		{"dependency", "dependency", nil, ErrJobFailed},
		{"call error", "", callErr, callErr},
		{"never finishes", "", nil, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			job := func(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
				if name != "teleport.service" || mode != "replace" {
					t.Errorf("job(%q, %q)", name, mode)
				}
				if tc.callErr != nil {
					return 0, tc.callErr
				}
				if tc.result != "" {
					ch <- tc.result // must not block: the channel is buffered
				} else {
					cancel()
				}
				return 1, nil
			}
			err := waitJob(ctx, "restart", "teleport.service", job)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("waitJob() = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestDBusErrorName(t *testing.T) {
	t.Parallel()
	const noSuchUnit = "org.freedesktop.systemd1.NoSuchUnit"
	for _, tc := range []struct {
		err  error
		want string
	}{
		{godbus.Error{Name: noSuchUnit}, noSuchUnit},
		{&godbus.Error{Name: noSuchUnit}, noSuchUnit},
		{errors.New("other"), ""},
		{nil, ""},
	} {
		if got := dbusErrorName(tc.err); got != tc.want {
			t.Errorf("dbusErrorName(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestShuttingDown(t *testing.T) {
	job := func(id uint32) []any {
		return []any{id, godbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))}
	}
	for _, tc := range []struct {
		name  string
		props map[string]any
		want  bool
	}{
		{"running system", map[string]any{"ActiveState": "inactive", "Job": job(0)}, false},
		{"shutdown queued", map[string]any{"ActiveState": "inactive", "Job": job(4121)}, true},
		{"shutdown reached", map[string]any{"ActiveState": "active", "Job": job(0)}, true},
		{"shutdown starting", map[string]any{"ActiveState": "activating"}, true},
		{"no properties", map[string]any{}, false},
		{"odd job value", map[string]any{"ActiveState": "inactive", "Job": "x"}, false},
	} {
		if got := shuttingDown(tc.props); got != tc.want {
			t.Errorf("%s: shuttingDown = %v, want %v", tc.name, got, tc.want)
		}
	}
}
