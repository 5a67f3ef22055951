package scripts

// install.sh run as root by a user whose TMPDIR they own themselves (sudo
// TMPDIR=$HOME/tmp, or sudo -E with pam_tmpdir). That user, unprivileged,
// races the script: the moment the work directory appears in their TMPDIR
// they move it aside and put their own in its place, then swap
// bin/teleport-update for their program right after tar wrote it, between
// the verification and the exec. The script must never run their program.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The racer is this test binary run as an unprivileged user; these
// variables tell TestMain to run it.
const (
	racerEnv        = "INSTALL_SH_RACER"         // "1": be the racer
	racerDirsEnv    = "INSTALL_SH_RACER_DIRS"    // directories to watch, ":"-separated
	racerPayloadEnv = "INSTALL_SH_RACER_PAYLOAD" // the program to get run as root
)

// unprivileged is the uid and gid the racer runs as.
const unprivileged = 65534

// workDirPrefix is how install.sh names its work directory.
const workDirPrefix = "teleport-update-install."

// racerLog lines, parsed by the test.
const (
	racerReady       = "ready"
	racerSwappedDir  = "swapped-dir"    // the work directory is now the racer's
	racerSwappedBin  = "swapped-binary" // bin/teleport-update is now the payload
	racerRefused     = "refused"        // moving a work directory aside failed
	racerPayloadName = ".payload"
)

// payloadScript is what the racer wants run as root: it proves it ran as
// root by writing into a directory only root can write to.
func payloadScript(marker string) string {
	return fmt.Sprintf("#!/bin/sh\nid -u >%q\n", marker)
}

// runRacer is the racer's main: it watches directories with inotify and
// attacks every work directory of install.sh that appears in them. It runs
// until it is killed.
func runRacer() int {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		fmt.Println("inotify:", err)
		return 1
	}
	r := &racer{fd: fd, dirs: map[int32]string{}, payload: os.Getenv(racerPayloadEnv)}
	for _, dir := range strings.Split(os.Getenv(racerDirsEnv), ":") {
		if err := r.watch(dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
			fmt.Println("watch:", err)
			return 1
		}
	}
	fmt.Println(racerReady)
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			fmt.Println("read:", err)
			return 1
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			r.event(r.dirs[ev.Wd], name)
		}
	}
}

type racer struct {
	fd      int
	dirs    map[int32]string // watch descriptor → directory
	payload string
}

func (r *racer) watch(dir string, mask uint32) error {
	wd, err := unix.InotifyAddWatch(r.fd, dir, mask)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	r.dirs[int32(wd)] = dir
	return nil
}

// event reacts to name appearing in dir.
func (r *racer) event(dir, name string) {
	switch {
	case strings.HasPrefix(name, workDirPrefix) && !strings.HasSuffix(name, ".stolen"):
		r.stealWorkDir(dir, name)
	case name == "teleport-update" && filepath.Base(dir) == "bin":
		payload := filepath.Join(filepath.Dir(dir), racerPayloadName)
		if err := os.Rename(payload, filepath.Join(dir, name)); err != nil {
			fmt.Println("swap binary:", err)
			return
		}
		fmt.Println(racerSwappedBin, dir)
	}
}

// stealWorkDir moves root's work directory dir/name aside, or when it
// cannot, the directory holding it (if the racer owns that one's parent),
// and puts a work directory of its own in its place, holding pkg/bin
// (where tar will write the verified teleport-update) and the payload.
func (r *racer) stealWorkDir(dir, name string) {
	work := filepath.Join(dir, name)
	if err := os.Rename(work, work+".stolen"); err != nil {
		if !ownParent(dir) {
			fmt.Println(racerRefused, work, err)
			return
		}
		if err2 := os.Rename(dir, dir+".stolen"); err2 != nil {
			fmt.Println(racerRefused, work, err, err2)
			return
		}
	}
	bin := filepath.Join(work, "pkg", "bin")
	if err := os.MkdirAll(bin, 0o777); err != nil {
		fmt.Println("mkdir:", err)
		return
	}
	for _, d := range []string{dir, work, filepath.Dir(bin), bin} {
		os.Chmod(d, 0o777)
	}
	if err := os.WriteFile(filepath.Join(work, "pkg", racerPayloadName), []byte(r.payload), 0o755); err != nil {
		fmt.Println("payload:", err)
		return
	}
	if err := r.watch(bin, unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO); err != nil {
		fmt.Println("watch:", err)
		return
	}
	fmt.Println(racerSwappedDir, work)
}

