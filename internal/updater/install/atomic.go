package install

import (
	"os"

	"github.com/gravitational/teleport-update/internal/atomicfile"
)

// WriteFileAtomic replaces path with data so that a reader (or a crash) sees
// either the old or the new content, never a mix: it is atomicfile.WriteFile
// (temporary file, fsync, rename, directory fsync).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.WriteFile(path, data, perm)
}

// syncDir fsyncs a directory so that renames and creations in it are
// durable (atomicfile.SyncDir).
func syncDir(dir string) error { return atomicfile.SyncDir(dir) }
