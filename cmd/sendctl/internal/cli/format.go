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

// zone is the time zone sendctl prints times in (-tz, SENDCTL_TZ): UTC by default, so output
// is the same on every machine; "local" is the machine's zone.
type zone struct{ loc *time.Location }

func (z zone) location() *time.Location {
	if z.loc == nil {
		return time.UTC
	}
	return z.loc
}

// fmtTime prints t in the zone, RFC 3339 (so with its offset), or "-" when zero.
func (z zone) fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(z.location()).Format(time.RFC3339)
}

func (z zone) fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return z.fmtTime(*t)
}

// parseZone reads -tz: an IANA name ("Europe/Paris"), "UTC" or "local".
func parseZone(s string) (zone, error) {
	switch s {
	case "", "UTC", "utc":
		return zone{loc: time.UTC}, nil
	case "local", "Local":
		return zone{loc: time.Local}, nil
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return zone{}, fmt.Errorf("-tz %q: want an IANA zone such as Europe/Paris, UTC or local", s)
	}
	return zone{loc: loc}, nil
}

// parseTime reads a time typed by a human: RFC 3339 with its offset, or a date and time
// without one ("2026-03-01T09:30", "2026-03-01 09:30", "2026-03-01"), taken in the zone.
func (z zone) parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, z.location()); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-03-01T09:30:00+01:00) or 2026-03-01T09:30 in the -tz zone", s)
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
