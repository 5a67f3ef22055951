package install

import (
	"compress/gzip"
	"io"
)

// newGzipReader returns the decompressor used by Extract.
func newGzipReader(r io.Reader) (io.ReadCloser, error) {
	return gzip.NewReader(r)
}
