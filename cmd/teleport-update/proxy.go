package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/keys"
	"github.com/gravitational/teleport-update/internal/proxyapi"
	"github.com/gravitational/teleport-update/scripts"
)

// Defaults of proxy serve's flags.
const (
	// Defaults of --max-connections and --max-connections-per-ip.
	defaultMaxConns          = 8192
	defaultMaxConnsPerClient = 128
	// defaultCensusForgetAfter is how long proxy serve keeps a census host
	// that has stopped reporting: long enough to list it as stale for
	// weeks, not so long that an autoscaling fleet's database keeps every
	// host it ever saw.
	defaultCensusForgetAfter = 90 * 24 * time.Hour
)

func newProxyCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Serve the proxy-side update API",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newProxyServeCmd(c), newProxyCensusCmd(c), newProxyRolloutCmd(c))
	return cmd
}

func newProxyServeCmd(c *cli) *cobra.Command {
	var sc proxyapi.ServeConfig
	var trusted string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve find, install.sh and census over HTTPS from a policy file",
		Long: `Serve the update API agents poll (GET /v1/webapi/find), the installer
(GET /scripts/install.sh), census intake (POST /v1/webapi/census, with
--tokens), /healthz and /metrics, over HTTPS with TLS 1.2 or newer.

The policy file (--resource, kind autoupdate_version) must be a regular
file. It is re-read when it changes, and a change takes effect once two looks
half a second apart see the same content (replace it by renaming a complete
file over it to be sure); SIGHUP reads it at once. An invalid change is
refused with a log line and the last good policy keeps serving. SIGHUP also
reloads the TLS certificate and key, independently of the policy.

/healthz answers while the process runs; /readyz answers 503 with the reasons
when the census database could not be opened or its writes keep failing. A
census database that cannot be opened does not stop find and install.sh
unless --census-required is set.

Connections are capped in total and per client address (an IPv6 client by
its /64); behind a load balancer raise or disable (0) the per-address cap.
SIGTERM stops accepting connections and lets requests in flight finish.
Under systemd (Type=notify) READY=1 is sent once the listener is up.
--addr-file names a file that receives the address once listening (useful
with --listen 127.0.0.1:0).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkServeFlags(&sc, trusted); err != nil {
				return err
			}
			log := c.logger()
			sc.API.Logger = log
			sc.API.InstallScript = scripts.InstallSH
			if sc.CensusDB != "" && sc.API.TokensFile == "" {
				log.Warn("Census intake is on (--census-db) but no --tokens file is set: every census report will be refused.")
			}
			if sc.InstallKeyFile == "" {
				key, err := embeddedInstallKey()
				if err != nil {
					return err
				}
				sc.API.InstallPublicKeyPEM = key
			}
			return proxyapi.Serve(cmd.Context(), sc)
		},
	}
	addServeFlags(cmd, &sc, &trusted)
	return cmd
}

// checkServeFlags refuses missing and contradictory flags, and parses
// --trusted-proxies into sc.
func checkServeFlags(sc *proxyapi.ServeConfig, trusted string) error {
	if sc.API.PolicyFile == "" || sc.TLSCertFile == "" || sc.TLSKeyFile == "" {
		return usageError("proxy serve needs --resource, --tls-cert and --tls-key")
	}
	if sc.CensusForgetAfter < 0 {
		return usageError("--census-forget-after must not be negative, got %v", sc.CensusForgetAfter)
	}
	if sc.CensusRequired && sc.CensusDB == "" {
		return usageError("--census-required needs --census-db")
	}
	if err := checkCensusDB("--census-db", sc.CensusDB); err != nil {
		return err
	}
	if sc.Conns.Total < 0 || sc.Conns.PerClient < 0 {
		return usageError("--max-connections and --max-connections-per-ip must not be negative")
	}
	var err error
	if sc.API.TrustedProxies, err = proxyapi.ParseTrustedProxies(trusted); err != nil {
		return usageError("--trusted-proxies: %v", err)
	}
	return nil
}

// checkCensusDB refuses a PostgreSQL URL that carries a password on the
// command line, where every user of the host can read it (ps): the
// password belongs in a password file.
func checkCensusDB(flag, db string) error {
	if !store.IsPostgresURL(db) {
		return nil
	}
	u, err := url.Parse(db)
	if err != nil {
		return usageError("%s: not a valid URL: %v", flag, store.Redact(db))
	}
	if _, ok := u.User.Password(); ok {
		return usageError("%s: the URL carries a password, which other users see on the command line; "+
			"put it in a file named by --census-db-password-file (or --db-password-file), or in PGPASSFILE", flag)
	}
	return nil
}

// addServeFlags binds proxy serve's flags to sc (and trusted).
func addServeFlags(cmd *cobra.Command, sc *proxyapi.ServeConfig, trusted *string) {
	f := cmd.Flags()
	f.StringVar(&sc.API.PolicyFile, "resource", "", "autoupdate_version policy file (required)")
	f.StringVar(&sc.Listen, "listen", ":3080", "address to listen on (127.0.0.1:0 picks a free port)")
	f.StringVar(&sc.AddrFile, "addr-file", "", "write the address listened on to this file once listening")
	f.StringVar(&sc.TLSCertFile, "tls-cert", "", "TLS certificate chain, PEM (required)")
	f.StringVar(&sc.TLSKeyFile, "tls-key", "", "TLS private key, PEM (required)")
	f.StringVar(&sc.API.TokensFile, "tokens", "", "static enrollment tokens file (YAML, mode 0600) for census intake; reloaded when it changes and on SIGHUP")
	f.StringVar(trusted, "trusted-proxies", "", "comma-separated CIDRs of load balancers whose X-Forwarded-For names the client")
	f.StringVar(&sc.CensusDB, "census-db", "", "census database: an SQLite file, or a postgres:// URL several proxies share; without it census intake is disabled")
	f.StringVar(&sc.CensusPasswordFile, "census-db-password-file", "", "file holding the PostgreSQL password of --census-db (else PGPASSFILE or ~/.pgpass)")
	f.BoolVar(&sc.API.CensusAllowUnsigned, "census-allow-unsigned", false,
		"also accept unsigned census reports (from updaters older than signed reports) for hosts that have not bound a key yet")
	f.DurationVar(&sc.CensusForgetAfter, "census-forget-after", defaultCensusForgetAfter,
		"delete census hosts not seen for this long, checked hourly (0 keeps them forever)")
	f.StringVar(&sc.API.PublicAddr, "public-addr", "", "proxy host:port filled into install.sh (default: the request's Host)")
	f.StringVar(&sc.API.BaseURL, "base-url", "", "https:// CDN base filled into install.sh (default: the built-in CDN)")
	f.StringVar(&sc.API.Edition, "edition", "community", "Teleport edition the agents run: community, oss or ent (the resource's spec.agents.edition wins)")
	f.BoolVar(&sc.API.FIPS, "fips", false, "agents run FIPS builds, which are Enterprise builds (the resource's spec.agents.fips wins)")
	f.StringVar(&sc.InstallKeyFile, "install-key", "", "PEM public key install.sh checks signatures with (default: the first embedded release key)")
	f.BoolVar(&sc.CensusRequired, "census-required", false,
		"refuse to start when --census-db cannot be opened (default: serve find and install.sh without census; /readyz reports it)")
	f.DurationVar(&sc.API.RolloutEvery, "rollout-every", proxyapi.DefaultRolloutEvery,
		"how often the staged rollout is evaluated from the census (when the resource sets start_version)")
	f.IntVar(&sc.Conns.Total, "max-connections", defaultMaxConns, "most connections open at once (0: no cap)")
	f.IntVar(&sc.Conns.PerClient, "max-connections-per-ip", defaultMaxConnsPerClient,
		"most connections open at once from one client address, IPv6 by /64 (0: no cap)")
}

// embeddedInstallKey returns the first *.pem embedded in package keys, the
// key install.sh checks signatures with unless --install-key names another.
func embeddedInstallKey() ([]byte, error) {
	names, err := fs.Glob(keys.FS, "*.pem")
	if err != nil || len(names) == 0 {
		return nil, errors.New("no embedded release key for install.sh; pass --install-key")
	}
	sort.Strings(names)
	b, err := fs.ReadFile(keys.FS, names[0])
	if err != nil {
		return nil, fmt.Errorf("read embedded key %s: %w", names[0], err)
	}
	return b, nil
}
