package install

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gravitational/teleport-update/internal/capread"
)

// needrestartRel is the drop-in that keeps needrestart (Debian's and
// Ubuntu's "restart services after a library upgrade" hook) from
// restarting the agent after a package upgrade: the agent's binary is not
// a package's, and only the updater restarts it, in its window, with a
// health check.
const needrestartRel = "etc/needrestart/conf.d/teleport-update.conf"

// needrestartConf is the drop-in's text. needrestart reads every *.conf of
// conf.d as Perl after its own needrestart.conf; override_rc maps a regular
// expression over unit names to 0 (never restart) or 1.
var needrestartConf = []byte(`# Managed by teleport-update: the agent is restarted by teleport-update only.
$nrconf{override_rc}{qr(^teleport\.service$)} = 0;
`)

// NeedrestartPath is the needrestart drop-in under the root.
func (t *Tree) NeedrestartPath() string { return t.path(needrestartRel) }

// WriteNeedrestart writes the needrestart drop-in (0644, its directories
// 0755), unless it already holds the same text. It is written whether or
// not needrestart is installed yet, so that installing it later finds it.
func (t *Tree) WriteNeedrestart() error {
	p := t.NeedrestartPath()
	if cur, err := capread.File(p, 4096); err == nil && bytes.Equal(cur, needrestartConf) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("writing the needrestart drop-in: %w", err)
	}
	if err := WriteFileAtomic(p, needrestartConf, 0o644); err != nil {
		return fmt.Errorf("writing the needrestart drop-in: %w", err)
	}
	return nil
}

// RemoveNeedrestart removes the needrestart drop-in; removed says it was
// there. Its directories stay: needrestart owns them.
func (t *Tree) RemoveNeedrestart() (removed bool, err error) {
	err = os.Remove(t.NeedrestartPath())
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("removing the needrestart drop-in: %w", err)
	}
	return true, nil
}
