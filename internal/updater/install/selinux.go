package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// On SELinux hosts, files under /var/lib carry the type var_lib_t, which
// systemd (init_t) may not execute: a unit whose ExecStart is a version's
// bin/teleport would fail with "Permission denied". The fix is a file
// context rule that gives the versions' bin/ directories bin_t, applied
// with restorecon. An admin can do the same by hand (see the README).

// SELinuxFcontext is the file context rule for the versions' binaries, as
// `semanage fcontext -a -t bin_t` takes it.
const SELinuxFcontext = "/" + versionsRel + "/[^/]+/bin(/.*)?"

// selinuxType is the type systemd may execute.
const selinuxType = "bin_t"

// selinuxEnforceRel is the kernel's switch: "1" when SELinux is enforcing.
const selinuxEnforceRel = "sys/fs/selinux/enforce"

// ErrSELinux: SELinux is enforcing and the versions' binaries could not be
// labelled so that systemd may execute them.
var ErrSELinux = errors.New("cannot label binaries for SELinux")

// SELinux labels a version's bin/ so that systemd may execute it. The zero
// value probes the host; tests set the fields.
type SELinux struct {
	// Enforcing reports whether SELinux is enforcing; nil reads
	// <root>/sys/fs/selinux/enforce.
	Enforcing func(root string) bool
	// LookPath finds a program; nil is exec.LookPath.
	LookPath func(name string) (string, error)
	// Run runs a program and returns its combined output; nil runs it.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Label gives version v's bin/ under root the type bin_t when SELinux is
// enforcing: it adds the file context rule (once; a rule already there is
// fine) and runs restorecon on the directory. labelled is false when
// SELinux is not enforcing and nothing was done.
//
// Outcomes: nil; an error wrapping ErrSELinux when SELinux is enforcing
// and semanage or restorecon is missing or fails, saying what an admin
// must run.
func (s SELinux) Label(ctx context.Context, root, v string) (labelled bool, err error) {
	if !s.enforcing(root) {
		return false, nil
	}
	bin := filepath.Join(root, versionsRel, v, "bin")
	hint := fmt.Sprintf("run: semanage fcontext -a -t %s '%s' && restorecon -R %s", selinuxType, SELinuxFcontext, filepath.Join("/", versionsRel))
	semanage, err1 := s.lookPath("semanage")
	restorecon, err2 := s.lookPath("restorecon")
	if err := errors.Join(err1, err2); err != nil {
		return false, fmt.Errorf("%w: SELinux is enforcing but %v; install policycoreutils and %s", ErrSELinux, err, hint)
	}
	out, err := s.run(ctx, semanage, "fcontext", "-a", "-t", selinuxType, SELinuxFcontext)
	if err != nil && !bytes.Contains(out, []byte("already defined")) {
		return false, fmt.Errorf("%w: semanage fcontext: %v: %s; %s", ErrSELinux, err, strings.TrimSpace(string(out)), hint)
	}
	if out, err := s.run(ctx, restorecon, "-R", bin); err != nil {
		return false, fmt.Errorf("%w: restorecon %s: %v: %s; %s", ErrSELinux, bin, err, strings.TrimSpace(string(out)), hint)
	}
	return true, nil
}

func (s SELinux) enforcing(root string) bool {
	if s.Enforcing != nil {
		return s.Enforcing(root)
	}
	b, err := os.ReadFile(filepath.Join(root, selinuxEnforceRel))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func (s SELinux) lookPath(name string) (string, error) {
	if s.LookPath != nil {
		return s.LookPath(name)
	}
	return exec.LookPath(name)
}

func (s SELinux) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if s.Run != nil {
		return s.Run(ctx, name, args...)
	}
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}
