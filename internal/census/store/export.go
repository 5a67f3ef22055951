package store

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// Export formats.
const (
	// FormatJSON writes one JSON object per line per host: the latest report
	// (lists sorted) plus first_seen and last_seen (proxy clock) and the
	// host's update history, newest first.
	FormatJSON = "json"
	// FormatPostHog writes one PostHog event per line per host, properties
	// named and flattened as in RFD 108 (see PostHogEvent).
	FormatPostHog = "posthog"
)

// PostHogEventName is the event every exported host becomes, the name
// Teleport's PreHog gives agent metadata.
const PostHogEventName = "tp.agent.metadata"

// ErrUnknownFormat is returned by Export for a format it does not write.
var ErrUnknownFormat = errors.New("unknown export format")

// ExportedHost is one line of FormatJSON.
type ExportedHost struct {
	api.Report
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// UpdateHistory holds the host's last Options.HistoryPerHost distinct
	// update results, newest first.
	UpdateHistory []api.UpdateResult `json:"update_history"`
}

// PostHogEvent is one line of FormatPostHog, in the shape of PostHog's
// capture API (event, distinct_id, timestamp, properties).
type PostHogEvent struct {
	Event      string         `json:"event"`
	DistinctID string         `json:"distinct_id"`
	Timestamp  time.Time      `json:"timestamp"`
	Properties map[string]any `json:"properties"`
}

