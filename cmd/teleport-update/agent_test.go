package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater"
)

// explain only formats what updater.Classify says.
func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		err     error
		running string
		want    string
	}{
		{fmt.Errorf("%w: down", updater.ErrProxy), "1.0.0", "proxy: down; the agent keeps running 1.0.0; the timer will retry"},
		{fmt.Errorf("%w: x", updater.ErrDowngrade), "1.0.0", "downgrade refused: x"},
		{context.Canceled, "", "interrupted (context canceled); the agent keeps running nothing"},
		{errors.New("other"), "1.0.0", "other"},
	} {
		got := explain(tc.err, tc.running)
		if got.Error() != tc.want || !errors.Is(got, tc.err) {
			t.Errorf("explain(%v, %q) = %q, want %q wrapping the error", tc.err, tc.running, got, tc.want)
		}
	}
}
