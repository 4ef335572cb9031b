package wasim

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDemoSeed(t *testing.T) {
	onDisk, err := os.ReadFile("testdata/demo-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := LoadSeed(bytes.NewReader(onDisk))
	if err != nil {
		t.Fatalf("demo seed file: %v", err)
	}
	seed := DemoSeed()
	if !reflect.DeepEqual(seed, fromFile) {
		t.Fatal("embedded demo seed differs from the file")
	}
	s, err := New(Options{Seed: seed, Now: newClock().Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	healthyAccounts, credentials := 0, 0
	for _, a := range s.Accounts() {
		switch {
		case healthy(a.Status):
			healthyAccounts++
		case a.Status == statusCredentials:
			credentials++
		}
		if a.Chats == 0 {
			t.Errorf("account %s has no chats", a.ID)
		}
	}
	if healthyAccounts != 2 || credentials != 1 {
		t.Errorf("%d healthy and %d CREDENTIALS accounts, want 2 and 1", healthyAccounts, credentials)
	}
	// One contact replied within the last few minutes.
	recent := false
	for _, a := range seed.Accounts {
		for _, c := range a.Chats {
			last := c.Messages[len(c.Messages)-1]
			if d, _ := time.ParseDuration(last.Ago); !last.FromMe && last.Ago != "" && d <= 10*time.Minute {
				recent = true
			}
		}
	}
	if !recent {
		t.Error("no contact replied recently in the demo seed")
	}
}

func TestLoadSeedStrict(t *testing.T) {
	valid := `{"accounts":[{"id":"a","name":"A","phone_number":"33700000001","contacts":[{"id":"c1","provider_id":"33611111111@s.whatsapp.net","name":"C"}],
		"chats":[{"id":"h1","type":0,"attendees":["33611111111@s.whatsapp.net"],"messages":[{"id":"m1","text":"hi","ago":"1h"}]}]}]}`
	if _, err := LoadSeed(strings.NewReader(valid)); err != nil {
		t.Fatalf("valid seed: %v", err)
	}
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr string
	}{
		{"unknown field", func(s string) string { return strings.Replace(s, `"name":"A"`, `"name":"A","colour":"red"`, 1) }, "unknown field"},
		{"trailing data", func(s string) string { return s + `{}` }, "trailing"},
		{"not JSON", func(string) string { return `accounts:` }, "decode seed"},
		{"duplicate account", func(s string) string {
			return strings.Replace(s, `]}]}]}`, `]}]},{"id":"a","name":"B","phone_number":"33700000002"}]}`, 1)
		}, "duplicate account id"},
		{"missing account id", func(s string) string { return strings.Replace(s, `"id":"a"`, `"id":""`, 1) }, "accounts[0].id: required"},
		{"bad phone", func(s string) string { return strings.Replace(s, `33700000001`, `call me`, 1) }, "phone_number"},
		{"bad status", func(s string) string { return strings.Replace(s, `"name":"A"`, `"name":"A","status":"FINE"`, 1) }, "unknown status"},
		{"bad created_at", func(s string) string {
			return strings.Replace(s, `"name":"A"`, `"name":"A","created_at":"2026-01-01"`, 1)
		}, "created_at"},
		{"raw phone as provider id", func(s string) string {
			return strings.Replace(s, `"provider_id":"33611111111@s.whatsapp.net"`, `"provider_id":"+33611111111"`, 1)
		}, "provider_id"},
		{"chat with unknown attendee", func(s string) string {
			return strings.Replace(s, `"attendees":["33611111111@s.whatsapp.net"]`, `"attendees":["33699999999@s.whatsapp.net"]`, 1)
		}, "is not a contact"},
		{"single chat with two attendees", func(s string) string {
			return strings.Replace(s, `"attendees":["33611111111@s.whatsapp.net"]`, `"attendees":["33611111111@s.whatsapp.net","33611111111@s.whatsapp.net"]`, 1)
		}, "exactly one attendee"},
		{"second single chat with the same person", func(s string) string {
			return strings.Replace(s, `]}]}]}`, `]},{"id":"h2","type":0,"attendees":["33611111111@s.whatsapp.net"]}]}]}`, 1)
		}, "already has a single chat"},
		{"bad chat type", func(s string) string { return strings.Replace(s, `"type":0`, `"type":7`, 1) }, "type"},
		{"duplicate message", func(s string) string {
			return strings.Replace(s, `"ago":"1h"}`, `"ago":"1h"},{"id":"m1","text":"again","ago":"1m"}`, 1)
		}, "duplicate message id"},
		{"both timestamp and ago", func(s string) string {
			return strings.Replace(s, `"ago":"1h"`, `"ago":"1h","timestamp":"2026-01-01T00:00:00.000Z"`, 1)
		}, "not both"},
		{"no time", func(s string) string { return strings.Replace(s, `,"ago":"1h"`, ``, 1) }, "timestamp or ago is required"},
		{"timestamp without millis", func(s string) string {
			return strings.Replace(s, `"ago":"1h"`, `"timestamp":"2026-01-01T00:00:00Z"`, 1)
		}, "timestamp"},
		{"negative ago", func(s string) string { return strings.Replace(s, `"ago":"1h"`, `"ago":"-1h"`, 1) }, "negative"},
		{"sender not in chat", func(s string) string {
			return strings.Replace(s, `"text":"hi"`, `"text":"hi","sender":"33699999999@s.whatsapp.net"`, 1)
		}, "not an attendee"},
		{"sender on own message", func(s string) string {
			return strings.Replace(s, `"text":"hi"`, `"text":"hi","from_me":true,"sender":"33611111111@s.whatsapp.net"`, 1)
		}, "from_me"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadSeed(strings.NewReader(tt.edit(valid)))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("LoadSeed = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("New validates a seed built in Go", func(t *testing.T) {
		seed := testSeed()
		seed.Accounts[0].Chats[0].Attendees = []string{"nobody@lid"}
		if _, err := New(Options{Seed: seed}); err == nil {
			t.Fatal("New accepted an invalid seed")
		}
	})
}

func TestGenerateSeed(t *testing.T) {
	a, b := GenerateSeed(3, 5, 99), GenerateSeed(3, 5, 99)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("GenerateSeed is not deterministic")
	}
	if reflect.DeepEqual(a, GenerateSeed(3, 5, 100)) {
		t.Error("another seed value gave the same seed")
	}
	if err := a.Validate(); err != nil {
		t.Fatalf("generated seed is invalid: %v", err)
	}
	if len(a.Accounts) != 3 || a.Accounts[0].ID != "acc-0001" || a.Accounts[2].ID != "acc-0003" {
		t.Fatalf("accounts = %+v", a.Accounts)
	}
	pidRE := regexp.MustCompile(`^336\d{8}@s\.whatsapp\.net$`)
	pids := map[string]bool{}
	for _, acc := range a.Accounts {
		if len(acc.Chats) != 5 {
			t.Errorf("%s has %d chats", acc.ID, len(acc.Chats))
		}
		for _, c := range acc.Chats {
			if c.Type != chatSingle || len(c.Attendees) != 1 || !pidRE.MatchString(c.Attendees[0]) || pids[c.Attendees[0]] {
				t.Errorf("chat %+v", c)
			}
			pids[c.Attendees[0]] = true
			mine, theirs := 0, 0
			for _, m := range c.Messages {
				if m.FromMe {
					mine++
				} else {
					theirs++
				}
			}
			if n := len(c.Messages); n < 2 || n > 3 || mine == 0 || theirs == 0 {
				t.Errorf("chat %s: %d messages, %d mine, %d theirs", c.ID, n, mine, theirs)
			}
		}
	}
	s, err := New(Options{Seed: a})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if n := len(s.Accounts()); n != 3 {
		t.Errorf("%d accounts loaded", n)
	}
}
