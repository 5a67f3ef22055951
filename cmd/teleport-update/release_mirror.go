package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/release/mirror"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

// mirrorFlags are the flags of `release mirror`.
type mirrorFlags struct {
	from, version, edition, goos, arches, products, keyPath, out string
	fips                                                         bool
	maxSize                                                      int64
}

func newReleaseMirrorCmd(c *cli) *cobra.Command {
	var f mirrorFlags
	cmd := &cobra.Command{
		Use:   "mirror --version V --key KEY --out DIR",
		Short: "Copy genuine releases from a CDN into DIR and sign them with your key",
		Long: `Downloads each tarball and its .sha256 from --from over HTTPS, checks the
hash while streaming, and writes the tarball with a .sha256, .sha256.sigstore.json
and .sha256.sig signed by KEY into DIR, under the CDN's names, ready for any
static web server. Hosts that pin KEY's public key install from it with
--base-url. Files already mirrored and signed by KEY are skipped, so a run that
was interrupted picks up where it stopped. A tarball that does not match the
origin's .sha256 is deleted and never signed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := f.options()
			if err != nil {
				return err
			}
			opts.Log = c.logger()
			done, err := mirror.Run(cmd.Context(), opts)
			for _, m := range done {
				state := "mirrored"
				if m.Skipped {
					state = "already mirrored"
				}
				fmt.Fprintf(c.stdout, "%s: %s (%d bytes, sha256:%s)\n", m.Name, state, m.Size, m.SHA256)
			}
			if err != nil {
				return fmt.Errorf("release mirror: %w", err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.from, "from", download.DefaultBaseURL, "origin base URL (https)")
	fl.StringVar(&f.version, "version", "", "release version, e.g. 16.4.6 (required)")
	fl.StringVar(&f.edition, "edition", download.EditionCommunity, "community, oss or ent")
	fl.BoolVar(&f.fips, "fips", false, "mirror the FIPS builds (Enterprise builds: named teleport-ent-v…-fips-bin.tar.gz)")
	fl.StringVar(&f.goos, "os", "linux", "operating system")
	fl.StringVar(&f.arches, "arch", "amd64,arm64", "comma-separated architectures")
	fl.StringVar(&f.products, "product", download.ProductTeleport, "comma-separated products: teleport, teleport-update")
	fl.StringVar(&f.keyPath, "key", "", "organisation's private signing key (as for release sign; required)")
	fl.StringVar(&f.out, "out", "", "mirror directory (required)")
	fl.Int64Var(&f.maxSize, "max-size", download.DefaultMaxArtifactSize, "largest tarball accepted, in bytes")
	return cmd
}

// options turns the flags into mirror.Options: every artifact is
// validated before anything is fetched.
func (f *mirrorFlags) options() (mirror.Options, error) {
	switch {
	case f.version == "":
		return mirror.Options{}, usageError("release mirror: --version is required")
	case f.keyPath == "":
		return mirror.Options{}, usageError("release mirror: --key KEY is required")
	case f.out == "":
		return mirror.Options{}, usageError("release mirror: --out DIR is required")
	}
	edition, err := download.ParseEdition(f.edition)
	if err != nil {
		return mirror.Options{}, usageError("release mirror: --edition: %v", err)
	}
	var artifacts []download.Artifact
	for _, product := range splitList(f.products) {
		for _, arch := range splitList(f.arches) {
			a, err := download.NewArtifact(product, f.version, f.goos, arch)
			if err != nil {
				return mirror.Options{}, usageError("release mirror: %v", err)
			}
			if product == download.ProductTeleport {
				a.Edition, a.FIPS = edition, f.fips
			}
			artifacts = append(artifacts, a)
		}
	}
	if len(artifacts) == 0 {
		return mirror.Options{}, usageError("release mirror: no --product or --arch given")
	}
	// cosign's encrypted keys take their password from COSIGN_PASSWORD, as in cosign.
	key, err := release.LoadPrivateKeyPassword(f.keyPath, []byte(os.Getenv("COSIGN_PASSWORD")))
	if err != nil {
		return mirror.Options{}, fmt.Errorf("release mirror: %w", err)
	}
	return mirror.Options{
		From: f.from, Artifacts: artifacts, Key: key, Out: f.out, MaxSize: f.maxSize,
		Client: download.New(download.Options{}),
	}, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
