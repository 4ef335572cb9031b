package luakeys

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, src, code string
		want            string
	}{
		{"declared and read", "--  KEYS[1] record  KEYS[2] outbox\n\nlocal r = KEYS[1]", "redis.call('ZADD', KEYS[2], 1, KEYS[1])", ""},
		{"read, not declared", "--  KEYS[1] record\n", "redis.call('GET', KEYS[2]) return KEYS[1]", "reads KEYS[2], which its header does not declare"},
		{"declared, not read", "--  KEYS[1] record  KEYS[2] outbox\n", "return KEYS[1]", "declares KEYS[2] but never reads it"},
		{"routing only", "--  KEYS[1] any key of the ledger (routing only)\n", "return 1", ""},
		{"open range", "--  KEYS[1] outbox  KEYS[2..] the records\n", "for i = 2, #KEYS do redis.call('HGET', KEYS[i], 'x') end return KEYS[1]", ""},
		{"computed without a range", "--  KEYS[1] outbox\n", "for i = 1, #KEYS do redis.call('HGET', KEYS[i], 'x') end", "computed KEYS index: true; open range declared from: 0; declares KEYS[1] but never reads it"},
		{"a comment is no read", "--  KEYS[1] record  KEYS[2] stream\n", "return KEYS[1] -- not KEYS[2]", "declares KEYS[2] but never reads it"},
		{"below the header is code", "--  KEYS[1] record\n\n-- KEYS[2] here is prose", "return KEYS[1]", ""},
	}
	for _, c := range cases {
		got := strings.Join(Check(c.src, c.code), "; ")
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestCheckScripts(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"lua/lib.lua":  {Data: []byte("-- shared\nlocal function f() return KEYS[9] end\n")},
		"lua/good.lua": {Data: []byte("--  KEYS[1] record\nreturn KEYS[1]\n")},
		"lua/bad.lua":  {Data: []byte("--  KEYS[1] record\nreturn KEYS[2]\n")},
	}
	problems, err := CheckScripts(fsys, "lua", "lib", func(name string) string {
		b, _ := fsys.ReadFile("lua/" + name + ".lua")
		return string(b)
	})
	want := "bad: declares KEYS[1] but never reads it; bad: reads KEYS[2], which its header does not declare"
	if err != nil || strings.Join(problems, "; ") != want {
		t.Fatalf("problems %q, %v; want %q", problems, err, want)
	}
	if _, err := CheckScripts(fsys, "none", "lib", nil); err == nil {
		t.Fatal("no scripts: no error")
	}
}
