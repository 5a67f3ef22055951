package readahead

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"
)

// The sizes install and download use.
const (
	testChunk  = 256 << 10
	testChunks = 4
)

func TestReader(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3*testChunk+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	boom := errors.New("corrupt input")
	tests := []struct {
		name    string
		src     io.Reader
		want    []byte
		wantErr error
	}{
		{"whole", bytes.NewReader(data), data, nil},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(data[:5000])), data[:5000], nil},
		{"empty", bytes.NewReader(nil), nil, nil},
		{"error after data", io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), data, boom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ra := New(tc.src, testChunk, testChunks)
			defer ra.Close()
			got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(ra, 100)))
			if err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(ra)
			got = append(got, rest...)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("ReadAll error = %v, want %v", err, tc.wantErr)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("read %d bytes, want %d identical bytes", len(got), len(tc.want))
			}
		})
	}

	// Closing early stops the goroutine even when it waits for room.
	ra := New(bytes.NewReader(data), testChunk, testChunks)
	if _, err := io.ReadFull(ra, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNext(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789"), 1000) // 10000 bytes
	boom := errors.New("connection reset")
	tests := []struct {
		name       string
		src        io.Reader
		size       int
		wantChunks []int
		wantErr    error
	}{
		{"exact chunks", bytes.NewReader(data), 2500, []int{2500, 2500, 2500, 2500}, io.EOF},
		{"short last chunk", bytes.NewReader(data), 3000, []int{3000, 3000, 3000, 1000}, io.EOF},
		{"small reads fill a chunk", iotest.HalfReader(bytes.NewReader(data)), 4000, []int{4000, 4000, 2000}, io.EOF},
		{"empty", bytes.NewReader(nil), 100, nil, io.EOF},
		{"error after data", io.MultiReader(bytes.NewReader(data[:150]), iotest.ErrReader(boom)), 100, []int{100, 50}, boom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := New(tc.src, tc.size, 2)
			defer r.Close()
			var got []int
			var all []byte
			for {
				chunk, err := r.Next()
				if err != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Errorf("Next error = %v, want %v", err, tc.wantErr)
					}
					break
				}
				got = append(got, len(chunk))
				all = append(all, chunk...)
			}
			if !slices.Equal(got, tc.wantChunks) {
				t.Errorf("chunk sizes %v, want %v", got, tc.wantChunks)
			}
			if want := sum(tc.wantChunks); !bytes.Equal(all, data[:want]) {
				t.Errorf("chunks do not add up to the first %d bytes of the input", want)
			}
		})
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// A consumer that stops early and closes does not leave the goroutine
// reading: Close returns once the blocked read is unblocked.
func TestCloseWithReadBlocked(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	r := New(pr, 10, 2)
	go pw.Write([]byte("0123456789"))
	if chunk, err := r.Next(); err != nil || string(chunk) != "0123456789" {
		t.Fatalf("Next = %q, %v", chunk, err)
	}
	closed := make(chan struct{})
	go func() {
		r.Close()
		close(closed)
	}()
	pr.CloseWithError(errors.New("cancelled")) // what cancelling a request does to its body
	<-closed
}
