package install

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

func TestReadAhead(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3*readAheadChunk+12345)
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
			ra := newReadAhead(tc.src)
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
	ra := newReadAhead(bytes.NewReader(data))
	if _, err := io.ReadFull(ra, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
}
