package inbound

import (
	"errors"
	"strings"
	"testing"
)

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"account_id":"a","event":"message_received","chat_id":"c","message_id":"m","timestamp":"2026-12-03T09:00:00.123Z","message":"Hello","sender":{"attendee_id":"x","attendee_provider_id":"336@s.whatsapp.net"},"is_sender":0}`))
	f.Add([]byte(`{"AccountStatus":{"account_id":"a","account_type":"WHATSAPP","message":"CREDENTIALS"}}`))
	f.Add([]byte(`{"account_id":"a","event":"message_reaction","message_id":"m","timestamp":"2026-12-03T09:00:00Z","reaction":"👍","reaction_sender":{"attendee_provider_id":"p"}}`))
	f.Add([]byte(`{"event":"unknown"}`))
	f.Add([]byte(`{"event":`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Decode(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKind) {
				t.Fatalf("unclassified error %v", err)
			}
			if ev != nil {
				t.Fatal("an event with an error")
			}
			return
		}
		if ev.AccountID == "" || (ev.Kind != KindAccountStatus && (ev.MessageID == "" || ev.At.IsZero())) {
			t.Fatalf("accepted an incomplete event %+v", ev)
		}
		if k := ev.Key(); ev.Kind != KindAccountStatus && k == "" {
			t.Fatal("a message event without a dedupe key")
		}
	})
}

func TestDecodeErrorsNeverQuoteTheMessage(t *testing.T) {
	_, err := Decode([]byte(`{"account_id":"a","event":"message_received","chat_id":"c","timestamp":"x","message":"secret words"}`))
	if err == nil || strings.Contains(err.Error(), "secret words") {
		t.Fatalf("error %v", err)
	}
}

func TestKeywords(t *testing.T) {
	k := NewKeywords(nil)
	for _, tt := range []struct {
		text string
		want bool
	}{
		{"STOP", true}, {"stop", true}, {"  Stop!! ", true}, {"STOP 🛑", true}, {"Arrêt", true}, {"désinscrire", true},
		{"Darse de baja", true}, {"stopp", true}, {"Aufhören", true}, {"unsubscribe.", true},
		{"stop by tomorrow?", false}, {"please don't stop", false}, {"", false}, {"stopped", false},
	} {
		if _, got := k.Match(tt.text); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.text, got, tt.want)
		}
	}
	custom := NewKeywords([]string{"Halt"})
	if _, ok := custom.Match("HALT"); !ok {
		t.Error("custom keyword not matched")
	}
	if _, ok := custom.Match("stop"); ok {
		t.Error("a custom list replaces the defaults")
	}
}
