// This file holds fetch, which puts a version on disk (downloaded,
// verified, extracted) before anything switches to it, and prune, which
// removes the versions no longer needed.

package updater

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// fetch makes sure target is installed and intact under versions/,
// downloading its build fl from base (the built-in CDN when empty) and
// verifying it when it is not. A damaged directory is replaced once the
// download is verified.
func (u *Updater) fetch(ctx context.Context, base string, target *semver.Version, fl download.Flavour) error {
	ver := target.String()
	switch err := u.Tree.Intact(ver); {
	case err == nil:
		u.Log.Info("Version already installed; not downloading it again.", "version", ver)
		return nil
	case errors.Is(err, install.ErrDamaged):
		u.Log.Warn("The version's directory is damaged; fetching the version again.", "version", ver, "reason", err)
	case !errors.Is(err, install.ErrVersionNotInstalled):
		return fmt.Errorf("checking installed versions: %w", err)
	}
	staged, sum, err := u.download(ctx, base, target, fl)
	if err != nil {
		return err
	}
	defer os.RemoveAll(staged.Dir)
	if removed, err := u.Tree.RemoveDamaged(ver); err != nil {
		return fmt.Errorf("removing the damaged version %s: %w", ver, err)
	} else if removed {
		u.Log.Info("Removed the damaged version directory.", "version", ver)
	}
	// Commit names the version in its errors.
	if err := u.tree(true).Commit(staged, ver, sum); err != nil {
		return err
	}
	if err := u.label(ctx, ver); err != nil {
		return err
	}
	u.step(StepExtract)
	return nil
}

// download fetches target's tarball, verifies it and unpacks it into a new
// private staging directory, and returns the staged release and the
// tarball's signed SHA-256. The caller removes the staging directory;
// download removes it on failure.
//
// The tarball is unpacked while it streams in (see unpackStream), so its
// bytes are read once, from the network, and never stored: the signed
// checksum is verified before the first tarball byte is requested, and
// the staged files are trusted only once every byte was hashed and the
// hash is the signed one.
func (u *Updater) download(ctx context.Context, base string, target *semver.Version, fl download.Flavour) (*install.Staged, string, error) {
	ks, err := u.keys()
	if err != nil {
		return nil, "", err
	}
	if base == "" {
		base = download.DefaultBaseURL
	}
	staging, err := u.Tree.NewStaging()
	if err != nil {
		return nil, "", fmt.Errorf("creating staging directory: %w", err)
	}
	start := u.now()
	// CheckSigned and unpackStream name the file in their errors.
	signed, err := u.HTTP.CheckSigned(ctx, base, u.artifact(target, fl), ks, staging, u.MaxArtifactSize, u.now())
	var staged *install.Staged
	var size int64
	if err == nil {
		staged, size, err = u.unpackStream(ctx, signed, staging)
	}
	if err != nil {
		os.RemoveAll(staging)
		return nil, "", err
	}
	u.Log.Info("Download verified and unpacked.", "version", target, "build", fl.String(), "bytes", size, "sha256", signed.SHA256, "duration", u.now().Sub(start).Round(time.Millisecond))
	u.step(StepDownload)
	return staged, signed.SHA256, nil
}

// unpackStream streams the tarball of signed into the unpacker through a
// pipe: the download hashes every byte it hands over, the unpacker writes
// files into staging only (private, 0700, removed by the caller on any
// error) with every extraction check applied to the unverified bytes. A
// refused entry closes the pipe, which ends the download at once; a failed
// download closes it the other way. The result is trusted only when both
// sides finished and the hash of all bytes is the signed one.
//
// Outcomes: the staged release and the tarball's size; the download's
// error (ErrChecksumMismatch for a tampered tarball, a transport error for
// a truncated one); the unpacker's (install.ErrUnsafeArchive naming the
// entry, install.ErrNoSpace) when it refused the stream first.
func (u *Updater) unpackStream(ctx context.Context, signed *download.Signed, staging string) (*install.Staged, int64, error) {
	pr, pw := io.Pipe()
	var res download.Result
	var derr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, derr = u.HTTP.StreamSigned(ctx, signed, pw, staging, u.Progress)
		pw.CloseWithError(derr) // nil: the unpacker reads the end of the stream
	}()
	// Whatever ends the unpacker (a refusal, or a test's simulated kill at
	// StepUnpack), the download stops at its next write.
	defer func() { pr.Close(); <-done }()
	staged, xerr := u.tree(true).Unpack(ctx, staging, pr, u.Limits)
	pr.CloseWithError(xerr) // on success the stream has ended: no write is refused
	<-done
	switch {
	case xerr != nil && errors.Is(derr, xerr):
		// The unpacker refused the stream; the download only saw its pipe
		// closed.
		return nil, 0, fmt.Errorf("unpack %s before all of it arrived: %w", signed.Name, xerr)
	case derr != nil:
		return nil, 0, derr
	case xerr != nil:
		return nil, 0, fmt.Errorf("unpack %s: %w", signed.Name, xerr)
	}
	return staged, res.Size, nil
}

// prune removes versions other than the active and the backup one.
func (u *Updater) prune(cfg *Config) {
	keep := []string{}
	for _, v := range []string{cfg.Status.Active, cfg.Status.Backup} {
		if v != "" {
			keep = append(keep, v)
		}
	}
	removed, err := u.Tree.Prune(keep...)
	if err != nil {
		u.Log.Warn("Failed to remove old versions.", "error", err)
	}
	for _, r := range removed {
		u.Log.Info("Removed old version.", "version", r)
	}
}
