package manpage

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func tree() *cobra.Command {
	root := &cobra.Command{Use: "tool", Short: "Does things", Long: "Tool does things.\n\n.starts with a dot\n  indented line"}
	root.PersistentFlags().Bool("debug", false, "verbose logging")
	run := func(*cobra.Command, []string) {}
	proxy := &cobra.Command{Use: "proxy", Short: "Proxy commands"}
	serve := &cobra.Command{Use: "serve", Short: "Serve the API", Run: run}
	serve.Flags().String("listen", ":443", "address to listen on")
	serve.Flags().String("secret", "", "not shown")
	_ = serve.Flags().MarkHidden("secret")
	proxy.AddCommand(serve)
	root.AddCommand(proxy, &cobra.Command{Use: "man", Hidden: true, Run: run})
	return root
}

func render(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, tree(), Page{Section: "8", Date: "2026-12-06", Source: "tool 1.0.0", Manual: "System Administration"}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestPageHasEveryVisibleCommandAndFlag(t *testing.T) {
	page := render(t)
	for _, want := range []string{
		`.TH "TOOL" 8 "2026\-12\-06" "tool 1.0.0" "System Administration"`,
		`tool \- does things`,
		`.SS "tool proxy serve"`,
		`\fB\-\-listen \fIstring\fR\fR`,
		`address to listen on (default :443)`,
		`\fB\-\-debug\fR`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	for _, hidden := range []string{"tool man", "secret"} {
		if strings.Contains(page, hidden) {
			t.Errorf("page shows hidden %q", hidden)
		}
	}
}

func TestPageEscapesRoff(t *testing.T) {
	page := render(t)
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, ".starts") {
			t.Errorf("text line read as a roff request: %q", line)
		}
	}
	if !strings.Contains(page, `\&.starts with a dot`) {
		t.Errorf("leading dot not escaped:\n%s", page)
	}
	if !strings.Contains(page, ".br\nindented line") {
		t.Errorf("indented line lost its break:\n%s", page)
	}
}

// TestPageFormatsCleanly runs the page through man(1) with its warnings on,
// as lintian does, when man is installed.
func TestPageFormatsCleanly(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("man not installed")
	}
	cmd := exec.Command("man", "--warnings", "-l", "-Tutf8", "-")
	cmd.Stdin = strings.NewReader(render(t))
	cmd.Env = append(cmd.Environ(), "MANWIDTH=80")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("man: %v: %s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("man warnings:\n%s", stderr.String())
	}
	// man overstrikes bold and underlined letters when writing to a pipe.
	plain := regexp.MustCompile(".\x08").ReplaceAllString(string(out), "")
	if !strings.Contains(plain, "tool proxy serve") {
		t.Errorf("formatted page lacks the serve command:\n%s", out)
	}
}
