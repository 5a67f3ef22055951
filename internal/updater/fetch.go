// This file holds fetch, which puts a version on disk (downloaded,
// verified, extracted) before anything switches to it, and prune, which
// removes the versions no longer needed.

package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// fetch makes sure target is installed and intact under versions/,
// downloading it from base (the built-in CDN when empty) and verifying it
// when it is not. A damaged directory is replaced once the download is
// verified.
func (u *Updater) fetch(ctx context.Context, base string, target *semver.Version) error {
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
	got, staging, err := u.download(ctx, base, target)
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	if removed, err := u.Tree.RemoveDamaged(ver); err != nil {
		return fmt.Errorf("removing the damaged version %s: %w", ver, err)
	} else if removed {
		u.Log.Info("Removed the damaged version directory.", "version", ver)
	}
	// Extract names the version in its errors.
	if err := u.tree(true).Extract(ctx, got.Path, ver, got.SHA256, u.Limits); err != nil {
		return err
	}
	if err := u.label(ctx, ver); err != nil {
		return err
	}
	u.step(StepExtract)
	return nil
}

// download fetches and verifies target's tarball into a new staging
// directory, which the caller removes (download removes it on failure).
func (u *Updater) download(ctx context.Context, base string, target *semver.Version) (*download.Fetched, string, error) {
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
	maxSize := u.MaxArtifactSize
	if maxSize <= 0 {
		maxSize = download.DefaultMaxArtifactSize
	}
	start := u.now()
	// FetchVerified names the file in its errors.
	got, err := u.HTTP.FetchVerified(ctx, base, u.artifact(target), ks, staging, maxSize, u.now(), u.Progress)
	if err != nil {
		os.RemoveAll(staging)
		return nil, "", err
	}
	u.Log.Info("Download verified.", "version", target, "bytes", got.Size, "sha256", got.SHA256, "duration", u.now().Sub(start).Round(time.Millisecond))
	u.step(StepDownload)
	return got, staging, nil
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
