package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// listTextWidth is how many characters of a message text a list shows.
const listTextWidth = 40

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes one tab-separated table row. Cells must already be one line.
func row(tw io.Writer, cells ...string) {
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// cell makes s safe for one table cell: control characters (which could
// move the cursor or recolour the terminal) are escaped, line breaks and tabs
// become visible marks, and an empty value shows as "-".
func cell(s string) string {
	if s == "" {
		return "-"
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString("↵")
		case r == '\t':
			b.WriteString(" ")
		case r == '\r':
		case isHidden(r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// truncate shortens s to at most n characters, marking the cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}

// isHidden reports whether r is a control or format character: invisible,
// or able to change how the rest of the terminal output looks (escape
// sequences, bidirectional overrides, zero-width characters).
func isHidden(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError
}

// hasHidden reports whether s holds any character isHidden.
func hasHidden(s string) bool {
	for _, r := range s {
		if isHidden(r) {
			return true
		}
	}
	return false
}

// showText escapes the hidden characters of a message text for `show`,
// keeping line breaks, so the approver sees every character that will be
// sent and nothing can rewrite the terminal.
func showText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if isHidden(r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}

// shortDigest is the first 12 hex digits of a digest, for tables; `show`
// prints the whole digest.
func shortDigest(d string) string {
	if len(d) <= 12 {
		return d
	}
	return d[:12] + "…"
}

// writePrettyJSON writes raw JSON from the API indented, or as it is when it
// is not valid JSON.
func writePrettyJSON(w io.Writer, raw []byte) error {
	var buf strings.Builder
	if b, err := indentJSON(raw); err == nil {
		buf.Write(b)
	} else {
		buf.Write(raw)
	}
	if !strings.HasSuffix(buf.String(), "\n") {
		buf.WriteString("\n")
	}
	_, err := io.WriteString(w, buf.String())
	return err
}

func indentJSON(raw []byte) ([]byte, error) {
	var v json.RawMessage
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return json.MarshalIndent(v, "", "  ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
