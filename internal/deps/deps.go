// Package deps pins the module graph while the packages that use these
// imports are written. It is deleted once every import has a real user.
package deps

import (
	_ "github.com/Masterminds/semver/v3"
	_ "github.com/coreos/go-systemd/v22/daemon"
	_ "github.com/coreos/go-systemd/v22/dbus"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/robfig/cron/v3"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	_ "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	_ "github.com/sigstore/sigstore-go/pkg/bundle"
	_ "github.com/sigstore/sigstore-go/pkg/root"
	_ "github.com/sigstore/sigstore-go/pkg/verify"
	_ "github.com/sigstore/sigstore/pkg/signature"
	_ "github.com/spf13/cobra"
	_ "golang.org/x/crypto/cryptobyte"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/term"
	_ "google.golang.org/protobuf/encoding/protojson"
	_ "gopkg.in/yaml.v3"
	_ "modernc.org/sqlite"
)
