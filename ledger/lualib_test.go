package ledger

import (
	"context"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/luakeys"
	"github.com/sendworker/sendworker/tasks"
)

// TestScriptsCompile loads every script, found from the files of lua/: each
// body with the definitions the library gave it must compile, and every
// file but the library must have been built by a Go variable (a variable
// without its file fails when the package loads). (A definition the library
// failed to give would be a global, which Redis refuses only when the script
// runs: the tests of each transition catch that.)
func TestScriptsCompile(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: sharedAddr})
	t.Cleanup(func() { _ = rdb.Close() })
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
		if name == luaLibFile {
			continue
		}
		for _, want := range []string{"KEYS", "ARGV", "Reply"} {
			if !strings.Contains(src, want) {
				t.Errorf("%s: the header does not tell %s", f, want)
			}
		}
		builds := luaBuilt[name]
		if len(builds) == 0 {
			t.Errorf("%s: no Go variable builds it (script or leaseScriptOf)", f)
		}
		for _, s := range builds {
			if err := s.Load(context.Background(), rdb).Err(); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
	for name := range luaBuilt {
		if !seen[name] {
			t.Errorf("script %s built from no file", name)
		}
	}
}

// TestPreludeDefinesEveryName: the library parses into definitions each
// defining a name once, and a prelude holds every definition its body needs,
// transitively, and no other.
func TestPreludeDefinesEveryName(t *testing.T) {
	t.Parallel()
	defined := map[string]int{}
	for _, d := range luaLib {
		if len(d.Names) == 0 || d.Names[0] == "" {
			t.Fatalf("definition without a name: %q", d.Code)
		}
		for _, n := range d.Names {
			defined[n]++
		}
	}
	for n, c := range defined {
		if c != 1 {
			t.Errorf("%s defined %d times", n, c)
		}
	}
	for _, name := range []string{"P", "k_send", "hmget", "finish", "FINISH_FIELDS", "RESULTS", "iso_ms", "new_message_op"} {
		if defined[name] != 1 {
			t.Errorf("%s not in the library", name)
		}
	}
	if p := luaLib.Needed("return 1").Source(); p != "" {
		t.Fatalf("prelude of a body using nothing: %q", p)
	}
	p := luaLib.Needed("redis.call('ZADD', k_watch(), NOW_S, ARGV[7])").Source()
	if !strings.Contains(p, "local P = ARGV[1]") || !strings.Contains(p, "local function k_watch(") ||
		!strings.Contains(p, "local NOW_S") || strings.Contains(p, "k_send") || strings.Contains(p, "local NOW =") {
		t.Fatalf("prelude:\n%s", p)
	}
	p = luaLib.Needed("finish(id, r, 'sent', '', '', {}, '')").Source()
	for _, want := range []string{"local RESULTS", "local function result_json(", "local function move(",
		"local function new_message_op(", "local function k_msg(", "local function event(", "local HISTORY_MAX"} {
		if !strings.Contains(p, want) {
			t.Errorf("prelude of finish lacks %q", want)
		}
	}
	if strings.Contains(p, "expire_pending") || strings.Contains(p, "finish_stopped") {
		t.Errorf("prelude of finish holds unused definitions")
	}
}

// TestGeneratedLua: the Lua constants generated from Go answer as Go does:
// is_terminal for every state, new_message_op for every operation, and the
// results stream names are the results package's.
func TestGeneratedLua(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: sharedAddr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	run := func(body string, args ...any) []any {
		t.Helper()
		v, err := redis.NewScript(luaLib.Needed(body).Source()+body).Run(ctx, rdb, []string{"{t}:x"}, args...).Slice()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var states []any
	for _, s := range tasks.States {
		states = append(states, string(s))
	}
	got := run("local out = {}\nfor i = 1, #ARGV do out[i] = is_terminal(ARGV[i]) and 1 or 0 end\nreturn out", states...)
	for i, s := range tasks.States {
		if want := map[bool]int64{true: 1}[s.Terminal()]; got[i] != want {
			t.Errorf("is_terminal(%s) = %v, Go says %v", s, got[i], s.Terminal())
		}
	}
	var ops []any
	for _, op := range tasks.Operations {
		ops = append(ops, string(op))
	}
	got = run("local out = {}\nfor i = 1, #ARGV do out[i] = new_message_op(ARGV[i]) and 1 or 0 end\nreturn out", ops...)
	for i, op := range tasks.Operations {
		if want := map[bool]int64{true: 1}[op.SendsNewMessage()]; got[i] != want {
			t.Errorf("new_message_op(%s) = %v, Go says %v", op, got[i], op.SendsNewMessage())
		}
	}
	for _, c := range luaResultsNames() {
		if got := run("return {" + c[0] + "}"); got[0] != c[1] {
			t.Errorf("%s = %v, want %q", c[0], got[0], c[1])
		}
	}
	if got := run("return {HISTORY_MAX, RECOVERED_BY, CLAIM_MIN_MS}"); got[0] != int64(historyMax) || got[1] != RecoveredBy ||
		got[2] != claimMinTTL.Milliseconds() {
		t.Errorf("HISTORY_MAX, RECOVERED_BY, CLAIM_MIN_MS = %v", got)
	}
}

// TestScriptHeadersDeclareTheirKeys: every script declares in its header
// exactly the KEYS its code (body and the library definitions it gets) reads
// (luakeys.Check, the rule ratelimit's scripts follow too).
func TestScriptHeadersDeclareTheirKeys(t *testing.T) {
	t.Parallel()
	problems, err := luakeys.CheckScripts(luaFiles, "lua", luaLibFile, func(name string) string {
		body := luaSource(name)
		return luaLib.Needed(body).Source() + body
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
