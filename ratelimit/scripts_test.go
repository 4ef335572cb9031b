package ratelimit

import (
	"context"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/sendworker/sendworker/internal/luakeys"
)

// TestScriptsCompile loads every script, found from the files of lua/: each
// must compile, tell its KEYS, ARGV and reply in its header, and have been
// built by a Go variable (a variable without its file fails when the package
// loads).
func TestScriptsCompile(t *testing.T) {
	_, rdb := startRedis(t)
	files, err := fs.Glob(luaFiles, "lua/*.lua")
	if err != nil || len(files) < 2 {
		t.Fatalf("lua files %v, %v", files, err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".lua")
		seen[name] = true
		src := luaSource(name)
		if !strings.HasPrefix(src, "-- ") {
			t.Errorf("%s: no header comment", f)
		}
		if name == luaCommonFile {
			continue
		}
		for _, want := range []string{"KEYS", "ARGV", "Reply"} {
			if !strings.Contains(src, want) {
				t.Errorf("%s: the header does not tell %s", f, want)
			}
		}
		s := luaBuilt[name]
		if s == nil {
			t.Errorf("%s: no Go variable builds it (newScript)", f)
			continue
		}
		if err := s.Load(context.Background(), rdb).Err(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for name := range luaBuilt {
		if !seen[name] {
			t.Errorf("script %s built from no file", name)
		}
	}
}

// TestScriptHeadersDeclareTheirKeys: every script declares in its header
// exactly the KEYS its code (with lua/common.lua where it gets it) reads
// (luakeys.Check, the rule the ledger's scripts follow too).
func TestScriptHeadersDeclareTheirKeys(t *testing.T) {
	t.Parallel()
	problems, err := luakeys.CheckScripts(luaFiles, "lua", luaCommonFile, func(name string) string { return luaCode[name] })
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
