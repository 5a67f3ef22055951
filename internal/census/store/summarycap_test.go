package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/gravitational/teleport-update/api"
)

// TestSummaryCapsDistinctValues: hosts that report many made-up values of
// one field fill at most api.MaxSummaryValues keys of its count; the
// rarest fold into "other", and no host is lost from the count.
func TestSummaryCapsDistinctValues(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		s, _ := openStore(t, db, Options{})
		const distinct = api.MaxSummaryValues + 50
		for i := range distinct + 10 {
			r := report(i, func(r *api.Report) {
				r.OSVersion = fmt.Sprintf("Made-up OS %d", i%distinct)
				if i < 10 {
					r.OSVersion = "Ubuntu 22.04" // the common value
				}
			})
			if err := s.Ingest(ctx, "staging", r, ident(r), t0); err != nil {
				t.Fatal(err)
			}
		}
		sum, err := s.Summary(ctx, t0, 1e12)
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.ByOS) != api.MaxSummaryValues {
			t.Errorf("by_os has %d keys, want %d", len(sum.ByOS), api.MaxSummaryValues)
		}
		total := 0
		for _, n := range sum.ByOS {
			total += n
		}
		if total != distinct+10 || sum.ByOS["Ubuntu 22.04"] != 10 || sum.ByOS[api.SummaryOther] == 0 {
			t.Errorf("by_os counts %d hosts (want %d), Ubuntu %d (want 10), other %d (want > 0)",
				total, distinct+10, sum.ByOS["Ubuntu 22.04"], sum.ByOS[api.SummaryOther])
		}
	})
}

// TestPostHogServicesAllowlist: known Teleport service names are exported
// by name; made-up ones only as "other".
func TestPostHogServicesAllowlist(t *testing.T) {
	t.Parallel()
	ev := NewPostHogEvent(ExportedHost{Report: api.Report{HostID: hostID(0), Services: []string{"node", "evil_name", "kube", "another_one"}}})
	got := ev.Properties["tp.agent.services"]
	if fmt.Sprint(got) != "[node other kube]" {
		t.Errorf("tp.agent.services = %v, want [node other kube]", got)
	}
	for _, k := range []string{"tp.agent.service.evil_name", "tp.agent.service.another_one"} {
		if _, ok := ev.Properties[k]; ok {
			t.Errorf("made-up service exported as property %s", k)
		}
	}
	if ev.Properties["tp.agent.service.other"] != true || ev.Properties["tp.agent.service.node"] != true {
		t.Errorf("properties %v lack service.other or service.node", ev.Properties)
	}
}
