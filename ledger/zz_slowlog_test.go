package ledger

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/sendworker/sendworker/internal/redistest"
)

func TestZZSlowlog(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	l := New(rdb, Options{Prefix: "bench", ResultsStream: "{bench}:results"})
	names := map[string]string{}
	for n, s := range map[string]interface{ Hash() string }{"create": createScript, "approve": approveScript, "due": dueScript, "mark": markReleasedScript, "begin": beginScript, "finish": finishScript} {
		names[s.Hash()] = n
	}
	req := benchRequest("warm")
	rec, _, _ := l.Create(ctx, req, req.Digest(), time.Now().Add(time.Hour))
	sendLifecycle(ctx, t, l, req, rec.Digest)
	rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0")
	rdb.ConfigSet(ctx, "slowlog-max-len", "100000")
	rdb.SlowLogReset(ctx)
	for i := range 2000 {
		req := benchRequest("s" + strconv.Itoa(i))
		rec, _, _ := l.Create(ctx, req, req.Digest(), time.Now().Add(time.Hour))
		sendLifecycle(ctx, t, l, req, rec.Digest)
	}
	logs, err := rdb.SlowLogGet(ctx, 100000).Result()
	if err != nil {
		t.Fatal(err)
	}
	sum := map[string]time.Duration{}
	cnt := map[string]int{}
	for _, e := range logs {
		name := e.Args[0]
		if name == "evalsha" && len(e.Args) > 1 {
			name = "evalsha:" + names[e.Args[1]]
		}
		sum[name] += e.Duration
		cnt[name]++
	}
	var ks []string
	for k := range sum {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		fmt.Printf("%-20s n=%6d avg=%v\n", k, cnt[k], sum[k]/time.Duration(cnt[k]))
	}
}
