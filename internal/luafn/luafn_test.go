package luafn

import (
	"context"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redistest"
)

const testLib = `-- header
local P = ARGV[1]
local K = 7
-- a key
local function k_a(id) return P .. 'a:' .. id end
local CACHE = {}
local function memo(n)
  CACHE[n] = (CACHE[n] or 0) + 1
  return CACHE[n]
end
local NOW = tonumber(ARGV[2])
if NOW < 0 then
  NOW = 0
end
local KEYS_A = {k_a('x')}
`

// TestParse: definitions, their kinds (function, load-time constant, value of
// the call) and their uses.
func TestParse(t *testing.T) {
	defs, err := Parse(testLib)
	if err != nil {
		t.Fatal(err)
	}
	type kind struct{ fn, konst bool }
	want := map[string]kind{"P": {}, "K": {konst: true}, "k_a": {fn: true}, "CACHE": {}, "memo": {fn: true},
		"NOW": {}, "KEYS_A": {}}
	if len(defs) != len(want) {
		t.Fatalf("%d definitions, want %d", len(defs), len(want))
	}
	for _, d := range defs {
		if w := want[d.Names[0]]; d.Func != w.fn || d.Const != w.konst {
			t.Errorf("%s: func %v const %v, want %+v", d.Names[0], d.Func, d.Const, w)
		}
	}
	if !strings.Contains(defs[5].Code, "if NOW < 0") {
		t.Errorf("the statement after NOW is not part of it: %q", defs[5].Code)
	}
	if got := defs.Needed("return k_a(1)").Source(); !strings.Contains(got, "local P") || strings.Contains(got, "memo") {
		t.Errorf("needed by k_a: %q", got)
	}
	for _, bad := range []string{
		"x = 1\n",                                    // a statement before any definition
		"local function f() return 1 end\nf()\n",     // a statement after a function: it would run at load
		"local function f()\n  return 1\nend\nf()\n", // the same after a multi-line function
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func testLibrary(t *testing.T) (*Library, *Script, *Script) {
	t.Helper()
	defs := MustParse(testLib)
	lib := NewLibrary("luafn_test", defs)
	body := "return {k_a(KEYS[1]), memo('n'), NOW, K, KEYS_A[1]}\n"
	need := defs.Needed(body)
	s := lib.Add("probe", need.Source()+body, need, body)
	plain := lib.Add("plain", "return ARGV[1]\n", nil, "return ARGV[1]\n")
	return lib, s, plain
}

// TestRunner: the same answers by FCALL (real Redis) and EVALSHA
// (miniredis); values of the call are computed anew on every call (a table
// changed by one call is not seen by the next), and a library flushed away is
// loaded again.
func TestRunner(t *testing.T) {
	ctx := context.Background()
	_, s, plain := testLibrary(t)
	real := redistest.Start(t).Client(t)
	mr := miniredis.RunT(t)
	mini := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = mini.Close() })
	for _, c := range []struct {
		name    string
		rdb     *redis.Client
		evalSha bool
	}{{"redis", real, false}, {"miniredis", mini, true}} {
		r := NewRunner(c.rdb)
		for i := range 3 {
			if i == 2 && !c.evalSha {
				if err := c.rdb.FunctionFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
			}
			v, err := r.Run(ctx, s, []string{"k"}, "{t}:", -5).Slice()
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			want := []any{"{t}:a:k", int64(1), int64(0), int64(7), "{t}:a:x"}
			if len(v) != len(want) {
				t.Fatalf("%s: %v", c.name, v)
			}
			for j := range want {
				if v[j] != want[j] {
					t.Errorf("%s call %d: %v, want %v", c.name, i, v, want)
					break
				}
			}
			if got, err := r.Run(ctx, plain, []string{"k"}, "p").Text(); err != nil || got != "p" {
				t.Errorf("%s: plain %q %v", c.name, got, err)
			}
		}
		if r.UsesEvalSha() != c.evalSha {
			t.Errorf("%s: uses EVALSHA %v", c.name, r.UsesEvalSha())
		}
	}
}

