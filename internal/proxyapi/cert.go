package proxyapi

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/gravitational/teleport-update/internal/capread"
)

// maxTLSFileSize caps the certificate chain and key files.
const maxTLSFileSize = 1 << 20

// certLoader holds the TLS certificate served, reloadable.
type certLoader struct {
	certPath, keyPath string
	cur               atomic.Pointer[tls.Certificate]
}

// load reads the certificate chain and key, both regular files, and
// serves them from the next handshake on.
func (c *certLoader) load() error {
	certPEM, err := capread.RegularFile(c.certPath, maxTLSFileSize)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	keyPEM, err := capread.RegularFile(c.keyPath, maxTLSFileSize)
	if err != nil {
		return fmt.Errorf("load TLS key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", c.certPath, c.keyPath, err)
	}
	c.cur.Store(&cert)
	return nil
}

// reload is load on SIGHUP: a failure is logged, the previous certificate
// keeps serving.
func (c *certLoader) reload(log *slog.Logger) {
	if err := c.load(); err != nil {
		log.Error("TLS certificate not reloaded; the previous one keeps serving.", "error", err.Error())
		return
	}
	log.Info("TLS certificate reloaded on SIGHUP.", "cert", c.certPath)
}

// get is tls.Config.GetCertificate.
func (c *certLoader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }
