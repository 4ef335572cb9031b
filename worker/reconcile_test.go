package worker

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

// Only the takeovers of an attempt are reads of its chat: the watchdog's recoveries, EndCall
// and a cancel or reject asked while sending are not.
func TestReconcileTries(t *testing.T) {
	start := tasks.Event{State: tasks.StateSending, Attempt: 1, Detail: "attempt started"}
	takeover := tasks.Event{State: tasks.StateSending, Attempt: 1, Detail: "lease expired: reconciling"}
	tests := []struct {
		name    string
		history []tasks.Event
		want    int
	}{
		{"just started", []tasks.Event{start}, 0},
		{"one takeover", []tasks.Event{start, takeover}, 1},
		{"end call is not a try", []tasks.Event{start, {State: tasks.StateSending, Attempt: 1, Reason: tasks.ReasonUnknownOutcome}, takeover}, 1},
		{"recovery is not a try", []tasks.Event{start, {State: tasks.StateSending, Attempt: 1, By: ledger.RecoveredBy}, takeover}, 1},
		{"cancel while sending is not a try", []tasks.Event{start, {State: tasks.StateSending, Attempt: 1, Reason: tasks.ReasonCanceled, By: "admin"}, takeover, takeover}, 2},
		{"another attempt's takeovers do not count", []tasks.Event{start, {State: tasks.StateSending, Attempt: 2, Detail: "lease expired: reconciling"}}, 0},
		{"no history", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reconcileTries(&tasks.Record{History: tt.history}, 1); got != tt.want {
				t.Errorf("tries = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestSameText: what a provider may do to a text on the way (line ends, Unicode
// normalisation, trailing white space) never makes it another text; any other change does.
func TestSameText(t *testing.T) {
	const sent = "Bonjour Léa,\nsuite à notre appel : voici l'offre.\n\nÀ bientôt"
	tests := []struct {
		name   string
		listed string
		want   bool
	}{
		{"identical", sent, true},
		{"CRLF line ends", strings.ReplaceAll(sent, "\n", "\r\n"), true},
		{"CR line ends", strings.ReplaceAll(sent, "\n", "\r"), true},
		{"NFD", norm.NFD.String(sent), true},
		{"trailing spaces on lines", strings.ReplaceAll(sent, "\n", "  \n") + "\t ", true},
		{"surrounding space", "  \n" + sent + "\n", true},
		{"another word", strings.Replace(sent, "offre", "offer", 1), false},
		{"accent dropped", strings.Replace(sent, "Léa", "Lea", 1), false},
		{"case", strings.ToUpper(sent), false},
		{"inner space", strings.Replace(sent, "notre appel", "notre  appel", 1), false},
		{"leading space on a line", strings.Replace(sent, "\nsuite", "\n suite", 1), false},
		{"blank line removed", strings.Replace(sent, "\n\n", "\n", 1), false},
		{"prefix", sent[:20], false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameText(tt.listed, sent); got != tt.want {
				t.Errorf("sameText(%q) = %v, want %v", tt.listed, got, tt.want)
			}
		})
	}
}

// FuzzNormText: normText is idempotent, blind to line-end style, NFC/NFD and trailing
// white space, and keeps every other character: two texts it equates differ only in those.
func FuzzNormText(f *testing.F) {
	for _, s := range []string{"", "hello", "a\r\nb", "é", "e\u0301", "x  \ny\t", "\r\r\n", "Ǆ\u0300 ok"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // texts come from JSON: always UTF-8
		}
		s = strings.ReplaceAll(s, "\r", "") // line ends are added below, one style at a time
		n := normText(s)
		if normText(n) != n {
			t.Fatalf("not idempotent: %q → %q → %q", s, n, normText(n))
		}
		for _, v := range []string{strings.ReplaceAll(s, "\n", "\r\n"), norm.NFD.String(s), norm.NFC.String(s), s + " \t\n"} {
			if normText(v) != n {
				t.Fatalf("%q and %q normalise differently: %q, %q", s, v, normText(v), n)
			}
		}
		if strings.ContainsRune(n, '\r') {
			t.Fatalf("CR left in %q", n)
		}
		if changed := s + "x"; normText(changed) == n {
			t.Fatalf("%q and %q normalise alike", s, changed)
		}
	})
}
