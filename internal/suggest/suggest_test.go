package suggest

import "testing"

func TestClosest(t *testing.T) {
	cmds := []string{"enqueue", "list", "show", "approve", "reject", "cancel", "audit"}
	fields := []string{"send_id", "operation", "account_id", "chat_id", "attendees_ids", "text"}
	tests := []struct {
		word       string
		candidates []string
		want       string
		ok         bool
	}{
		{"lsit", cmds, "list", true},
		{"aprove", cmds, "approve", true},
		{"shwo", cmds, "show", true},
		{"attendee_ids", fields, "attendees_ids", true},
		{"sendid", fields, "send_id", true},
		{"deploy", cmds, "", false},
		{"x", cmds, "", false},
		{"list", cmds, "", false}, // not a typo: the word itself is never suggested
		{"", cmds, "", false},
	}
	for _, tc := range tests {
		got, ok := Closest(tc.word, tc.candidates)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Closest(%q) = %q, %v; want %q, %v", tc.word, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzClosest(f *testing.F) {
	f.Add("lsit", "list")
	f.Add("", "a")
	f.Add("attendee_ids", "attendees_ids")
	f.Fuzz(func(t *testing.T, word, cand string) {
		got, ok := Closest(word, []string{cand})
		if ok && (got != cand || got == word) {
			t.Fatalf("Closest(%q, [%q]) = %q", word, cand, got)
		}
		if distance(word, cand) != distance(cand, word) {
			t.Fatalf("distance not symmetric for %q, %q", word, cand)
		}
	})
}
