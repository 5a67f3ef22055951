package proxyapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/httpsig"
)

const productionToken = "production-token-0123456789abcdefghij"

// signedEnv is a server with a real census store.
func signedEnv(t *testing.T) (*testEnv, *store.Store) {
	t.Helper()
	return storeEnv(t, filepath.Join(t.TempDir(), "census.db"))
}

// storeEnv is a server whose census and rollout state are the store at
// dsn (a SQLite file or a postgres:// URL), with a production token.
func storeEnv(t *testing.T, dsn string, changes ...func(*Config)) (*testEnv, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, store.Options{ReportBurst: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, func(c *Config) {
		c.Tokens = append(testTokens(), Token{Token: productionToken, Group: "production"})
		c.Census = st
		c.Rollout = st
		for _, change := range changes {
			change(c)
		}
	})
	return e, st
}

// post sends validReport signed by key at at with token, plus any header
// changes, and returns the status and body.
func (e *testEnv) postSigned(t *testing.T, token string, key ed25519.PrivateKey, at time.Time, body string, change func(http.Header)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+api.CensusPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	signReport(t, req, []byte(body), key, at)
	if change != nil {
		change(req.Header)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestSignedReports(t *testing.T) {
	t.Parallel()
	e, st := signedEnv(t)
	now := e.s.now()
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	steps := []struct {
		name   string
		token  string
		key    ed25519.PrivateKey
		at     time.Time
		body   string
		change func(http.Header)
		code   int
		errSub string
	}{
		{name: "unsigned", token: stagingToken, key: testHostKey, at: now, body: validReport,
			change: func(h http.Header) { h.Del(httpsig.HeaderSignature) }, code: 401, errSub: "must be signed"},
		{name: "forged: body changed after signing", token: stagingToken, key: testHostKey, at: now,
			body: validReport,
			change: func(h http.Header) {
				h.Set(httpsig.HeaderContentDigest, "sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:")
			},
			code: 401, errSub: "Content-Digest does not match"},
		{name: "first report binds key and group", token: stagingToken, key: testHostKey, at: now, body: validReport, code: 202},
		{name: "replay of an older sequence", token: stagingToken, key: testHostKey, at: now.Add(-time.Second), body: validReport, code: 409, errSub: "not newer"},
		{name: "replay of the same sequence", token: stagingToken, key: testHostKey, at: now, body: validReport, code: 409, errSub: "not newer"},
		{name: "another key for the host", token: stagingToken, key: other, at: now.Add(time.Second), body: validReport, code: 409, errSub: "bound to another key"},
		{name: "another group's token", token: productionToken, key: testHostKey, at: now.Add(2 * time.Second), body: validReport, code: 409, errSub: "another update group"},
		{name: "signed in the future", token: stagingToken, key: testHostKey, at: now.Add(10 * time.Minute), body: validReport, code: 400, errSub: "ahead of the proxy's clock"},
		{name: "signed long ago", token: stagingToken, key: testHostKey, at: now.Add(-2 * time.Hour), body: validReport, code: 400, errSub: "old"},
		{name: "reported_at in the future", token: stagingToken, key: testHostKey, at: now.Add(3 * time.Second),
			body: strings.Replace(validReport, "2026-11-22T02:00:00Z", "2026-11-22T09:00:00Z", 1), code: 400, errSub: "reported_at"},
		{name: "next report of the bound host", token: stagingToken, key: testHostKey, at: now.Add(4 * time.Second), body: validReport, code: 202},
	}
	for _, s := range steps {
		code, body := e.postSigned(t, s.token, s.key, s.at, s.body, s.change)
		if code != s.code || !strings.Contains(body, s.errSub) {
			t.Fatalf("%s: %d %s; want %d containing %q", s.name, code, body, s.code, s.errSub)
		}
	}
	if got := st.Stats(); got.Reports != 2 || got.Refused != 4 {
		t.Errorf("store stats %+v; want 2 reports stored and 4 refused", got)
	}
	sum, err := st.Summary(context.Background(), now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if sum.TotalHosts != 1 || sum.ByGroup["staging"] != 1 {
		t.Errorf("summary %+v; want one host, in staging", sum)
	}
}

// TestAllowUnsigned: with CensusAllowUnsigned, an unsigned report of a
// host that bound no key is stored; a partly signed one is still verified
// (and refused); once the host signed, its unsigned reports are refused.
func TestAllowUnsigned(t *testing.T) {
	t.Parallel()
	e, st := signedEnv(t)
	e.s.cfg.CensusAllowUnsigned = true
	now := e.s.now()
	unsign := func(h http.Header) {
		for _, n := range []string{httpsig.HeaderSignatureInput, httpsig.HeaderSignature, httpsig.HeaderContentDigest} {
			h.Del(n)
		}
	}
	steps := []struct {
		name   string
		at     time.Time
		change func(http.Header)
		code   int
		errSub string
	}{
		{"unsigned, no key bound", now, unsign, 202, ""},
		{"partly signed", now, func(h http.Header) { h.Del(httpsig.HeaderSignature) }, 401, "Signature header is missing"},
		{"signed binds the key", now, nil, 202, ""},
		{"unsigned after binding", now, unsign, 409, "must be signed"},
	}
	for _, s := range steps {
		code, body := e.postSigned(t, stagingToken, testHostKey, s.at, validReport, s.change)
		if code != s.code || !strings.Contains(body, s.errSub) {
			t.Fatalf("%s: %d %s; want %d containing %q", s.name, code, body, s.code, s.errSub)
		}
	}
	if got := st.Stats(); got.Reports != 2 || got.Refused != 1 {
		t.Errorf("store stats %+v; want 2 stored, 1 refused", got)
	}
}

// TestCensusQuota: a token's new_hosts_per_hour refuses the next new host
// with 429 and Retry-After, counted in /metrics; max_hosts with 403.
func TestCensusQuota(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "census.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const perHourToken = "per-hour-token-0123456789abcdefghijklm"
	const maxToken = "max-hosts-token-0123456789abcdefghijkl"
	e := newEnv(t, func(c *Config) {
		c.Tokens = []Token{
			{Token: perHourToken, Group: "staging", NewHostsPerHour: 1},
			{Token: maxToken, Group: "production", MaxHosts: 1},
		}
		c.Census = st
	})
	now := e.s.now()
	other := strings.Replace(validReport, "3094a6150c", "0000000000", 1)
	third := strings.Replace(validReport, "3094a6150c", "1111111111", 1)
	steps := []struct {
		token, body string
		code        int
		errSub      string
	}{
		{perHourToken, validReport, 202, ""},
		{perHourToken, other, 429, "new_hosts_per_hour"},
		{maxToken, other, 202, ""},
		{maxToken, third, 403, "max_hosts"},
	}
	for i, s := range steps {
		code, body := e.postSigned(t, s.token, testHostKey, now.Add(time.Duration(i)*time.Second), s.body, nil)
		if code != s.code || !strings.Contains(body, s.errSub) {
			t.Fatalf("step %d: %d %s; want %d containing %q", i, code, body, s.code, s.errSub)
		}
	}
	_, _, metrics := e.do(t, http.MethodGet, MetricsPath, nil, nil)
	if !strings.Contains(string(metrics), `teleport_update_census_refused_total{reason="quota"} 2`) {
		t.Errorf("metrics do not count 2 quota refusals:\n%s", metrics)
	}
}
