package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	root := t.TempDir()
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"instal"}, exitUsage, "unknown command"},
		{[]string{"status", "extra"}, exitUsage, "unknown command"},
		{[]string{"update", "--bogus"}, exitUsage, "unknown flag"},
		{[]string{"install"}, exitUsage, "--proxy HOST[:PORT] is required"},
		{[]string{"install", "--proxy", "https://proxy/x"}, exitFailure, "is not HOST[:PORT]"},
		{[]string{"install", "--proxy", "proxy:443", "--base-url", "http://cdn"}, exitFailure, "--base-url"},
		{[]string{"update"}, exitFailure, "not installed"},
		{[]string{"status"}, exitFailure, "not installed"},
		{[]string{"rollback"}, exitFailure, "not installed"},
		{[]string{"census", "--disable", "--enable"}, exitUsage, "exclusive"},
		{[]string{"version"}, exitOK, ""},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), append([]string{"--root", root}, tc.args...), &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", code, tc.code, errb.String())
			}
			if tc.msg != "" && !strings.Contains(errb.String(), tc.msg) {
				t.Fatalf("stderr %q does not mention %q", errb.String(), tc.msg)
			}
		})
	}
	// Nothing was created on a host that was never installed.
	if _, err := os.Stat(filepath.Join(root, "var/lib/teleport/update.yaml")); !os.IsNotExist(err) {
		t.Fatalf("update.yaml created: %v", err)
	}
}
