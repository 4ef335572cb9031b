package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/tasks"
)

// BenchmarkSendLifecycle runs the per-send path of the pipeline, one send per
// iteration: Create → Approve → DueForRelease → MarkReleased → BeginAttempt →
// Finish(sent), against its own redis-server. Besides ns/op it reports the
// Redis commands per send (INFO commandstats, counting the commands the
// scripts run): cmds/send in total, and hget/send, hmget/send, zadd/send,
// zrem/send, evalsha/send, fcall/send (the script calls: FCALL on this
// redis-server, EVALSHA where Functions are missing); redis-cpu-µs/send, the CPU time of redis-server
// (INFO cpu, user + system), redis-user-µs/send its user part (the system
// part is mostly the loopback round trips, ~15-20 µs each here), and
// script-µs/send, the wall time it spent in the scripts. -v logs every
// command's calls (and µs) per send.
func BenchmarkSendLifecycle(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	l := New(rdb, Options{Prefix: "bench", ResultsStream: "{bench}:results"})
	// Load every script once, so the measured loop runs the scripts only.
	req := benchRequest("warm")
	rec, _, err := l.Create(ctx, req, req.Digest(), time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	sendLifecycle(ctx, b, l, req, rec.Digest)
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	cpu0, err := redisCPU(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req := benchRequest("s" + strconv.Itoa(i))
		rec, created, err := l.Create(ctx, req, req.Digest(), time.Now().Add(time.Hour))
		if err != nil || !created {
			b.Fatalf("create: %v %v", created, err)
		}
		sendLifecycle(ctx, b, l, req, rec.Digest)
	}
	b.StopTimer()
	cpu1, err := redisCPU(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	stats, err := commandStats(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	n := float64(b.N)
	var total int64
	for cmd, calls := range stats {
		if cmd != "info" && cmd != "config|resetstat" && !strings.HasSuffix(cmd, " usec") {
			total += calls
		}
	}
	b.ReportMetric(float64(total)/n, "cmds/send")
	for _, cmd := range []string{"hget", "hmget", "zadd", "zrem", "evalsha", "fcall"} {
		b.ReportMetric(float64(stats[cmd])/n, cmd+"/send")
	}
	// The CPU time of redis-server (user + system, network included), and
	// the time it spent in the scripts (FCALL and EVALSHA usec, wall clock,
	// includes the commands they run).
	b.ReportMetric((cpu1.user+cpu1.sys-cpu0.user-cpu0.sys).Seconds()*1e6/n, "redis-cpu-µs/send")
	b.ReportMetric((cpu1.user-cpu0.user).Seconds()*1e6/n, "redis-user-µs/send")
	b.ReportMetric(float64(stats["evalsha usec"]+stats["fcall usec"])/n, "script-µs/send")
	if testing.Verbose() {
		names := make([]string, 0, len(stats))
		for cmd := range stats {
			if !strings.HasSuffix(cmd, " usec") {
				names = append(names, cmd)
			}
		}
		slices.Sort(names)
		var sb strings.Builder
		for _, cmd := range names {
			fmt.Fprintf(&sb, " %s=%.2f(%.1fµs)", cmd, float64(stats[cmd])/n, float64(stats[cmd+" usec"])/n)
		}
		b.Logf("commands per send (N=%d):%s", b.N, sb.String())
	}
}

// sendLifecycle runs the steps of a created send after Create.
func sendLifecycle(ctx context.Context, tb testing.TB, l *Ledger, req *tasks.SendRequest, digest string) {
	if _, err := l.Approve(ctx, req.SendID, digest, "approver", ""); err != nil {
		tb.Fatalf("approve: %v", err)
	}
	due, err := l.DueForRelease(ctx, 100)
	if err != nil || len(due) != 1 || due[0].SendID != req.SendID {
		tb.Fatalf("due: %+v %v", due, err)
	}
	if err := l.MarkReleased(ctx, req.SendID, due[0].Gen); err != nil {
		tb.Fatalf("mark released: %v", err)
	}
	token := "tok-" + req.SendID
	res, err := l.BeginAttempt(ctx, BeginRequest{SendID: req.SendID, Digest: due[0].Digest, Gen: due[0].Gen,
		Token: token, Lease: 90 * time.Second, ContactIDs: []string{req.ChatID}})
	if err != nil || res.Outcome != BeginOK {
		tb.Fatalf("begin: %v %v", res.Outcome, err)
	}
	if _, err := l.Finish(ctx, req.SendID, token, Outcome{State: tasks.StateSent, MessageID: "m-" + req.SendID}); err != nil {
		tb.Fatalf("finish: %v", err)
	}
}

// cpuTimes is the CPU time redis-server used so far (INFO cpu).
type cpuTimes struct{ user, sys time.Duration }

func redisCPU(ctx context.Context, rdb *redis.Client) (cpuTimes, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return cpuTimes{}, err
	}
	var c cpuTimes
	for _, line := range strings.Split(info, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "used_cpu_user" && name != "used_cpu_sys") {
			continue
		}
		sec, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("info cpu %q: %w", line, err)
		}
		if name == "used_cpu_user" {
			c.user = time.Duration(sec * float64(time.Second))
		} else {
			c.sys = time.Duration(sec * float64(time.Second))
		}
	}
	return c, nil
}

func benchRequest(id string) *tasks.SendRequest {
	return &tasks.SendRequest{
		SendID:      id,
		Operation:   tasks.OpSendMessage,
		AccountID:   "acct-1",
		RequestedBy: "scheduler",
		Metadata:    json.RawMessage(`{"sequence":"seq-1","step":2}`),
		ChatID:      "chat-" + id,
		Text:        "hello " + id,
	}
}

// commandStats returns the calls of each command since the last CONFIG
// RESETSTAT (INFO commandstats: "cmdstat_hget:calls=3,usec=..."), and the
// usec of each under "<name> usec".
func commandStats(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k != "calls" && k != "usec" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("commandstats %q: %w", line, err)
			}
			if k == "usec" {
				out[name+" usec"] = n
			} else {
				out[name] = n
			}
		}
	}
	return out, nil
}