// ownParent reports whether the racer owns the directory holding dir.
func ownParent(dir string) bool {
	fi, err := os.Stat(filepath.Dir(dir))
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}

// racerSettle bounds how long the test waits for the racer to report on
// root's work directory after the script ended; it reports within
// milliseconds unless the machine is very busy.
const racerSettle = 30 * time.Second

// startRacer runs the racer as uid 65534 watching dirs, once it is ready.
// The function it returns waits until the racer reported on a work
// directory of install.sh (at most racerSettle), stops it and returns
// everything it said.
func startRacer(t *testing.T, exe, payload string, dirs ...string) func() string {
	t.Helper()
	cmd := exec.Command("setpriv", fmt.Sprintf("--reuid=%d", unprivileged), fmt.Sprintf("--regid=%d", unprivileged),
		"--clear-groups", "--", exe)
	cmd.Env = []string{racerEnv + "=1", racerDirsEnv + "=" + strings.Join(dirs, ":"), racerPayloadEnv + "=" + payload}
	cmd.Dir = "/"
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the racer: %v", err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	if first, ok := <-lines; !ok || first != racerReady {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the racer did not start: %q\n%s", first, stderr.String())
	}
	var log []string
	stopped := false
	stop := func() string {
		if stopped {
			return strings.Join(log, "\n")
		}
		stopped = true
		deadline := time.After(racerSettle)
	wait:
		for !slices.ContainsFunc(log, func(l string) bool { return strings.Contains(l, workDirPrefix) }) {
			select {
			case l, ok := <-lines:
				if !ok {
					break wait
				}
				log = append(log, l)
			case <-deadline:
				break wait
			}
		}
		cmd.Process.Kill()
		for l := range lines {
			log = append(log, l)
		}
		cmd.Wait()
		if stderr.Len() > 0 {
			log = append(log, stderr.String())
		}
		return strings.Join(log, "\n")
	}
	t.Cleanup(func() { stop() })
	return stop
}

