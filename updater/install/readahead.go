package install

import (
	"io"
	"sync"
)

// Read-ahead sizing: a few chunks in flight let decompression (and the
// SHA-256 of the compressed bytes) run on one core while the tar parser
// writes files on another, like `tar -xzf` with its gzip child process.
const (
	readAheadChunk  = 256 << 10
	readAheadChunks = 4
)

// readAhead reads src in a goroutine into a small ring of buffers. Close
// stops the goroutine and waits for it, after which src is no longer used.
type readAhead struct {
	full chan []byte
	free chan []byte
	done chan struct{}
	wg   sync.WaitGroup
	err  error // src's terminal error (io.EOF at the end); set before full closes

	cur    []byte // unread part of the chunk being consumed
	curBuf []byte // that chunk's buffer, returned to free when used up
	once   sync.Once
}

func newReadAhead(src io.Reader) *readAhead {
	ra := &readAhead{
		full: make(chan []byte, readAheadChunks),
		free: make(chan []byte, readAheadChunks),
		done: make(chan struct{}),
	}
	for range readAheadChunks {
		ra.free <- make([]byte, readAheadChunk)
	}
	ra.wg.Add(1)
	go ra.fill(src)
	return ra
}

func (ra *readAhead) fill(src io.Reader) {
	defer ra.wg.Done()
	defer close(ra.full)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.done:
			return
		}
		n, err := 0, error(nil)
		for n < len(buf) && err == nil {
			var m int
			m, err = src.Read(buf[n:])
			n += m
		}
		if n > 0 {
			select {
			case ra.full <- buf[:n]:
			case <-ra.done:
				return
			}
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

// Read implements io.Reader for the one consumer.
func (ra *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(ra.cur) == 0 {
		if ra.curBuf != nil {
			ra.free <- ra.curBuf[:cap(ra.curBuf)] // never blocks: at most readAheadChunks buffers exist
			ra.curBuf = nil
		}
		chunk, ok := <-ra.full
		if !ok {
			return 0, ra.err // happens-after the write: full was closed after it
		}
		ra.cur, ra.curBuf = chunk, chunk
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the read-ahead goroutine and waits until it no longer
// touches src.
func (ra *readAhead) Close() error {
	ra.once.Do(func() { close(ra.done) })
	ra.wg.Wait()
	return nil
}
