// Package readahead reads a stream in its own goroutine into a small ring
// of buffers, so producing the bytes (decompressing, decrypting TLS) runs
// on one core while consuming them (parsing, hashing, writing) runs on
// another, like `tar -xzf` with its gzip child process.
package readahead

import (
	"io"
	"sync"
)

// Reader reads src ahead of its one consumer. The consumer takes whole
// chunks with Next or bytes with Read, not both at once; Close stops the
// goroutine and waits for it, after which src is no longer used.
type Reader struct {
	full chan []byte
	free chan []byte
	done chan struct{}
	wg   sync.WaitGroup
	err  error // src's terminal error (io.EOF at the end); set before full closes

	cur    []byte // unread part of the chunk being consumed by Read
	curBuf []byte // the chunk last handed out, returned to free on the next take
	once   sync.Once
}

// New starts reading src into n buffers of size bytes each. Each chunk is
// a buffer filled as far as src allows before its end or an error.
func New(src io.Reader, size, n int) *Reader {
	r := &Reader{
		full: make(chan []byte, n),
		free: make(chan []byte, n),
		done: make(chan struct{}),
	}
	for range n {
		r.free <- make([]byte, size)
	}
	r.wg.Add(1)
	go r.fill(src)
	return r
}

func (r *Reader) fill(src io.Reader) {
	defer r.wg.Done()
	defer close(r.full)
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.done:
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
			case r.full <- buf[:n]:
			case <-r.done:
				return
			}
		}
		if err != nil {
			r.err = err
			return
		}
	}
}

// Next returns the next chunk of src, valid until the next call to Next,
// Read or Close. After the last chunk it returns src's terminal error:
// io.EOF for a clean end.
func (r *Reader) Next() ([]byte, error) {
	if r.curBuf != nil {
		r.free <- r.curBuf[:cap(r.curBuf)] // never blocks: at most n buffers exist
		r.cur, r.curBuf = nil, nil
	}
	chunk, ok := <-r.full
	if !ok {
		return nil, r.err // happens-after the write: full was closed after it
	}
	r.curBuf = chunk
	return chunk, nil
}

// Read implements io.Reader for the one consumer.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.cur) == 0 {
		chunk, err := r.Next()
		if err != nil {
			return 0, err
		}
		r.cur = chunk
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the goroutine and waits until it no longer touches src. A
// goroutine blocked inside src.Read is waited for: the caller unblocks it
// first (closes src or cancels its context) when src may hang.
func (r *Reader) Close() error {
	r.once.Do(func() { close(r.done) })
	r.wg.Wait()
	return nil
}