// TestRunnerPipeline: Queue and Recover run a script inside a MULTI: a
// library missing is loaded, an FCALL refused at queueing (EXECABORT) falls
// back to EVALSHA, loaded after its NOSCRIPT; each time the whole MULTI runs
// again.
func TestRunnerPipeline(t *testing.T) {
	ctx := context.Background()
	_, s, _ := testLibrary(t)
	admin := redistest.Start(t).Client(t)
	if err := admin.Do(ctx, "ACL", "SETUSER", "nofn", "on", ">pw", "~*", "&*", "+@all", "-fcall").Err(); err != nil {
		t.Fatal(err)
	}
	nofn := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: "nofn", Password: "pw"})
	t.Cleanup(func() { _ = nofn.Close() })
	for _, c := range []struct {
		name    string
		rdb     *redis.Client
		runs    int
		incrs   int64 // the MULTIs that ran (an EXECABORT runs none of its commands)
		evalSha bool
	}{{"library missing", admin, 2, 2, false}, {"fcall refused", nofn, 3, 2, true}} {
		r := NewRunner(c.rdb)
		counter := "counter:" + c.name
		runs := 0
		call := r.Call(s)
		for try := 0; ; try++ {
			runs++
			pipe := c.rdb.TxPipeline()
			cmd := call.Queue(ctx, pipe, []string{"k"}, "{t}:", 1)
			incr := pipe.Incr(ctx, counter)
			_, err := pipe.Exec(ctx)
			if err != nil && try < MaxRecover {
				again, err := call.Recover(ctx, c.rdb, cmd)
				if err != nil {
					t.Fatal(err)
				}
				if again {
					continue
				}
			}
			if err != nil || cmd.Val() == nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if incr.Val() != c.incrs {
				t.Errorf("%s: %d MULTIs ran, want %d", c.name, incr.Val(), c.incrs)
			}
			break
		}
		if runs != c.runs || r.UsesEvalSha() != c.evalSha {
			t.Errorf("%s: %d runs of the MULTI (want %d), EVALSHA %v", c.name, runs, c.runs, r.UsesEvalSha())
		}
	}
}

// TestRunnerOutOfMemory: on a server out of memory (maxmemory reached,
// noeviction), which refuses every FCALL of an unflagged function before it
// runs, a script runs by EVALSHA as it did before Functions: one that reads
// or deletes works, one that adds is refused at its write, and each runs
// once; the runner keeps FCALL for the calls after.
func TestRunnerOutOfMemory(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	lib := NewLibrary("luafn_oom", nil)
	read := lib.Add("read", "return redis.call('GET', KEYS[1])\n", nil, "return redis.call('GET', KEYS[1])\n")
	del := lib.Add("del", "return redis.call('DEL', KEYS[1])\n", nil, "return redis.call('DEL', KEYS[1])\n")
	add := lib.Add("add", "redis.call('INCR', KEYS[2])\nreturn redis.call('SET', KEYS[1], 'x')\n", nil,
		"redis.call('INCR', KEYS[2])\nreturn redis.call('SET', KEYS[1], 'x')\n")
	r := NewRunner(rdb)
	for _, k := range []string{"kept", "gone"} {
		if err := rdb.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Run(ctx, read, []string{"kept"}).Err(); err != nil { // loads the library
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.ConfigSet(context.Background(), "maxmemory", "0").Err() })
	if err := rdb.FCall(ctx, read.Function(), []string{"kept"}).Err(); !redis.HasErrorPrefix(err, "OOM") {
		t.Fatalf("FCALL on a full server: %v, want an OOM refusal (the case this test is about)", err)
	}
	if v, err := r.Run(ctx, read, []string{"kept"}).Text(); err != nil || v != "v" {
		t.Fatalf("read: %q, %v", v, err)
	}
	if n, err := r.Run(ctx, del, []string{"gone"}).Int(); err != nil || n != 1 {
		t.Fatalf("delete: %d, %v", n, err)
	}
	if err := r.Run(ctx, add, []string{"new", "count"}).Err(); err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("a write on a full server: %v, want its OOM", err)
	}
	// In a pipeline (not a MULTI: a full server refuses every command queued in
	// one, EVALSHA too, as before Functions): queued again by EVALSHA.
	call := r.Call(read)
	var got string
	for try := 0; ; try++ {
		pipe := rdb.Pipeline()
		cmd := call.Queue(ctx, pipe, []string{"kept"})
		_, err := pipe.Exec(ctx)
		if err != nil && try < MaxRecover {
			again, rerr := call.Recover(ctx, rdb, cmd)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if again {
				continue
			}
		}
		if err != nil {
			t.Fatalf("pipeline: %v", err)
		}
		got = cmd.Val().(string)
		break
	}
	if got != "v" {
		t.Fatalf("pipeline read %q", got)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, "gone", "new").Result(); err != nil || n != 0 {
		t.Fatalf("after: %d of gone, new exist (%v)", n, err)
	}
	if n, err := rdb.Get(ctx, "count").Int(); err == nil || n != 0 {
		t.Fatalf("the refused script's INCR ran: %d, %v", n, err)
	}
	if r.UsesEvalSha() {
		t.Fatal("the runner fell back to EVALSHA for good")
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx, read, []string{"kept"}).Err(); err != nil {
		t.Fatal(err)
	}
	stats, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil || !strings.Contains(stats, "cmdstat_fcall:") || strings.Contains(stats, "cmdstat_evalsha:") {
		t.Fatalf("a call with memory again did not go by FCALL alone: %v\n%s", err, stats)
	}
}

