package census

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gravitational/teleport-update/internal/capread"
)

// hostFS reads host files under the collection root. Under "/" it opens
// paths directly (hosts have absolute symlinks, /var/run -> /run); under any
// other root it goes through os.Root, so a fixture tree cannot make a probe
// read outside it.
type hostFS struct {
	root *os.Root // nil for "/" or when the root cannot be opened
	dir  string   // "/" for direct access, "" when nothing can be read
}

func openHostFS(root string) *hostFS {
	if filepath.Clean(root) == "/" {
		return &hostFS{dir: "/"}
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return &hostFS{}
	}
	return &hostFS{root: r}
}

func (h *hostFS) Close() {
	if h.root != nil {
		h.root.Close()
	}
}

// open opens name, a slash-separated path relative to the root.
func (h *hostFS) open(name string) (*os.File, error) {
	switch {
	case h.root != nil:
		return h.root.Open(filepath.FromSlash(name))
	case h.dir != "":
		return os.Open(filepath.Join(h.dir, filepath.FromSlash(name)))
	}
	return nil, fs.ErrNotExist
}

// exists reports whether name exists (following symlinks).
func (h *hostFS) exists(name string) bool {
	f, err := h.open(name)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// readFile reads name, refusing files larger than limit bytes.
func (h *hostFS) readFile(name string, limit int64) ([]byte, error) {
	f, err := h.open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := capread.All(f, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// readDir lists the entry names of directory name; nil when unreadable.
func (h *hostFS) readDir(name string) []string {
	f, err := h.open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil
	}
	return names
}
