package census

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// Limits of network probe answers.
const (
	maxKubeVersionAnswer = 64 << 10
	maxMetadataAnswer    = 64 << 10
)

// serviceAccountDir holds the in-cluster credentials Kubernetes mounts into
// every pod (relative to the collection root).
const serviceAccountDir = "var/run/secrets/kubernetes.io/serviceaccount"

// OrchestratorKubernetesUnknown is reported when the service-account files
// show the agent runs in a pod but the API did not give its version.
const OrchestratorKubernetesUnknown = api.OrchestratorKubernetesPrefix + "unknown"

// probeKubernetes returns "kubernetes-<gitVersion>" from the in-cluster
// API's /version, asked with the pod's service-account token and CA, within
// ProbeTimeout. It does nothing unless the service-account token and ca.crt
// exist; when they do but the API does not answer, it reports
// OrchestratorKubernetesUnknown.
func probeKubernetes(ctx context.Context, fsys *hostFS, getenv func(string) string, client *http.Client, logger *slog.Logger) string {
	token, err := fsys.readFile(serviceAccountDir+"/token", maxSmallFile)
	if err != nil {
		return ""
	}
	ca, err := fsys.readFile(serviceAccountDir+"/ca.crt", maxSmallFile)
	if err != nil {
		return ""
	}
	v, err := kubeVersion(ctx, strings.TrimSpace(string(token)), ca, getenv, client)
	if err != nil {
		logger.DebugContext(ctx, "Kubernetes version probe failed.", "error", err)
		return OrchestratorKubernetesUnknown
	}
	o := cleanText(api.OrchestratorKubernetesPrefix + v)
	if !api.ValidOrchestrator(o) {
		return OrchestratorKubernetesUnknown
	}
	return o
}

// kubeVersion asks the API server for its gitVersion.
func kubeVersion(ctx context.Context, token string, ca []byte, getenv func(string) string, client *http.Client) (string, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" {
		host = "kubernetes.default.svc"
	}
	if port == "" {
		port = "443"
	}
	if client == nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return "", errors.New("service account ca.crt holds no PEM certificate")
		}
		client = &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		}}
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	url := "https://" + net.JoinHostPort(host, port) + "/version"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("ask Kubernetes version: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := noRedirects(client).Do(req)
	if err != nil {
		return "", fmt.Errorf("ask Kubernetes version: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ask Kubernetes version: %s answered %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxKubeVersionAnswer+1))
	if err != nil {
		return "", fmt.Errorf("ask Kubernetes version: read answer: %w", err)
	}
	if len(b) > maxKubeVersionAnswer {
		return "", fmt.Errorf("ask Kubernetes version: answer larger than %d bytes", maxKubeVersionAnswer)
	}
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.GitVersion == "" {
		return "", fmt.Errorf("ask Kubernetes version: answer has no gitVersion")
	}
	return v.GitVersion, nil
}

// noRedirects returns a copy of c that does not follow redirects.
func noRedirects(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// metadataEndpoints are the cloud instance-metadata URLs (overridden in
// tests).
type metadataEndpoints struct {
	aws, gcp, azure string
}

var defaultMetadata = metadataEndpoints{
	aws:   "http://169.254.169.254/latest/api/token",
	gcp:   "http://metadata.google.internal/computeMetadata/v1/instance/id",
	azure: "http://169.254.169.254/metadata/instance/compute/azEnvironment?api-version=2021-02-01&format=text",
}

// probeMetadata asks the three metadata endpoints in parallel, each within
// ProbeTimeout, and names the cloud whose endpoint answered as only it
// does. Only whether an endpoint answered is used; nothing it says is
// reported. No proxy from the environment is used: metadata endpoints are
// link-local.
func probeMetadata(ctx context.Context, ep *metadataEndpoints, logger *slog.Logger) string {
	if ep == nil {
		ep = &defaultMetadata
	}
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	probes := []struct {
		cloud  string
		method string
		url    string
		header [2]string
		check  func(*http.Response) bool
	}{
		{api.CloudAWS, http.MethodPut, ep.aws, [2]string{"X-aws-ec2-metadata-token-ttl-seconds", "60"},
			func(r *http.Response) bool { return r.StatusCode == http.StatusOK }},
		{api.CloudGCP, http.MethodGet, ep.gcp, [2]string{"Metadata-Flavor", "Google"},
			func(r *http.Response) bool {
				return r.StatusCode == http.StatusOK && r.Header.Get("Metadata-Flavor") == "Google"
			}},
		{api.CloudAzure, http.MethodGet, ep.azure, [2]string{"Metadata", "true"},
			func(r *http.Response) bool { return r.StatusCode == http.StatusOK }},
	}
	results := make(chan string, len(probes))
	for _, p := range probes {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, p.method, p.url, nil)
			if err != nil {
				results <- ""
				return
			}
			req.Header.Set(p.header[0], p.header[1])
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				logger.DebugContext(ctx, "Cloud metadata probe found nothing.", "cloud", p.cloud, "duration", time.Since(start), "error", err)
				results <- ""
				return
			}
			io.Copy(io.Discard, io.LimitReader(resp.Body, maxMetadataAnswer))
			resp.Body.Close()
			if p.check(resp) {
				results <- p.cloud
				return
			}
			results <- ""
		}()
	}
	found := map[string]bool{}
	for range probes {
		found[<-results] = true
	}
	// AWS and Azure share 169.254.169.254; each checks a path only it serves.
	for _, p := range probes {
		if found[p.cloud] {
			return p.cloud
		}
	}
	return ""
}
