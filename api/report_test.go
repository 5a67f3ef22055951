package api

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
)

const validBody = `{"host_id":"3094a6150cd1bbb551bd449dde8ae6e744f7962dab97c7a484a906b9f284d5ba",
"version":"16.4.6","services":["node","kube"],"os":"linux","os_version":"Debian GNU/Linux 12",
"host_architecture":"amd64","glibc_version":"2.36","install_methods":["systemctl","teleport-update"],
"container_runtime":"","container_orchestrator":"","cloud_environment":"aws","update_group":"staging",
"updater_status":"enabled","last_update_result":{"time":"2026-11-22T02:10:00Z","target":"16.4.6","success":true,"error_code":""},
"reported_at":"2026-11-22T12:00:00Z"}`

// edit returns validBody with old replaced by new (exactly once).
func edit(t testing.TB, old, new string) string {
	t.Helper()
	if strings.Count(validBody, old) != 1 {
		t.Fatalf("test bug: %q is not in the valid body exactly once", old)
	}
	return strings.Replace(validBody, old, new, 1)
}

func TestDecodeReportValid(t *testing.T) {
	t.Parallel()
	r, err := DecodeReport([]byte(validBody))
	if err != nil {
		t.Fatalf("DecodeReport: %v", err)
	}
	want := Report{
		HostID:           "3094a6150cd1bbb551bd449dde8ae6e744f7962dab97c7a484a906b9f284d5ba",
		Version:          "16.4.6",
		Services:         []string{"node", "kube"},
		OS:               "linux",
		OSVersion:        "Debian GNU/Linux 12",
		HostArchitecture: "amd64",
		GlibcVersion:     "2.36",
		InstallMethods:   []string{"systemctl", "teleport-update"},
		CloudEnvironment: "aws",
		UpdateGroup:      "staging",
		UpdaterStatus:    "enabled",
		LastUpdateResult: &UpdateResult{Time: time.Date(2026, 11, 22, 2, 10, 0, 0, time.UTC), Target: "16.4.6", Success: true},
		ReportedAt:       time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC),
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("DecodeReport =\n%+v\nwant\n%+v", r, want)
	}
	// Optional fields may be null or absent.
	for _, body := range []string{
		edit(t, `"services":["node","kube"]`, `"services":null`),
		edit(t, `"last_update_result":{"time":"2026-11-22T02:10:00Z","target":"16.4.6","success":true,"error_code":""},`, ``),
		edit(t, `"last_update_result":{"time":"2026-11-22T02:10:00Z","target":"16.4.6","success":true,"error_code":""}`, `"last_update_result":null`),
		edit(t, `"version":"16.4.6",`, ``),
		edit(t, `"host_id":"3094a6150cd1bbb551bd449dde8ae6e744f7962dab97c7a484a906b9f284d5ba",`, ``),
		edit(t, `"container_orchestrator":""`, `"container_orchestrator":"kubernetes-v1.29.4-eks-036c24b"`),
		edit(t, `"success":true,"error_code":""`, `"success":false,"error_code":"health_check"`),
		"\n " + validBody + "\n",
	} {
		if _, err := DecodeReport([]byte(body)); err != nil {
			t.Errorf("DecodeReport(%s) = %v, want success", body, err)
		}
	}
}

