package mirror_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/release/mirror"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// origin is a CDN that publishes what Teleport's does: tarballs in
// Teleport's layout and plain sha256sum files, no signatures.
type origin struct {
	*fixture.CDN
}

func newOrigin(t *testing.T) origin {
	t.Helper()
	o := origin{fixture.NewCDN()}
	t.Cleanup(o.Close)
	return o
}

// publish serves a Teleport-layout tarball for a and its .sha256.
func (o origin) publish(t *testing.T, a download.Artifact) []byte {
	t.Helper()
	data, err := fixture.Tarball(map[string][]byte{
		"teleport/teleport": []byte(releasetest.Script(a.Version.String(), false)),
		"teleport/tctl":     []byte("#!/bin/sh\necho tctl\n"),
		"teleport/examples/systemd/teleport.service": []byte("[Service]\nExecStart=/usr/local/bin/teleport start\n"),
		"teleport/VERSION":                           []byte(a.Version.String() + "\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	o.Put(a.TarballName(), data)
	o.Put(a.ChecksumName(), []byte(hex.EncodeToString(sum[:])+"  "+a.TarballName()+"\n"))
	return data
}

func artifacts(t *testing.T, edition string, fips bool, arches ...string) []download.Artifact {
	t.Helper()
	var out []download.Artifact
	for _, arch := range arches {
		a, err := download.NewArtifact(download.ProductTeleport, "16.4.6", "linux", arch)
		if err != nil {
			t.Fatal(err)
		}
		a.Edition, a.FIPS = edition, fips
		out = append(out, a)
	}
	return out
}

func mirrorKey(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	dir := t.TempDir()
	priv, pub, err := release.GenerateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := release.LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	return key, pubPEM
}

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func runMirror(t *testing.T, o origin, key *ecdsa.PrivateKey, out string, as []download.Artifact) ([]mirror.Result, error) {
	t.Helper()
	return mirror.Run(context.Background(), mirror.Options{
		From:      o.Server.URL,
		Artifacts: as,
		Key:       key,
		Out:       out,
		Client:    download.New(download.Options{HTTPClient: o.Server.Client()}),
		Now:       func() time.Time { return now },
	})
}

func TestMirrorSignsAndSkipsWhatIsDone(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	key, pubPEM := mirrorKey(t)
	out := t.TempDir()
	as := append(artifacts(t, download.EditionCommunity, false, "amd64", "arm64"), artifacts(t, download.EditionEnterprise, true, "amd64")...)
	for _, a := range as {
		o.publish(t, a)
	}
	got, err := runMirror(t, o, key, out, as)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(as) {
		t.Fatalf("mirrored %d artifacts, want %d", len(got), len(as))
	}
	for i, a := range as {
		if got[i].Name != a.TarballName() || got[i].Skipped {
			t.Errorf("artifact %d: %+v, want %s mirrored", i, got[i], a.TarballName())
		}
		path := filepath.Join(out, a.TarballName())
		v, err := release.Verify(pubPEM, path, now)
		if err != nil {
			t.Fatalf("mirrored %s does not verify: %v", a.TarballName(), err)
		}
		if v.SHA256 != got[i].SHA256 {
			t.Errorf("%s: signed %s, reported %s", a.TarballName(), v.SHA256, got[i].SHA256)
		}
		if _, err := os.Stat(path + release.SignatureSuffix); err != nil {
			t.Errorf("no .sig for install.sh: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "teleport-ent-v16.4.6-linux-amd64-fips-bin.tar.gz")); err != nil {
		t.Errorf("Enterprise FIPS tarball not under Teleport's name: %v", err)
	}
	hits := o.TotalHits()

	// A second run finds everything signed and fetches nothing.
	again, err := runMirror(t, o, key, out, as)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range again {
		if !r.Skipped {
			t.Errorf("second run mirrored %s again", r.Name)
		}
	}
	if o.TotalHits() != hits {
		t.Errorf("second run made %d requests to the origin, want 0", o.TotalHits()-hits)
	}
}

func TestMirrorRefusesTamperedOrigin(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	key, _ := mirrorKey(t)
	out := t.TempDir()
	as := artifacts(t, "", false, "amd64")
	data := o.publish(t, as[0])
	tampered := append([]byte{}, data...)
	tampered[len(tampered)/2] ^= 0xff
	o.Put(as[0].TarballName(), tampered)

	_, err := runMirror(t, o, key, out, as)
	if !errors.Is(err, mirror.ErrOriginMismatch) || !errors.Is(err, verify.ErrVerification) {
		t.Fatalf("err = %v, want ErrOriginMismatch", err)
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		t.Errorf("left in the mirror after a refused tarball: %s", e.Name())
	}
}

func TestMirrorRefusesChecksumOfAnotherFile(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	key, _ := mirrorKey(t)
	as := artifacts(t, "", false, "amd64")
	o.publish(t, as[0])
	other := artifacts(t, "", false, "arm64")[0]
	o.Put(as[0].ChecksumName(), []byte(hex.EncodeToString(make([]byte, 32))+"  "+other.TarballName()+"\n"))

	_, err := runMirror(t, o, key, t.TempDir(), as)
	if !errors.Is(err, verify.ErrVerification) {
		t.Fatalf("err = %v, want a verification error", err)
	}
	if n := o.Hits(as[0].TarballName()); n != 0 {
		t.Errorf("the tarball was requested %d times after its checksum named another file", n)
	}
}

func TestMirrorResumesAfterAFailure(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	key, pubPEM := mirrorKey(t)
	out := t.TempDir()
	as := artifacts(t, "", false, "amd64", "arm64")
	o.publish(t, as[0]) // arm64 is not published yet: the run stops there

	done, err := runMirror(t, o, key, out, as)
	var status *download.HTTPStatusError
	if !errors.As(err, &status) || len(done) != 1 {
		t.Fatalf("first run: %v after %d artifacts, want a 404 after 1", err, len(done))
	}
	o.publish(t, as[1])
	first := o.Hits(as[0].TarballName())
	done, err = runMirror(t, o, key, out, as)
	if err != nil {
		t.Fatal(err)
	}
	if !done[0].Skipped || done[1].Skipped {
		t.Fatalf("second run: %+v, want the first skipped and the second mirrored", done)
	}
	if o.Hits(as[0].TarballName()) != first {
		t.Error("the finished tarball was downloaded again")
	}
	if _, err := release.Verify(pubPEM, filepath.Join(out, as[1].TarballName()), now); err != nil {
		t.Fatal(err)
	}
}

func TestMirrorReplacesFilesThatDoNotVerify(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	key, pubPEM := mirrorKey(t)
	out := t.TempDir()
	as := artifacts(t, "", false, "amd64")
	o.publish(t, as[0])
	if _, err := runMirror(t, o, key, out, as); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(out, as[0].TarballName())
	if err := os.WriteFile(path, []byte("swapped on the mirror"), 0o644); err != nil {
		t.Fatal(err)
	}
	done, err := runMirror(t, o, key, out, as)
	if err != nil || done[0].Skipped {
		t.Fatalf("damaged mirror: %+v, %v; want it mirrored again", done, err)
	}
	if _, err := release.Verify(pubPEM, path, now); err != nil {
		t.Fatal(err)
	}
}
