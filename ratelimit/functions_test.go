package ratelimit

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// TestFunctionLibraryLoads: the limiter's whole Function library loads on a
// real redis-server (where a change breaking a Lua 5.1 limit, 200 locals or
// 60 upvalues, fails), and a second load (a racing replica's) is no error.
func TestFunctionLibraryLoads(t *testing.T) {
	t.Parallel()
	_, rdb := startRedis(t)
	ctx := context.Background()
	for range 2 {
		if err := luaFunctions.Load(ctx, rdb); err != nil {
			t.Fatalf("%v\n%s", err, luaFunctions.Code())
		}
	}
}

// limiterTrace runs every script of the limiter (flushing the Function
// libraries halfway when flush is set) and returns their answers.
func limiterTrace(t *testing.T, rdb *redis.Client, l *Limiter, flush bool) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	add := func(v ...any) { out = append(out, fmt.Sprint(v...)) }
	for i := range 6 {
		if flush && i == 3 {
			if err := rdb.FunctionFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		rec := reply("r"+strconv.Itoa(i), "acct", "c")
		if i%2 == 1 {
			rec = newChat("n"+strconv.Itoa(i), "acct", "att"+strconv.Itoa(i))
		}
		s, err := l.ReserveSlot(ctx, rec, t0.Add(time.Duration(i)*time.Second))
		add("reserve ", s.At.Sub(t0), s.Go, s.Held, err)
	}
	f, err := l.Forecast(ctx, "acct", t0)
	add("forecast ", f, err)
	ok, err := l.Cancel(ctx, reply("r4", "acct", "c"))
	add("cancel ", ok, err)
	ok, err = l.Refund(ctx, newChat("n5", "acct", "att5"))
	add("refund ", ok, err)
	add("penalize ", l.Penalize(ctx, "acct", t0.Add(time.Hour)))
	s, err := l.ReserveSlot(ctx, reply("after", "acct", "c"), t0.Add(time.Minute))
	add("reserve ", s.At.Sub(t0), s.Go, s.Held, err)
	add("global ", l.WaitGlobal(ctx))
	return out
}

// TestScriptsRunAsFunctions: on Redis 7 the limiter's scripts run by FCALL
// (loaded again after a FUNCTION FLUSH), and answer exactly as by EVALSHA
// (an ACL user without FCALL) and on miniredis (the daemon's -dev mode).
func TestScriptsRunAsFunctions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := func(o *Options) { o.GlobalRPS = 1000 }

	_, rdb := startRedis(t)
	fn := newLimiter(t, rdb, defaultish, opts)
	got := limiterTrace(t, rdb, fn, true)
	t.Logf("answers: %q", got)
	stats := commandCalls(t, rdb)
	if stats["fcall"] == 0 || stats["evalsha"]+stats["eval"] != 0 || fn.lua.UsesEvalSha() {
		t.Errorf("script calls %v, want FCALL only", stats)
	}

	_, admin := startRedis(t)
	if err := admin.Do(ctx, "ACL", "SETUSER", "nofn", "on", ">pw", "~*", "&*", "+@all", "-fcall").Err(); err != nil {
		t.Fatal(err)
	}
	evRdb := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: "nofn", Password: "pw"})
	t.Cleanup(func() { _ = evRdb.Close() })
	ev := newLimiter(t, evRdb, defaultish, opts)
	if want := limiterTrace(t, admin, ev, false); !reflect.DeepEqual(got, want) {
		t.Errorf("FCALL answers\n%v\nEVALSHA answers\n%v", got, want)
	}
	if stats := commandCalls(t, admin); !ev.lua.UsesEvalSha() || stats["evalsha"]+stats["eval"] == 0 || stats["fcall"] != 0 {
		t.Errorf("script calls %v, want EVALSHA only", stats)
	}

	mr := miniredis.RunT(t)
	mini := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = mini.Close() })
	ml := newLimiter(t, mini, defaultish, opts)
	if want := limiterTrace(t, mini, ml, false); !reflect.DeepEqual(got, want) {
		t.Errorf("FCALL answers\n%v\nminiredis answers\n%v", got, want)
	}
	if !ml.lua.UsesEvalSha() {
		t.Error("runs by FCALL on miniredis")
	}
}
