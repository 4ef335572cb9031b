package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The fuzz targets cover every decoder of outside input: they must never panic, and whatever
// they accept must survive a format/parse round trip unchanged.

func FuzzParseEnvFile(f *testing.F) {
	for _, s := range []string{
		"A=1\nB=\"two # x\"\nexport C='3'\n# c\n",
		"KEY=\"esc \\\" \\\\ \\n\"",
		"K=v # comment\r\nL=",
		"=\n\"\n'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		entries, _ := parseEnvFile(data)
		out := formatEnvFile(entries)
		again, err := parseEnvFile(out)
		if err != nil {
			t.Fatalf("formatted entries do not parse: %v\n%q", err, out)
		}
		if len(again) != len(entries) {
			t.Fatalf("round trip: %d entries, want %d", len(again), len(entries))
		}
		for i := range entries {
			if again[i].Key != entries[i].Key || again[i].Value != entries[i].Value {
				t.Fatalf("round trip: %q=%q, want %q=%q", again[i].Key, again[i].Value, entries[i].Key, entries[i].Value)
			}
		}
	})
}

func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{
		"redis://127.0.0.1:6379/0",
		"rediss://user:p%40ss@host:6380/15",
		"redis-sentinel://:pw@h1:26379,[::1]:26380/master?db=2&sentinel_password=x%20y",
		"redis-cluster://:pw@h1:7000,h2:7001",
		"redis://:a@b@c/1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := ParseRedisURL(raw)
		if err != nil {
			if r.Mode != "" {
				t.Fatalf("error with a non-zero result: %#v", r)
			}
			return
		}
		if err := r.validate(); err != nil {
			t.Fatalf("parsed %q into an invalid Redis: %v", raw, err)
		}
		again, err := ParseRedisURL(r.url(true))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip of %q via %q: %#v, %v; want %#v", raw, r.url(true), again, err, r)
		}
		// String must not depend on the passwords' values, only on whether they are set.
		other := r
		if other.Password != "" {
			other.Password = "x"
		}
		if other.SentinelPassword != "" {
			other.SentinelPassword = "x"
		}
		if r.String() != other.String() {
			t.Fatalf("String() depends on a password: %q vs %q", r.String(), other.String())
		}
	})
}

func FuzzParseAdminTokens(f *testing.F) {
	for _, s := range []string{
		"alice:approver+admin:alice-token-0123456789,seq:scheduler:seq-token-0123456789",
		"a:admin:t:with:colons-0123456789",
		"bad,,x:y:z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tokens, err := parseAdminTokens(s)
		if err != nil {
			return
		}
		valid := checkAdminTokens(tokens) == nil
		if !valid {
			return
		}
		again, err := parseAdminTokens(formatAdminTokens(tokens))
		if err != nil || !reflect.DeepEqual(again, tokens) {
			t.Fatalf("round trip of %q: %v, %v; want %v", s, again, err, tokens)
		}
		// The printed form must not depend on the tokens' values.
		other := slices.Clone(tokens)
		for i := range other {
			other[i].Token = "x"
		}
		if showAdminTokens(tokens) != showAdminTokens(other) || strings.Count(showAdminTokens(tokens), redactedText) != len(tokens) {
			t.Fatalf("tokens shown in %q", showAdminTokens(tokens))
		}
	})
}

func FuzzParseOverrides(f *testing.F) {
	for _, s := range []string{
		"acc-1:min_interval=5s,daily_cap=50;acc-2:hourly_cap=10",
		"a:warmup_start=1;b:recipient_cooldown=1h30m;",
		"x:daily_cap=300",
		"x:jitter=-1s",
	} {
		f.Add(s)
	}
	base := Defaults().Rate.Limits
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseOverrides(s, base)
		if err != nil {
			return
		}
		out := formatOverrides(m, base)
		again, err := parseOverrides(out, base)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip of %q via %q: %v, %v; want %v", s, out, again, err, m)
		}
		_ = checkOverrides(m) // must not panic
	})
}
