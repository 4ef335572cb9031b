package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	in := strings.Join([]string{
		"# comment",
		"",
		"  A=plain  ",
		"export B=exported",
		"C = spaced # inline comment",
		`D="double # quoted \"x\" \\ \n end"`,
		`E='single # $quoted \n' # trailing comment`,
		"F=",
		"G=a#b",
		"H=\"\"\r",
		"I=value\twith\ttabs",
		`J="multi word"   `,
	}, "\n")
	got, err := parseEnvFile(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []envEntry{
		{"A", "plain", 3},
		{"B", "exported", 4},
		{"C", "spaced", 5},
		{"D", "double # quoted \"x\" \\ \n end", 6},
		{"E", `single # $quoted \n`, 7},
		{"F", "", 8},
		{"G", "a#b", 9},
		{"H", "", 10},
		{"I", "value\twith\ttabs", 11},
		{"J", "multi word", 12},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseEnvFileErrors(t *testing.T) {
	in := strings.Join([]string{
		"NOEQUALS secret-value",
		"1BAD=x",
		`Q="unterminated secret`,
		`R='unterminated`,
		`S="closed"secret-tail`,
		"T=1",
		"T=2",
		"=novar",
		"OK=fine",
	}, "\n")
	got, err := parseEnvFile(in)
	if len(got) != 2 || got[0].Key != "T" || got[1].Key != "OK" {
		t.Errorf("good entries = %v", got)
	}
	want := []string{
		"line 1: expected KEY=VALUE",
		"line 2: invalid variable name",
		"line 3: Q: missing closing double quote",
		"line 4: R: missing closing single quote",
		"line 5: S: unexpected text after the closing quote",
		"line 7: T already set on line 6",
		"line 8: invalid variable name",
	}
	if msgs := errorMessages(err); !reflect.DeepEqual(msgs, want) {
		t.Fatalf("got  %q\nwant %q", msgs, want)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("line content leaked into errors: %v", err)
	}
}

func TestFormatEnvFileRoundTrip(t *testing.T) {
	entries := []envEntry{
		{Key: "A", Value: "simple-value_1.2:3@x,y+z=w%"},
		{Key: "B", Value: ""},
		{Key: "C", Value: " leading and trailing "},
		{Key: "D", Value: `quotes " and ' and \ backslash`},
		{Key: "E", Value: "new\nline # hash"},
		{Key: "F", Value: "#starts-with-hash"},
	}
	out := formatEnvFile(entries)
	got, err := parseEnvFile(out)
	if err != nil {
		t.Fatalf("%v in\n%s", err, out)
	}
	for i := range got {
		if got[i].Key != entries[i].Key || got[i].Value != entries[i].Value {
			t.Errorf("entry %d: %q=%q, want %q", i, got[i].Key, got[i].Value, entries[i].Value)
		}
	}
}
