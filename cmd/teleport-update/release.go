package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// maxReleasePublicKeyFile caps the public key file read by `release verify`.
const maxReleasePublicKeyFile = verify.MaxKeyFileSize

func newReleaseCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Generate signing keys, sign and verify release artifacts",
		Long: `Release tooling: produce and check exactly the files the updater consumes.

  release keygen --out DIR         ECDSA P-256 key: DIR/release.key (0600) and DIR/release.pub
  release sign --key KEY FILE...   writes FILE.sha256, FILE.sha256.sigstore.json, FILE.sha256.sig
  release verify --key PUB FILE    checks FILE against its .sha256 and bundle (exit 0 only if valid)
  release mirror --version V --key KEY --out DIR
                                   copies genuine releases from a CDN into DIR, signed with KEY

The bundle is what ` + "`cosign sign-blob --key K --bundle B --use-signing-config=false --tlog-upload=false`" + `
writes, so releases signed by either tool verify with both.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError("release: missing subcommand (keygen, sign, verify or mirror)")
		},
	}
	cmd.AddCommand(newReleaseKeygenCmd(c), newReleaseSignCmd(c), newReleaseVerifyCmd(c), newReleaseMirrorCmd(c))
	return cmd
}

func newReleaseKeygenCmd(c *cli) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out DIR",
		Short: "Generate an ECDSA P-256 release signing key pair",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError("release keygen: --out DIR is required")
			}
			priv, pub, err := release.GenerateKey(out)
			if err != nil {
				return fmt.Errorf("release keygen: %w", err)
			}
			hint, err := releaseKeyHint(pub)
			if err != nil {
				return fmt.Errorf("release keygen: %w", err)
			}
			fmt.Fprintf(c.stdout, "Private key: %s (keep offline)\nPublic key:  %s\nKey hint:    %s\n", priv, pub, hint)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write release.key and release.pub into")
	return cmd
}

func newReleaseSignCmd(c *cli) *cobra.Command {
	var keyPath string
	cmd := &cobra.Command{
		Use:   "sign --key KEY FILE...",
		Short: "Write FILE.sha256, FILE.sha256.sigstore.json and FILE.sha256.sig",
		RunE: func(cmd *cobra.Command, files []string) error {
			if keyPath == "" {
				return usageError("release sign: --key KEY is required")
			}
			if len(files) == 0 {
				return usageError("release sign: no files to sign")
			}
			// cosign's encrypted keys take their password from COSIGN_PASSWORD, as in cosign.
			key, err := release.LoadPrivateKeyPassword(keyPath, []byte(os.Getenv("COSIGN_PASSWORD")))
			if err != nil {
				return fmt.Errorf("release sign: %w", err)
			}
			for _, f := range files {
				if err := release.Sign(key, f); err != nil {
					return fmt.Errorf("release sign: %w", err)
				}
				c.logger().InfoContext(cmd.Context(), "Signed release file.", "file", f)
				fmt.Fprintf(c.stdout, "Signed %s\n", f)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "private key file, mode 0600: PKCS#8 or SEC1 PEM, or a cosign.key (password from $COSIGN_PASSWORD)")
	return cmd
}

func newReleaseVerifyCmd(c *cli) *cobra.Command {
	var keyPath string
	cmd := &cobra.Command{
		Use:   "verify --key PUB FILE",
		Short: "Verify FILE against FILE.sha256 and FILE.sha256.sigstore.json",
		RunE: func(cmd *cobra.Command, files []string) error {
			if keyPath == "" {
				return usageError("release verify: --key PUB is required")
			}
			if len(files) != 1 {
				return usageError("release verify: want exactly one FILE, got %d", len(files))
			}
			pub, err := capread.File(keyPath, maxReleasePublicKeyFile)
			if err != nil {
				return fmt.Errorf("release verify: %w", err)
			}
			v, err := release.Verify(pub, files[0], time.Now())
			if err != nil {
				return fmt.Errorf("release verify: %w", err)
			}
			fmt.Fprintf(c.stdout, "Verified OK: %s sha256:%s key %s\n", v.FileName, v.SHA256, v.Key.Hint)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "public key file (PEM, ECDSA P-256)")
	return cmd
}

// releaseKeyHint returns the Sigstore key hint of the public key PEM at path.
func releaseKeyHint(path string) (string, error) {
	data, err := capread.File(path, maxReleasePublicKeyFile)
	if err != nil {
		return "", err
	}
	k, err := verify.ParsePublicKeyPEM(data, path)
	if err != nil {
		return "", err
	}
	return k.Hint, nil
}
