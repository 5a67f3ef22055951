// Package manpage renders a cobra command tree as one roff manual page, the
// page the packages install as teleport-update(8). Every visible command
// gets a subsection with its usage line, its long help and its flags, so
// the page says what --help says, in the form man(1) reads.
package manpage

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Page describes the page around the command tree.
type Page struct {
	Section string // "8" for an administration command
	Date    string // YYYY-MM-DD, the page's date (the release's)
	Source  string // e.g. "teleport-update 1.2.3"
	Manual  string // e.g. "System Administration"
	// Extra sections after the commands, title → paragraphs, in order.
	Extra []Section
}

// Section is one extra top-level section of the page.
type Section struct {
	Title      string
	Paragraphs []string
}

// Write renders root's tree as a roff man page to w.
func Write(w io.Writer, root *cobra.Command, p Page) error {
	var b bytes.Buffer
	name := root.Name()
	fmt.Fprintf(&b, ".TH %s %s %s %s %s\n", quoteArg(strings.ToUpper(name)), p.Section, quoteArg(p.Date), quoteArg(p.Source), quoteArg(p.Manual))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", escape(name), escape(lowerFirst(root.Short)))
	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(&b, ".B %s\n.RI [ global-options ] \" command \" [ options ]\n", escape(name))
	b.WriteString(".SH DESCRIPTION\n")
	paragraphs(&b, root.Long)
	b.WriteString(".SH GLOBAL OPTIONS\n")
	flags(&b, root.PersistentFlags())
	b.WriteString(".SH COMMANDS\n")
	for _, c := range visible(root) {
		command(&b, c)
	}
	for _, s := range p.Extra {
		fmt.Fprintf(&b, ".SH %s\n", escape(strings.ToUpper(s.Title)))
		for _, para := range s.Paragraphs {
			paragraphs(&b, para)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// command renders c and, below it, its own visible subcommands.
func command(b *bytes.Buffer, c *cobra.Command) {
	fmt.Fprintf(b, ".SS %s\n", quoteArg(c.CommandPath()))
	fmt.Fprintf(b, ".B %s\n.br\n", escape(c.UseLine()))
	text := c.Long
	if text == "" {
		text = c.Short
	}
	paragraphs(b, text)
	if c.HasAvailableLocalFlags() {
		b.WriteString(".PP\nOptions:\n")
		flags(b, c.LocalFlags())
	}
	for _, sub := range visible(c) {
		command(b, sub)
	}
}

// visible lists c's subcommands that --help lists.
func visible(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && sub.Name() != "help" {
			out = append(out, sub)
		}
	}
	return out
}

// flags renders each visible flag of fs as a tagged paragraph.
func flags(b *bytes.Buffer, fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		tag := "\\-\\-" + escape(f.Name)
		if f.Shorthand != "" {
			tag = "\\-" + escape(f.Shorthand) + ", " + tag
		}
		if t := f.Value.Type(); t != "bool" {
			tag += " \\fI" + escape(t) + "\\fR"
		}
		usage := f.Usage
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" && f.DefValue != "0" && f.DefValue != "0s" {
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(b, ".TP\n\\fB%s\\fR\n%s\n", tag, escapeLine(usage))
	})
}

// paragraphs renders text: blank lines separate paragraphs, and a line
// that starts with spaces keeps its line break (lists, examples).
func paragraphs(b *bytes.Buffer, text string) {
	text = strings.TrimSpace(text)
	if text == "" {
		return
	}
	for _, para := range strings.Split(text, "\n\n") {
		b.WriteString(".PP\n")
		for _, line := range strings.Split(para, "\n") {
			if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
				b.WriteString(".br\n")
				line = strings.TrimSpace(line)
			}
			if line != "" {
				b.WriteString(escapeLine(line) + "\n")
			}
		}
	}
}

// escape makes s safe as roff text: backslashes and hyphens (minus signs
// in command lines and flags) are escaped.
func escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}

// escapeLine escapes s as a whole text line: a line starting with a
// control character ('.' or a quote) would be read as a request.
func escapeLine(s string) string {
	s = escape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// quoteArg quotes s as one argument of a request.
func quoteArg(s string) string {
	return `"` + strings.ReplaceAll(escape(s), `"`, `\(dq`) + `"`
}

// lowerFirst lower-cases the first letter, as man pages' NAME lines are.
func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
