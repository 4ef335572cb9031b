package ledger

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestScriptsCompile loads every script: each body with the definitions the
// library gave it must compile. (A definition the library failed to give
// would be a global, which Redis refuses only when the script runs: the tests
// of each transition catch that.)
func TestScriptsCompile(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: sharedAddr})
	t.Cleanup(func() { _ = rdb.Close() })
	scripts := []*redis.Script{createScript, approveScript, stopScript, expireScript, dueScript,
		markReleasedScript, unfinishedResumesScript, pauseScript, resumeScript, optOutScript, finishScript, deferScript,
		resolveScript, isoScript, trimScript, dropDanglingScript, keysScript}
	for _, ls := range []leaseScript{beginScript, endCallScript, recoverScript, expiredLeasesScript} {
		scripts = append(scripts, ls.redisClock, ls.callerClock)
	}
	for _, s := range scripts {
		if err := s.Load(context.Background(), rdb).Err(); err != nil {
			t.Fatal(err)
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
		if len(d.names) == 0 || d.names[0] == "" {
			t.Fatalf("definition without a name: %q", d.code)
		}
		for _, n := range d.names {
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
	if p := luaLib.prelude("return 1"); p != "" {
		t.Fatalf("prelude of a body using nothing: %q", p)
	}
	p := luaLib.prelude("redis.call('ZADD', k_watch(), NOW_S, ARGV[7])")
	if !strings.Contains(p, "local P = ARGV[1]") || !strings.Contains(p, "local function k_watch(") ||
		!strings.Contains(p, "local NOW_S") || strings.Contains(p, "k_send") || strings.Contains(p, "local NOW =") {
		t.Fatalf("prelude:\n%s", p)
	}
	p = luaLib.prelude("finish(id, r, 'sent', '', '', {}, '')")
	for _, want := range []string{"local RESULTS", "local function result_json(", "local function set_state(",
		"local function new_message_op(", "local function k_claimed(", "local function event(", "local HISTORY_MAX"} {
		if !strings.Contains(p, want) {
			t.Errorf("prelude of finish lacks %q", want)
		}
	}
	if strings.Contains(p, "iso_ms") || strings.Contains(p, "expire_pending") {
		t.Errorf("prelude of finish holds unused definitions")
	}
}
