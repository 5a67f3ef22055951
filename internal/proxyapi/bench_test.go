package proxyapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gravitational/teleport-update/api"
)

// nullWriter is a ResponseWriter that discards everything.
type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nullWriter) WriteHeader(int)             {}

// BenchmarkFindHandler measures the find handler alone (no TLS, no
// network): routing, query validation, cache lookup, metrics.
func BenchmarkFindHandler(b *testing.B) {
	e := newEnv(b, func(c *Config) {
		// Production logging: info level, successful finds not logged.
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	h := e.s.Handler()
	req := httptest.NewRequest(http.MethodGet, api.FindPath+"?group=staging&host=node-1", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &nullWriter{h: http.Header{}}
		for pb.Next() {
			h.ServeHTTP(w, req)
		}
	})
}
