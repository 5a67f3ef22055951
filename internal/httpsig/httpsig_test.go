package httpsig

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

const testPath = "/v1/webapi/census"

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func signed(t testing.TB, key ed25519.PrivateKey, body string, at time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://proxy.example.com"+testPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := Sign(req, []byte(body), key, at); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestSignVerify(t *testing.T) {
	key := newKey(t)
	at := time.Unix(1_765_000_000, 42)
	req := signed(t, key, `{"a":1}`, at)
	p, err := Verify(req.Method, req.URL.EscapedPath(), req.Header, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Key.Equal(key.Public()) || !p.Created.Equal(time.Unix(1_765_000_000, 0)) || p.Seq != at.UnixNano() {
		t.Errorf("Verify = %+v, want key %x, created %v, seq %d", p, key.Public(), at, at.UnixNano())
	}
}

// TestSignatureBase pins the signature base to RFC 9421's format: one line
// per covered component, "@signature-params" last, no trailing newline.
func TestSignatureBase(t *testing.T) {
	got := string(signatureBase("POST", "/p", "sha-256=:X:", `("@method" "@path" "content-digest");created=1;nonce="2";keyid="k";alg="ed25519"`))
	want := `"@method": POST
"@path": /p
"content-digest": sha-256=:X:
"@signature-params": ("@method" "@path" "content-digest");created=1;nonce="2";keyid="k";alg="ed25519"`
	if got != want {
		t.Errorf("signature base:\n%s\nwant:\n%s", got, want)
	}
	// RFC 9530's example: the SHA-256 Content-Digest of {"hello": "world"}.
	if d := contentDigest([]byte("{\"hello\": \"world\"}\n")); d != "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:" {
		t.Errorf("content digest = %s", d)
	}
}

func TestVerifyRefuses(t *testing.T) {
	key := newKey(t)
	body := `{"host_id":"a"}`
	at := time.Unix(1_765_000_000, 7)
	other := newKey(t)
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		change func(h http.Header)
		want   string
	}{
		{name: "tampered body", body: `{"host_id":"b"}`, want: "Content-Digest does not match"},
		{name: "digest of the tampered body", body: `{"host_id":"b"}`,
			change: func(h http.Header) { h.Set(HeaderContentDigest, contentDigest([]byte(`{"host_id":"b"}`))) },
			want:   "does not verify"},
		{name: "other path", path: "/v1/webapi/census/summary", want: "does not verify"},
		{name: "other method", method: http.MethodPut, want: "does not verify"},
		{name: "replayed with a new nonce", change: func(h http.Header) {
			h.Set(HeaderSignatureInput, strings.Replace(h.Get(HeaderSignatureInput), `nonce="1765000000000000007"`, `nonce="1765000000000000008"`, 1))
		}, want: "does not verify"},
		{name: "other created", change: func(h http.Header) {
			in := strings.Replace(h.Get(HeaderSignatureInput), "created=1765000000", "created=1765000001", 1)
			h.Set(HeaderSignatureInput, strings.Replace(in, `nonce="1765000000000000007"`, `nonce="1765000001000000007"`, 1))
		}, want: "does not verify"},
		{name: "keyid of another key", change: func(h http.Header) {
			h.Set(HeaderSignatureInput, strings.Replace(h.Get(HeaderSignatureInput), KeyID(key.Public().(ed25519.PublicKey)), KeyID(other.Public().(ed25519.PublicKey)), 1))
		}, want: "does not verify"},
		{name: "signed by another key", change: func(h http.Header) {
			r := signed(t, other, body, at)
			h.Set(HeaderSignature, r.Header.Get(HeaderSignature))
		}, want: "does not verify"},
		{name: "nonce outside the created second", change: func(h http.Header) {
			h.Set(HeaderSignatureInput, strings.Replace(h.Get(HeaderSignatureInput), `nonce="1765000000000000007"`, `nonce="1765000001000000007"`, 1))
		}, want: "not a time in the created second"},
		{name: "fewer components", change: func(h http.Header) {
			h.Set(HeaderSignatureInput, strings.Replace(h.Get(HeaderSignatureInput), ` "content-digest"`, "", 1))
		}, want: "Signature-Input is not"},
		{name: "other algorithm", change: func(h http.Header) {
			h.Set(HeaderSignatureInput, strings.Replace(h.Get(HeaderSignatureInput), `alg="ed25519"`, `alg="hmac-sha256"`, 1))
		}, want: "Signature-Input is not"},
		{name: "no signature", change: func(h http.Header) { h.Del(HeaderSignature) }, want: "Signature header is missing"},
		{name: "no digest", change: func(h http.Header) { h.Del(HeaderContentDigest) }, want: "Content-Digest header is missing"},
		{name: "two signatures", change: func(h http.Header) { h.Add(HeaderSignature, h.Get(HeaderSignature)) }, want: "given 2 times"},
		{name: "short signature", change: func(h http.Header) { h.Set(HeaderSignature, "census=:AAAA:") }, want: "Signature is not"},
		{name: "another label", change: func(h http.Header) {
			h.Set(HeaderSignature, strings.Replace(h.Get(HeaderSignature), "census=", "sig1=", 1))
		}, want: "Signature is not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := signed(t, key, body, at)
			if tt.change != nil {
				tt.change(req.Header)
			}
			method, path, b := req.Method, testPath, body
			if tt.method != "" {
				method = tt.method
			}
			if tt.path != "" {
				path = tt.path
			}
			if tt.body != "" {
				b = tt.body
			}
			_, err := Verify(method, path, req.Header, []byte(b))
			if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, want an ErrSignature containing %q", err, tt.want)
			}
		})
	}
}

func TestSignRefusesTimeBefore1970(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "https://p"+testPath, nil)
	if err := Sign(req, nil, newKey(t), time.Unix(-1, 0)); err == nil {
		t.Fatal("Sign accepted a time before 1970")
	}
}

// FuzzVerify feeds arbitrary header values to Verify: it must never panic,
// and whatever it accepts must carry a valid signature of the body.
func FuzzVerify(f *testing.F) {
	key := newKey(f)
	req := signed(f, key, "body", time.Unix(1_765_000_000, 3))
	f.Add(req.Header.Get(HeaderSignatureInput), req.Header.Get(HeaderSignature), req.Header.Get(HeaderContentDigest), []byte("body"))
	f.Add(`census=("@method");created=1`, "census=:AAAA:", "sha-256=::", []byte{})
	f.Fuzz(func(t *testing.T, input, sig, digest string, body []byte) {
		h := http.Header{}
		h.Set(HeaderSignatureInput, input)
		h.Set(HeaderSignature, sig)
		h.Set(HeaderContentDigest, digest)
		p, err := Verify(http.MethodPost, testPath, h, body)
		if err != nil {
			if !errors.Is(err, ErrSignature) {
				t.Fatalf("error %v does not wrap ErrSignature", err)
			}
			return
		}
		if len(p.Key) != ed25519.PublicKeySize || p.Seq < 0 {
			t.Fatalf("accepted parameters %+v", p)
		}
	})
}