// TestDecodeReportRunLog: a failed result with its message and run log
// decodes as sent.
func TestDecodeReportRunLog(t *testing.T) {
	t.Parallel()
	body := edit(t, `"success":true,"error_code":""`, `"success":false,"error_code":"health_check",
		"error":"health check of 16.4.6 failed: the agent restarted 3 times",
		"steps":[{"name":"download","duration_ms":812,"result":"ok"},{"name":"failed","duration_ms":30000,"result":"health_check"}]`)
	r, err := DecodeReport([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	u := r.LastUpdateResult
	if u.Error != "health check of 16.4.6 failed: the agent restarted 3 times" || len(u.Steps) != 2 ||
		u.Steps[0] != (RunStep{Name: "download", DurationMS: 812, Result: "ok"}) || u.Steps[1].Result != "health_check" {
		t.Errorf("decoded result %+v", u)
	}
}

func TestDecodeReportRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
	}{
		{"empty", ``},
		{"null", `null`},
		{"array", `[` + validBody + `]`},
		{"string", `"report"`},
		{"two values", validBody + validBody},
		{"trailing garbage", validBody + `x`},
		{"truncated", validBody[:len(validBody)-2]},
		{"unknown field", edit(t, `"os":"linux"`, `"os":"linux","hostname":"db-1"`)},
		{"unknown nested field", edit(t, `"error_code":""`, `"error_code":"","ip":"10.0.0.1"`)},
		{"duplicate field", edit(t, `"os":"linux"`, `"os":"linux","os":"darwin"`)},
		{"wrong case field", edit(t, `"os":"linux"`, `"OS":"linux"`)},
		{"case-folded field", edit(t, `"os":"linux"`, "\"o\u017f\":\"linux\"")},
		{"escaped field", edit(t, `"os":"linux"`, `"o\u0073":"linux"`)},
		{"duplicate nested field", edit(t, `"success":true`, `"success":true,"success":false`)},
		{"unbalanced", validBody + `}`},
		{"missing comma", edit(t, `"os":"linux",`, `"os":"linux"`)},
		{"wrong type string", edit(t, `"version":"16.4.6"`, `"version":16`)},
		{"wrong type list", edit(t, `"services":["node","kube"]`, `"services":"node"`)},
		{"wrong type bool", edit(t, `"success":true`, `"success":"yes"`)},
		{"wrong type object", edit(t, `"os":"linux"`, `"os":{"name":"linux"}`)},
		{"nested list", edit(t, `"services":["node","kube"]`, `"services":[["node"]]`)},
		{"object in a list", edit(t, `"services":["node","kube"]`, `"services":[{"name":"node"}]`)},
		{"unknown step field", edit(t, `"error_code":""`, `"error_code":"","steps":[{"name":"download","duration_ms":1,"result":"ok","host":"x"}]`)},
		{"duplicate step field", edit(t, `"error_code":""`, `"error_code":"","steps":[{"name":"download","name":"x","duration_ms":1,"result":"ok"}]`)},
		{"step object nested", edit(t, `"error_code":""`, `"error_code":"","steps":[{"name":{"a":1},"duration_ms":1,"result":"ok"}]`)},
		{"step name not a word", edit(t, `"error_code":""`, `"error_code":"","steps":[{"name":"Down Load","duration_ms":1,"result":"ok"}]`)},
		{"negative duration", edit(t, `"error_code":""`, `"error_code":"","steps":[{"name":"download","duration_ms":-1,"result":"ok"}]`)},
		{"too many steps", edit(t, `"error_code":""`, `"error_code":"","steps":[`+strings.Repeat(`{"name":"a","duration_ms":1,"result":"ok"},`, MaxRunSteps)+`{"name":"a","duration_ms":1,"result":"ok"}]`)},
		{"error too long", edit(t, `"error_code":""`, `"error_code":"","error":"`+strings.Repeat("x", MaxErrorLen+1)+`"`)},
		{"error with a control character", edit(t, `"error_code":""`, `"error_code":"","error":"a\u001b[2Jb"`)},
		{"bad time", edit(t, `"reported_at":"2026-11-22T12:00:00Z"`, `"reported_at":"yesterday"`)},
		{"missing reported_at", edit(t, `,
"reported_at":"2026-11-22T12:00:00Z"`, ``)},
		{"oversized", edit(t, `"os_version":"Debian GNU/Linux 12"`, `"os_version":"`+strings.Repeat("x", MaxReportSize)+`"`)},
		{"oversized by whitespace", validBody + strings.Repeat(" ", MaxReportSize)},
		{"long field", edit(t, `"os_version":"Debian GNU/Linux 12"`, `"os_version":"`+strings.Repeat("x", MaxFieldLen+1)+`"`)},
		{"control character", edit(t, `"update_group":"staging"`, `"update_group":"stag\u0000ing"`)},
		{"invalid utf8", edit(t, `"update_group":"staging"`, "\"update_group\":\"stag\xffing\"")},
		{"host id not hex", edit(t, `"host_id":"3094a6150cd1bbb551bd449dde8ae6e744f7962dab97c7a484a906b9f284d5ba"`, `"host_id":"4a3b1c2d5e6f708192a3b4c5d6e7f809"`)},
		{"version not semver", edit(t, `"version":"16.4.6"`, `"version":"latest"`)},
		{"version with v", edit(t, `"version":"16.4.6"`, `"version":"v16.4.6"`)},
		{"bad service", edit(t, `"services":["node","kube"]`, `"services":["Node Service"]`)},
		{"duplicate service", edit(t, `"services":["node","kube"]`, `"services":["node","node"]`)},
		{"too many services", edit(t, `"services":["node","kube"]`, `"services":[`+strings.Repeat(`"a",`, MaxListLen)+`"b"]`)},
		{"bad install method", edit(t, `"install_methods":["systemctl","teleport-update"]`, `"install_methods":["curl"]`)},
		{"bad runtime", edit(t, `"container_runtime":""`, `"container_runtime":"lxc"`)},
		{"bad orchestrator", edit(t, `"container_orchestrator":""`, `"container_orchestrator":"nomad"`)},
		{"bad cloud", edit(t, `"cloud_environment":"aws"`, `"cloud_environment":"AWS"`)},
		{"bad status", edit(t, `"updater_status":"enabled"`, `"updater_status":"on"`)},
		{"missing status", edit(t, `"updater_status":"enabled",`, ``)},
		{"bad glibc", edit(t, `"glibc_version":"2.36"`, `"glibc_version":"musl"`)},
		{"bad arch", edit(t, `"host_architecture":"amd64"`, `"host_architecture":"x86 64"`)},
		{"result without time", edit(t, `"time":"2026-11-22T02:10:00Z",`, ``)},
		{"result without target", edit(t, `"target":"16.4.6",`, ``)},
		{"success with error code", edit(t, `"error_code":""`, `"error_code":"boom"`)},
		{"bad error code", edit(t, `"success":true,"error_code":""`, `"success":false,"error_code":"Health Check!"`)},
		{"updater version not semver", edit(t, `"updater_status":"enabled"`, `"updater_status":"enabled","updater_version":"latest"`)},
		{"self-update error on two lines", edit(t, `"updater_status":"enabled"`, `"updater_status":"enabled","self_update_error":"a\nb"`)},
		{"self-update error too long", edit(t, `"updater_status":"enabled"`, `"updater_status":"enabled","self_update_error":"`+strings.Repeat("x", MaxErrorLen+1)+`"`)},
		{"updater version twice", edit(t, `"updater_status":"enabled"`, `"updater_status":"enabled","updater_version":"1.0.0","updater_version":"1.0.0"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeReport([]byte(tt.body))
			if !errors.Is(err, ErrInvalidReport) {
				t.Errorf("DecodeReport = %v, want ErrInvalidReport", err)
			}
		})
	}
}

// TestDecodeReportUpdaterFields: what a report says about the updater
// itself is optional and kept as sent.
func TestDecodeReportUpdaterFields(t *testing.T) {
	body := edit(t, `"updater_status":"enabled"`, `"updater_status":"enabled","updater_version":"1.5.0","self_update_error":"self_update: setup failed"`)
	r, err := DecodeReport([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.UpdaterVersion != "1.5.0" || r.SelfUpdateError != "self_update: setup failed" {
		t.Fatalf("decoded %q %q", r.UpdaterVersion, r.SelfUpdateError)
	}
	if r, err := DecodeReport([]byte(validBody)); err != nil || r.UpdaterVersion != "" {
		t.Fatalf("a report without them: %v %q", err, r.UpdaterVersion)
	}
}

func FuzzDecodeReport(f *testing.F) {
	f.Add([]byte(validBody))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"host_id":"","updater_status":"pinned","reported_at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"last_update_result":{"time":"2026-01-01T00:00:00Z","target":"1.2.3","success":false,"error_code":"x"}}`))
	f.Add([]byte(`{"services":[["a"]],"os":{"a":1}}`))
	f.Add([]byte(`{"os":"linux","OS":"darwin"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"o\u0073":"linux","last_update_result":{"time":"x"},"services":["a",{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		defer fuzzwatch.Start()()
		r, err := DecodeReport(body)
		if err != nil {
			if !errors.Is(err, ErrInvalidReport) {
				t.Fatalf("DecodeReport error %v does not wrap ErrInvalidReport", err)
			}
			return
		}
		// What was accepted re-encodes to something accepted and equal.
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := DecodeReport(b)
		if err != nil {
			t.Fatalf("re-encoded report refused: %v\n%s", err, b)
		}
		b2, _ := json.Marshal(r2)
		if string(b) != string(b2) {
			t.Fatalf("round trip changed the report:\n%s\n%s", b, b2)
		}
	})
}

// TestReportFieldsMatchStruct keeps the strict key list in step with the
// struct, and the struct free of identifying fields.
func TestReportFieldsMatchStruct(t *testing.T) {
	t.Parallel()
	var keys []string
	rt := reflect.TypeFor[Report]()
	for i := range rt.NumField() {
		keys = append(keys, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
	}
	if !slices.Equal(keys, reportFields) {
		t.Errorf("Report JSON keys %v, reportFields %v", keys, reportFields)
	}
	for _, tc := range []struct {
		typ    reflect.Type
		fields []string
	}{{reflect.TypeFor[UpdateResult](), resultFields}, {reflect.TypeFor[RunStep](), stepFields}} {
		var keys []string
		for i := range tc.typ.NumField() {
			keys = append(keys, strings.Split(tc.typ.Field(i).Tag.Get("json"), ",")[0])
		}
		if !slices.Equal(keys, tc.fields) {
			t.Errorf("%s JSON keys %v, allowed fields %v", tc.typ.Name(), keys, tc.fields)
		}
	}
	for _, k := range keys {
		for _, banned := range []string{"hostname", "ip", "addr", "user", "machine_id"} {
			if strings.Contains(k, banned) {
				t.Errorf("report field %q looks identifying", k)
			}
		}
	}
}

// TestValuePredicates checks each exported predicate agrees with Validate
// on the field it describes.
func TestValuePredicates(t *testing.T) {
	t.Parallel()
	valid := func(edit func(*Report)) bool {
		r := Report{UpdaterStatus: StatusEnabled, ReportedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		edit(&r)
		return r.Validate() == nil
	}
	result := func(code string) func(*Report) {
		return func(r *Report) {
			r.LastUpdateResult = &UpdateResult{Time: r.ReportedAt, Target: "1.2.3", ErrorCode: code}
		}
	}
	tests := []struct {
		name  string
		pred  func(string) bool
		field func(string) func(*Report)
		in    string
		want  bool
	}{
		{"word", ValidWord, func(s string) func(*Report) { return func(r *Report) { r.Services = []string{s} } }, "windows_desktop", true},
		{"word uppercase", ValidWord, func(s string) func(*Report) { return func(r *Report) { r.Services = []string{s} } }, "Node", false},
		{"word space", ValidWord, func(s string) func(*Report) { return func(r *Report) { r.OS = s } }, "a b", false},
		{"word too long", ValidWord, func(s string) func(*Report) { return func(r *Report) { r.OS = s } }, strings.Repeat("a", 33), false},
		{"word empty", ValidWord, func(s string) func(*Report) { return func(r *Report) { r.Services = []string{s} } }, "", false},
		{"install method", ValidInstallMethod, func(s string) func(*Report) { return func(r *Report) { r.InstallMethods = []string{s} } }, InstallMethodNodeScript, true},
		{"install method unknown", ValidInstallMethod, func(s string) func(*Report) { return func(r *Report) { r.InstallMethods = []string{s} } }, "curl", false},
		{"orchestrator", ValidOrchestrator, func(s string) func(*Report) { return func(r *Report) { r.ContainerOrchestrator = s } }, "kubernetes-v1.29.4-eks-036c24b", true},
		{"orchestrator other", ValidOrchestrator, func(s string) func(*Report) { return func(r *Report) { r.ContainerOrchestrator = s } }, "nomad-1.7", false},
		{"orchestrator too long", ValidOrchestrator, func(s string) func(*Report) { return func(r *Report) { r.ContainerOrchestrator = s } }, "kubernetes-" + strings.Repeat("1", 129), false},
		{"error code", ValidErrorCode, result, "health_check", true},
		{"error code dotted", ValidErrorCode, result, "verify.checksum-file", true},
		{"error code spaces", ValidErrorCode, result, "Health Check!", false},
		{"version", ValidVersion, func(s string) func(*Report) { return func(r *Report) { r.Version = s } }, "16.4.6-rc.1", true},
		{"version empty", ValidVersion, func(s string) func(*Report) { return func(r *Report) { r.Version = s } }, "", true},
		{"version with v", ValidVersion, func(s string) func(*Report) { return func(r *Report) { r.Version = s } }, "v16.4.6", false},
		{"version too long", ValidVersion, func(s string) func(*Report) { return func(r *Report) { r.Version = s } }, "1.2.3-" + strings.Repeat("a", 130), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.pred(tt.in); got != tt.want {
				t.Errorf("predicate(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if got := valid(tt.field(tt.in)); got != tt.want {
				t.Errorf("Validate with %q: valid = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