// raceBase makes a root-owned, world-searchable directory the
// unprivileged user can reach, holding the racer binary. It returns the
// directory and the racer's path.
func raceBase(t *testing.T) (base, racerExe string) {
	t.Helper()
	base, err := os.MkdirTemp("", "install-sh-race-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	racerExe = filepath.Join(base, "racer")
	if err := os.WriteFile(racerExe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return base, racerExe
}

// mkdirOwned creates dir with mode, owned by uid (and gid uid).
func mkdirOwned(t *testing.T, dir string, mode os.FileMode, uid int) string {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	// Chmod after Mkdir: the umask must not take the bits the test sets.
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	return dir
}

func needRootAndSetpriv(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPING: the attack on install.sh needs root (it runs the script as root and the racer as uid 65534)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("SKIPPING: setpriv (util-linux) is not installed")
	}
}

// whereUpdaterRan publishes a fake updater that also records the path it
// was run from.
const whereUpdaterRan = `#!/bin/sh
printf 'exe=%s\n' "$0" >>"$FAKE_RECORD"
`

func TestInstallScriptAsRootUnderRace(t *testing.T) {
	needRootAndSetpriv(t)
	arch := hostArch(t)
	tests := []struct {
		name string
		// tmpdir makes the TMPDIR install.sh is given under base.
		tmpdir func(t *testing.T, base string) string
		// wantIgnored is why the script must refuse that TMPDIR and work in
		// /tmp instead; empty: it must work in that TMPDIR.
		wantIgnored string
	}{
		{
			name: "TMPDIR owned by the user",
			tmpdir: func(t *testing.T, base string) string {
				return mkdirOwned(t, filepath.Join(base, "tmp"), 0o755, unprivileged)
			},
			wantIgnored: "tmp is owned by uid 65534, not root",
		},
		{
			name: "root's TMPDIR in a directory the user owns",
			tmpdir: func(t *testing.T, base string) string {
				home := mkdirOwned(t, filepath.Join(base, "home"), 0o755, unprivileged)
				return mkdirOwned(t, filepath.Join(home, "tmp"), 0o755, 0)
			},
			wantIgnored: "home is owned by uid 65534, not root",
		},
		{
			name:        "TMPDIR anyone can write, without the sticky bit",
			tmpdir:      func(t *testing.T, base string) string { return mkdirOwned(t, filepath.Join(base, "shared"), 0o777, 0) },
			wantIgnored: "shared is writable by users other than root (mode 777)",
		},
		{
			name: "TMPDIR owned by the user, reached through a link",
			tmpdir: func(t *testing.T, base string) string {
				real := mkdirOwned(t, filepath.Join(base, "tmp"), 0o755, unprivileged)
				link := filepath.Join(base, "link")
				if err := os.Symlink(real, link); err != nil {
					t.Fatal(err)
				}
				return link
			},
			wantIgnored: "tmp is owned by uid 65534, not root",
		},
		{
			name: "root-owned sticky TMPDIR, like /tmp",
			tmpdir: func(t *testing.T, base string) string {
				return mkdirOwned(t, filepath.Join(base, "sticky"), 0o777|os.ModeSticky, 0)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, racerExe := raceBase(t)
			tmpdir := tt.tmpdir(t, base)
			realTmp, err := filepath.EvalSymlinks(tmpdir)
			if err != nil {
				t.Fatal(err)
			}
			marker := filepath.Join(t.TempDir(), "pwned") // only root can write there
			// The racer also attacks where root works instead: that is safe
			// only because the sticky bit stops the move.
			stop := startRacer(t, racerExe, payloadScript(marker), realTmp, rootFallbackTmp)

			c := newCDN(t)
			s := newSigner(t)
			tarball := filepath.Join(c.Dir(), updaterTarballName(testVersion, arch))
			writeTarball(t, tarball, map[string][]byte{"bin/teleport-update": []byte(whereUpdaterRan + fakeUpdater[len("#!/bin/sh\n"):])})
			s.sign(t, tarball)
			script := render(t, scriptData{ProxyAddr: "proxy.example.com:3080", Version: testVersion, BaseURL: c.URL(), PublicKey: s.publicPEM})

			res := runScript(t, runOpts{script: script, caFile: writeCAFile(t, c.Server), env: []string{"TMPDIR=" + tmpdir}})
			log := stop()
			t.Logf("install.sh:\n%s\nracer:\n%s", res.stderr, log)

			if data, err := os.ReadFile(marker); err == nil {
				t.Fatalf("the unprivileged racer got its program run as uid %s", bytes.TrimSpace(data))
			}
			if strings.Contains(log, racerSwappedBin) || strings.Contains(log, racerSwappedDir) {
				t.Fatalf("the racer took over root's work directory")
			}
			if res.exitCode != 0 {
				t.Fatalf("install.sh exited %d", res.exitCode)
			}
			workedIn := realTmp
			if tt.wantIgnored != "" {
				workedIn = rootFallbackTmp
				if !strings.Contains(res.stderr, "WARNING: ignoring TMPDIR="+tmpdir+": ") || !strings.Contains(res.stderr, tt.wantIgnored) {
					t.Errorf("install.sh did not say it ignored TMPDIR because %s:\n%s", tt.wantIgnored, res.stderr)
				}
				if entries, _ := os.ReadDir(realTmp); len(entries) != 0 {
					t.Errorf("install.sh used the TMPDIR it should have ignored: %v", entries)
				}
			} else if strings.Contains(res.stderr, "ignoring TMPDIR") {
				t.Errorf("install.sh ignored a root-only TMPDIR:\n%s", res.stderr)
			}
			if len(res.record) == 0 || !strings.HasPrefix(res.record[0], "exe="+workedIn+"/"+workDirPrefix) {
				t.Errorf("the updater did not run from root's work directory in %s: %q", workedIn, res.record)
			}
			// The racer saw root's work directory and could not move it (or
			// the script had already removed it).
			if !strings.Contains(log, racerRefused+" "+workedIn+"/"+workDirPrefix) {
				t.Errorf("the racer never tried root's work directory in %s", workedIn)
			} else if !strings.Contains(log, syscall.EPERM.Error()) && !strings.Contains(log, syscall.ENOENT.Error()) {
				t.Errorf("moving root's work directory failed for another reason than the sticky bit:\n%s", log)
			}
		})
	}
}

// rootFallbackTmp is where install.sh works as root when TMPDIR is not
// root-only.
const rootFallbackTmp = "/tmp"
