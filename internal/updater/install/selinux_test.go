package install

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeTools records the commands Label runs and answers as told.
type fakeTools struct {
	missing []string          // programs LookPath does not find
	fail    map[string]string // program -> output of a failed run
	ran     []string
}

func (f *fakeTools) selinux(enforce string) SELinux {
	return SELinux{
		LookPath: func(name string) (string, error) {
			if slices.Contains(f.missing, name) {
				return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
			}
			return "/usr/sbin/" + name, nil
		},
		Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			f.ran = append(f.ran, strings.Join(append([]string{name}, args...), " "))
			if out, ok := f.fail[filepath.Base(name)]; ok {
				return []byte(out), errors.New("exit status 1")
			}
			return nil, nil
		},
	}
}

// TestSELinuxLabel: the decision to label, and the exact commands, with
// the probe read from <root>/sys/fs/selinux/enforce.
func TestSELinuxLabel(t *testing.T) {
	t.Parallel()
	const v = "1.2.3"
	semanage := "/usr/sbin/semanage fcontext -a -t bin_t /var/lib/teleport-update/versions/[^/]+/bin(/.*)?"
	tests := []struct {
		name     string
		enforce  string // content of the probe file; "" for none
		tools    fakeTools
		labelled bool
		wantErr  string // substring; "" for no error
		wantRan  int
	}{
		{name: "no selinux", enforce: "", wantRan: 0},
		{name: "permissive", enforce: "0\n", wantRan: 0},
		{name: "enforcing", enforce: "1\n", labelled: true, wantRan: 2},
		{name: "rule already there", enforce: "1", tools: fakeTools{fail: map[string]string{"semanage": "ValueError: File context for /var/lib/teleport-update/versions/[^/]+/bin(/.*)? already defined"}}, labelled: true, wantRan: 2},
		{name: "no semanage", enforce: "1", tools: fakeTools{missing: []string{"semanage"}}, wantErr: "install policycoreutils and run: semanage fcontext -a -t bin_t '/var/lib/teleport-update/versions/[^/]+/bin(/.*)?' && restorecon -R /var/lib/teleport-update/versions"},
		{name: "semanage fails", enforce: "1", tools: fakeTools{fail: map[string]string{"semanage": "libsemanage: could not lock"}}, wantErr: "could not lock", wantRan: 1},
		{name: "restorecon fails", enforce: "1", tools: fakeTools{fail: map[string]string{"restorecon": "no such file"}}, wantErr: "restorecon", wantRan: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			if tc.enforce != "" {
				mustWrite(t, filepath.Join(root, selinuxEnforceRel), tc.enforce)
			}
			tools := tc.tools
			labelled, err := tools.selinux(tc.enforce).Label(context.Background(), root, v)
			if labelled != tc.labelled {
				t.Errorf("labelled = %v, want %v", labelled, tc.labelled)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (!errors.Is(err, ErrSELinux) || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Label() = %v, want error containing %q", err, tc.wantErr)
			}
			if len(tools.ran) != tc.wantRan {
				t.Fatalf("ran %q, want %d commands", tools.ran, tc.wantRan)
			}
			if tc.wantRan >= 1 && tools.ran[0] != semanage {
				t.Errorf("first command %q, want %q", tools.ran[0], semanage)
			}
			if want := "/usr/sbin/restorecon -R " + filepath.Join(root, "var/lib/teleport-update/versions", v, "bin"); tc.wantRan == 2 && tools.ran[1] != want {
				t.Errorf("second command %q, want %q", tools.ran[1], want)
			}
		})
	}
}

// TestSELinuxProbeIsUnderRoot: without an injected probe, the root's
// /sys/fs/selinux/enforce decides (no SELinux on this machine's real /sys
// is needed to test it).
func TestSELinuxProbeIsUnderRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys/fs/selinux"), 0o755); err != nil {
		t.Fatal(err)
	}
	var s SELinux
	if s.enforcing(root) {
		t.Fatal("enforcing without the probe file")
	}
	mustWrite(t, filepath.Join(root, selinuxEnforceRel), "1\n")
	if !s.enforcing(root) {
		t.Fatal("not enforcing with the probe file at 1")
	}
}
