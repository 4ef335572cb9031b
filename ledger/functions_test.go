package ledger

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redistest"
)

// TestFunctionLibraryLoads: the ledger's whole Function library loads on a
// real redis-server. This is where a change breaking a limit of Lua 5.1
// fails (at most 200 locals in the library's chunk, 60 upvalues in a
// function), or a script that would not run as a function's body.
func TestFunctionLibraryLoads(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	if err := luaFunctions.Load(ctx, rdb); err != nil {
		t.Fatalf("%v\n%s", err, luaFunctions.Code())
	}
	if err := luaFunctions.Load(ctx, rdb); err != nil {
		t.Fatalf("a second load (a racing replica's): %v", err)
	}
	libs, err := rdb.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: luaFunctions.Name()}).Result()
	if err != nil || len(libs) != 1 {
		t.Fatalf("FUNCTION LIST: %v, %v", libs, err)
	}
	if got, want := len(libs[0].Functions), len(luaFunctions.Scripts()); got != want {
		t.Errorf("%d functions, want %d", got, want)
	}
}

// lifecycles runs n sends through the whole per-send path (Create, then
// sendLifecycle: runRecord's MULTI, plain runs, the lease builds).
func lifecycles(ctx context.Context, t *testing.T, l *Ledger, prefix string, n int) {
	t.Helper()
	for i := range n {
		req := benchRequest(prefix + strconv.Itoa(i))
		rec, created, err := l.Create(ctx, req, req.Digest(), time.Now().Add(time.Hour))
		if err != nil || !created {
			t.Fatalf("create: %v %v", created, err)
		}
		sendLifecycle(ctx, t, l, req, rec.Digest)
	}
}

// scriptCalls returns how many FCALL and EVALSHA/EVAL commands rdb served.
func scriptCalls(ctx context.Context, t *testing.T, rdb *redis.Client) (fcall, evalsha int64) {
	t.Helper()
	stats, err := commandStats(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	return stats["fcall"], stats["evalsha"] + stats["eval"]
}

// TestScriptsRunAsFunctions: on a Redis with Functions every script runs by
// FCALL (none by EVALSHA), and a library lost mid-run (FUNCTION FLUSH, as a
// restart without persistence) is loaded again by the next call, be it a
// plain run or a script inside runRecord's MULTI, without running anything
// twice.
func TestScriptsRunAsFunctions(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	l := New(rdb, Options{Prefix: "fn", ResultsStream: "{fn}:results"})
	lifecycles(ctx, t, l, "a", 3)
	fcall, evalsha := scriptCalls(ctx, t, rdb)
	if fcall == 0 || evalsha != 0 || l.lua.UsesEvalSha() {
		t.Fatalf("fcall %d, evalsha %d, fallen back %v", fcall, evalsha, l.lua.UsesEvalSha())
	}

	// Lost before a plain run (Create).
	if err := rdb.FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	lifecycles(ctx, t, l, "b", 2)

	// Lost before a script in runRecord's MULTI (Approve).
	req := benchRequest("c")
	rec, _, err := l.Create(ctx, req, req.Digest(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	sendLifecycle(ctx, t, l, req, rec.Digest)
	got, err := l.Get(ctx, req.SendID)
	if err != nil || got.State != "sent" || len(got.History) == 0 {
		t.Fatalf("after the reload: %+v %v", got, err)
	}
	if _, evalsha := scriptCalls(ctx, t, rdb); evalsha != 0 {
		t.Errorf("evalsha %d after reloads", evalsha)
	}
	libs, err := rdb.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	if err != nil || len(libs) != 1 || libs[0].Name != luaFunctions.Name() {
		t.Fatalf("libraries %v, %v", libs, err)
	}
}

// TestScriptsRacingLoads: ledgers (replicas) finding the library missing at
// once each load it; the loser's "already exists" is no error.
func TestScriptsRacingLoads(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		l := New(srv.Client(t), Options{Prefix: "race", ResultsStream: "{race}:results"})
		wg.Go(func() {
			req := benchRequest("r" + strconv.Itoa(i))
			if _, _, err := l.Create(ctx, req, req.Digest(), time.Now().Add(time.Hour)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestScriptsFallBackToEvalSha: where FCALL is missing (miniredis, the
// daemon's -dev mode) or refused (an ACL user without it), the scripts run
// by EVALSHA.
func TestScriptsFallBackToEvalSha(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		mr := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		l := New(rdb, Options{Prefix: "mini", ResultsStream: "{mini}:results"})
		lifecycles(ctx, t, l, "m", 2)
		if !l.lua.UsesEvalSha() {
			t.Error("runs by FCALL on miniredis")
		}
	})
	t.Run("acl", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		admin := srv.Client(t)
		if err := admin.Do(ctx, "ACL", "SETUSER", "nofn", "on", ">pw", "~*", "&*", "+@all", "-fcall", "-function").Err(); err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: "nofn", Password: "pw"})
		t.Cleanup(func() { _ = rdb.Close() })
		l := New(rdb, Options{Prefix: "acl", ResultsStream: "{acl}:results"})
		lifecycles(ctx, t, l, "n", 2)
		fcall, evalsha := scriptCalls(ctx, t, admin)
		if !l.lua.UsesEvalSha() || evalsha == 0 || fcall != 0 {
			t.Errorf("fallen back %v, evalsha %d, fcall %d", l.lua.UsesEvalSha(), evalsha, fcall)
		}
	})
	t.Run("acl without function load", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		admin := srv.Client(t)
		if err := admin.Do(ctx, "ACL", "SETUSER", "noload", "on", ">pw", "~*", "&*", "+@all", "-function").Err(); err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: "noload", Password: "pw"})
		t.Cleanup(func() { _ = rdb.Close() })
		l := New(rdb, Options{Prefix: "acl", ResultsStream: "{acl}:results"})
		lifecycles(ctx, t, l, "n", 2)
		if !l.lua.UsesEvalSha() {
			t.Error("not fallen back")
		}
	})
}

