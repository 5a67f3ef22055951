package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/gravitational/teleport-update/api"
)

// The load generator stands in for agents on other machines, yet it shares
// this machine's CPUs with the proxy it measures. net/http's client spent
// about 80 µs of CPU per report (building the request, two goroutines per
// connection, header maps): a third of what the proxy spent. So each
// report is written out as HTTP/1.1 bytes before the phase starts, and
// each worker sends them on its own keep-alive TLS connections and reads
// the answers with net/http's response parser. The proxy sees the same
// requests either way: same headers, same bodies, same TLS.

// wireRequest is the whole HTTP/1.1 request of one census report.
func wireRequest(addr, token string, body []byte, sig http.Header) []byte {
	var b bytes.Buffer
	b.Grow(len(body) + 512)
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\n", api.CensusPath, addr)
	keys := make([]string, 0, len(sig))
	for k := range sig {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range sig[k] {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(&b, "Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		token, len(body))
	b.Write(body)
	return b.Bytes()
}

// wireConn is one worker's keep-alive connection to one proxy.
type wireConn struct {
	conn *tls.Conn
	r    *bufio.Reader
}

// dial opens the connection to p.
func (c *wireConn) dial(p *proxy) error {
	conn, err := tls.Dial("tcp", p.addr, p.tlsConfig)
	if err != nil {
		return err
	}
	if err := conn.Handshake(); err != nil {
		conn.Close()
		return err
	}
	c.conn, c.r = conn, bufio.NewReaderSize(conn, 4096)
	return nil
}

// send writes req on the worker's connection to p, dialing it again if
// the proxy closed it, and returns the status code of the answer.
func (c *wireConn) send(p *proxy, req []byte) (int, error) {
	if c.conn == nil {
		if err := c.dial(p); err != nil {
			return 0, err
		}
	}
	if _, err := c.conn.Write(req); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.Close {
		c.close()
	}
	return resp.StatusCode, err
}

func (c *wireConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// closeAll closes a worker's connections.
func closeAll(cs []wireConn) {
	for i := range cs {
		cs[i].close()
	}
}