// Export writes every host's latest report to w as JSON lines, ordered by
// host_id, in format FormatJSON or FormatPostHog. It reads one snapshot.
//
// Outcomes: nil; ErrUnknownFormat (wrapped) for another format, before
// anything is written; or a database or write error.
func (s *Store) Export(ctx context.Context, w io.Writer, format string) error {
	var encode func(ExportedHost) any
	switch format {
	case FormatJSON:
		encode = func(h ExportedHost) any { return h }
	case FormatPostHog:
		encode = func(h ExportedHost) any { return NewPostHogEvent(h) }
	default:
		return fmt.Errorf("export census: %w %q, want %q or %q", ErrUnknownFormat, format, FormatJSON, FormatPostHog)
	}
	if s.pg != nil {
		return s.pg.export(ctx, w, encode)
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("export census: begin read: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, exportSQL)
	if err != nil {
		return fmt.Errorf("export census: query hosts: %w", err)
	}
	defer rows.Close()
	return writeHosts(w, rows, encode)
}

// exportSQL reads every host for Export, in either backend.
const exportSQL = `SELECT host_id, grp, version, services, os, os_version, arch, glibc,
	install_methods, container_runtime, container_orchestrator, cloud, updater_status,
	last_update_time, last_result, last_update_target, last_update_error, reported_at, first_seen, last_seen,
	history FROM hosts ORDER BY host_id`

// writeHosts writes the hosts of rows (exportSQL) to w, each as encode
// makes it.
func writeHosts(w io.Writer, rows scanner, encode func(ExportedHost) any) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return fmt.Errorf("export census: %w", err)
		}
		if err := enc.Encode(encode(h)); err != nil {
			return fmt.Errorf("export census: write host %s: %w", h.HostID, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export census: query hosts: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export census: write: %w", err)
	}
	return nil
}

// scanHost reads one row of the Export query.
func scanHost(rows scanner) (ExportedHost, error) {
	var h ExportedHost
	var services, methods, lastResult string
	var resultTime sql.NullInt64
	var target, code string
	var reported, first, last int64
	var history string
	if err := rows.Scan(&h.HostID, &h.UpdateGroup, &h.Version, &services, &h.OS, &h.OSVersion,
		&h.HostArchitecture, &h.GlibcVersion, &methods, &h.ContainerRuntime, &h.ContainerOrchestrator,
		&h.CloudEnvironment, &h.UpdaterStatus, &resultTime, &lastResult, &target, &code,
		&reported, &first, &last, &history); err != nil {
		return h, fmt.Errorf("read host: %w", err)
	}
	var entries []historyEntry
	if err := json.Unmarshal([]byte(history), &entries); err != nil {
		return h, fmt.Errorf("read host %s: update history: %w", h.HostID, err)
	}
	h.UpdateHistory = make([]api.UpdateResult, 0, len(entries))
	for _, e := range entries {
		h.UpdateHistory = append(h.UpdateHistory, api.UpdateResult{
			Time: time.UnixMilli(e.Time).UTC(), Target: e.Target, Success: e.Success != 0, ErrorCode: e.Code,
			Error: e.Error, Steps: e.Steps,
		})
	}
	if err := json.Unmarshal([]byte(services), &h.Services); err != nil {
		return h, fmt.Errorf("read host %s: services: %w", h.HostID, err)
	}
	if err := json.Unmarshal([]byte(methods), &h.InstallMethods); err != nil {
		return h, fmt.Errorf("read host %s: install methods: %w", h.HostID, err)
	}
	if resultTime.Valid {
		h.LastUpdateResult = &api.UpdateResult{
			Time:      time.UnixMilli(resultTime.Int64).UTC(),
			Target:    target,
			Success:   lastResult == api.ResultSuccess,
			ErrorCode: code,
		}
	}
	h.ReportedAt = time.UnixMilli(reported).UTC()
	h.FirstSeen = time.UnixMilli(first).UTC()
	h.LastSeen = time.UnixMilli(last).UTC()
	return h, nil
}

// PostHogServices are the Teleport service names exported to PostHog as
// they are; any other name a host reports is exported as "other", so that
// made-up names never become event properties.
var PostHogServices = []string{"auth", "proxy", "node", "kube", "app", "db", "windows_desktop", "discovery", "okta", "jamf"}

// allowedServices maps services to PostHogServices, the rest to "other"
// (once).
func allowedServices(services []string) []string {
	var out []string
	for _, s := range services {
		if !slices.Contains(PostHogServices, s) {
			s = api.SummaryOther
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// NewPostHogEvent maps a host to a PostHog event. Scalar fields become
// "tp.agent.<report field>" (tp.agent.version, tp.agent.os,
// tp.agent.os_version, tp.agent.host_architecture, …), empty ones are left
// out; lists are flattened as in RFD 108: tp.agent.services = [node, kube]
// plus tp.agent.service.node = true and tp.agent.service.kube = true (only
// PostHogServices by name, others as "other"), and
// likewise tp.agent.install_methods plus tp.agent.install_method.<m> = true.
// The last update result becomes tp.agent.last_update.{result, target,
// error_code, time}. distinct_id is the host_id; timestamp is last_seen.
func NewPostHogEvent(h ExportedHost) PostHogEvent {
	p := map[string]any{}
	set := func(key, value string) {
		if value != "" {
			p["tp.agent."+key] = value
		}
	}
	set("host_id", h.HostID)
	set("version", h.Version)
	set("os", h.OS)
	set("os_version", h.OSVersion)
	set("host_architecture", h.HostArchitecture)
	set("glibc_version", h.GlibcVersion)
	set("container_runtime", h.ContainerRuntime)
	set("container_orchestrator", h.ContainerOrchestrator)
	set("cloud_environment", h.CloudEnvironment)
	set("update_group", h.UpdateGroup)
	set("updater_status", h.UpdaterStatus)
	list := func(plural, singular string, values []string) {
		if values == nil {
			values = []string{}
		}
		p["tp.agent."+plural] = values
		for _, v := range values {
			p["tp.agent."+singular+"."+v] = true
		}
	}
	list("services", "service", allowedServices(h.Services))
	list("install_methods", "install_method", h.InstallMethods)
	if u := h.LastUpdateResult; u != nil {
		result := api.ResultFailure
		if u.Success {
			result = api.ResultSuccess
		}
		set("last_update.result", result)
		set("last_update.target", u.Target)
		set("last_update.error_code", u.ErrorCode)
		p["tp.agent.last_update.time"] = u.Time.UTC().Format(time.RFC3339)
	} else {
		set("last_update.result", api.ResultNone)
	}
	return PostHogEvent{Event: PostHogEventName, DistinctID: h.HostID, Timestamp: h.LastSeen, Properties: p}
}