// TestScriptsOnClusterFunctions: on a Cluster the library is loaded on
// every master, and loaded again after a node loses it.
func TestScriptsOnClusterFunctions(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	ctx := context.Background()
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = rdb.Close() })
	for _, prefix := range []string{"c1", "c2", "c3"} {
		l := New(rdb, Options{Prefix: prefix, ResultsStream: "{" + prefix + "}:results"})
		lifecycles(ctx, t, l, prefix, 2)
		if err := rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			return n.FunctionFlush(ctx).Err()
		}); err != nil {
			t.Fatal(err)
		}
		lifecycles(ctx, t, l, prefix+"again", 2)
		if l.lua.UsesEvalSha() {
			t.Fatal("fallen back to EVALSHA on a Cluster")
		}
	}
	var fcall, evalsha int64
	var mu sync.Mutex
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		stats, err := commandStats(ctx, n)
		mu.Lock()
		defer mu.Unlock()
		fcall, evalsha = fcall+stats["fcall"], evalsha+stats["evalsha"]+stats["eval"]
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if fcall == 0 || evalsha != 0 {
		t.Errorf("fcall %d, evalsha %d", fcall, evalsha)
	}
}

// TestTrimFreesAFullServer: the retention's trim deletes the records it is
// past even when Redis is out of memory (maxmemory reached, noeviction).
// Redis refuses an FCALL of an unflagged function outright there, where a
// script run by EVALSHA runs as long as it adds nothing: the trim goes by
// EVALSHA then (luafn.Call.Recover), so an operator's way out of a full
// server stays what it was before Functions.
func TestTrimFreesAFullServer(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	c := &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	e := &env{l: New(rdb, Options{Prefix: "full", ResultsStream: "{full}:results", Retention: testRetention, Now: c.Now,
		LeaseClock: LeaseClockCaller}), rdb: rdb, clock: c, ctx: ctx, t: t}
	for i := range 20 {
		id := "old-" + strconv.Itoa(i)
		e.create(id, "acct")
		if _, err := e.l.Cancel(ctx, id, "admin", ""); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(testRetention + time.Second)
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "probe", "x", 0).Err(); !redis.HasErrorPrefix(err, "OOM") {
		t.Fatalf("the server is not full: SET gave %v", err)
	}
	n, err := e.l.Trim(ctx)
	if err != nil || n != 20 {
		t.Fatalf("trim on a full server: %d, %v; want 20 trimmed", n, err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Get(ctx, "old-0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old-0 still there: %v", err)
	}
	if e.l.lua.UsesEvalSha() {
		t.Fatal("the ledger fell back to EVALSHA for good")
	}
}