// TestLibraryName: the name carries a hash of the text: another body, another
// library.
func TestLibraryName(t *testing.T) {
	a, _, _ := testLibrary(t)
	b := NewLibrary("luafn_test", MustParse(testLib))
	b.Add("probe", "return 2\n", nil, "return 2\n")
	if a.Name() == b.Name() || !strings.HasPrefix(a.Name(), "luafn_test_") || len(a.Name()) != len("luafn_test_")+12 {
		t.Errorf("names %s, %s", a.Name(), b.Name())
	}
	if !strings.HasPrefix(a.Code(), "#!lua name="+a.Name()+"\n") {
		t.Errorf("code starts %q", a.Code()[:40])
	}
}

// TestNoFunctions: the errors that make a runner fall back to EVALSHA are
// those that name FCALL or FUNCTION itself, never an error a script's own
// call raised after part of it ran.
func TestNoFunctions(t *testing.T) {
	for msg, want := range map[string]bool{
		"ERR unknown command 'fcall', with args beginning with: 'f' '1' ":                                        true,
		"ERR unknown command `fcall`, with args beginning with: ":                                                true,
		"NOPERM this user has no permissions to run the 'fcall' command":                                         true,
		"NOPERM User noload has no permissions to run the 'function|load' command":                               true,
		"ERR The user executing the script can't run this command or subcommand script: w, on @user_function:2.": false,
		"NOPERM this user has no permissions to run the 'set' command script: w, on @user_function:2.":           false,
		"ERR unknown command 'nosuch' script: w, on @user_function:2.":                                           false,
		"ERR Function not found": false,
	} {
		if got := noFunctions(replyError(msg)); got != want {
			t.Errorf("%q: %v, want %v", msg, got, want)
		}
	}
}

// TestRefusedBeforeRun: only Redis's refusal of the call itself lets a call
// run again; an error a script's own command raised, after part of the
// script ran (an OOM too), never does.
func TestRefusedBeforeRun(t *testing.T) {
	for msg, want := range map[string]bool{
		"OOM command not allowed when used memory > 'maxmemory'.":                                        true,
		"ERR Function not found":                                                                         true,
		"NOSCRIPT No matching script. Please use EVAL.":                                                  true,
		"OOM command not allowed when used memory > 'maxmemory'. script: finish, on @user_function:12.":  false,
		"OOM command not allowed when used memory > 'maxmemory'. script: 9f3c…, on @user_script:40.":     false,
		"ERR Error running script (call to f_x): @user_script:3: Function not found":                     false,
		"NOPERM this user has no permissions to run the 'fcall' command script: w, on @user_function:2.": false,
	} {
		if got := refusedBeforeRun(replyError(msg)); got != want {
			t.Errorf("%q: %v, want %v", msg, got, want)
		}
	}
}

// replyError is an error reply of Redis (redis.Error), as the client returns it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}
