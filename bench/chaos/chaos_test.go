package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendworker/sendworker/bench/chaos/chaosrun"
)

// TestChaosShort is the CI size of the chaos program: 300 approved sends
// pushed over 10 s into 3 sendworker processes (real binaries, not
// race-built), a random one SIGKILLed about every 2 s for 15 s, Redis
// restarted once at 5 s and killed with SIGKILL at 12 s (appendfsync always,
// the shipped setting), the simulator's clock 2 minutes behind ours, failing
// 5% of requests with 500, 5% with 429, dropping the connection after 10% of
// the sending calls and storing 5% of them 8 s late without an answer. Every
// send must end terminal, delivered at most once, with its result.
//
// Duration: about 2 minutes, most of it waiting. A send whose worker was
// killed mid-call, or whose call lost its answer (accept-then-drop), stays
// `sending` until its ledger lease ends (the worker's default: the larger of
// 90 s and twice the provider timeout) and is then reconciled, so the last
// sends end about 95 s after the last kill; an undecided reconciliation
// (the chat could not be read) costs another lease. A send whose asynq task
// was lost is re-released by the watchdog after SENDWORKER_RECOVERY_GRACE
// (20 s here). The deadline is 4 minutes.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("about 2 minutes: SIGKILLs worker processes and waits for recovery")
	}
	c := chaosrun.DefaultConfig()
	c.Sends = 300
	c.PushRate = 30
	c.KillFor = 15 * time.Second
	c.RedisRestartAt = 5 * time.Second
	c.RedisKillAt = 12 * time.Second
	c.LateStore = 0.05
	c.ProviderClockOffset = -2 * time.Minute
	c.Timeout = 4 * time.Minute
	c.Dir = t.TempDir()
	var progress lineLogger
	progress.t = t
	c.Progress = &progress

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	sum, err := chaosrun.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum.Print(&out)
	t.Logf("summary:\n%s", out.String())
	if sum.Duplicates != 0 {
		t.Errorf("%d sends delivered more than once: %v", sum.Duplicates, sum.DuplicateIDs)
	}
	if sum.Lost != 0 {
		t.Errorf("%d sends lost (not terminal): %v", sum.Lost, sum.LostIDs)
	}
	if !sum.OK() {
		t.Errorf("violations: %s", strings.Join(sum.Violations, "; "))
	}
	if sum.Kills == 0 || sum.RedisRestarts != 1 || sum.RedisKills != 1 || sum.Provider["late_stored"] == 0 {
		t.Errorf("the chaos did not happen: %d kills, %d Redis restarts, %d Redis SIGKILLs, %d late stores",
			sum.Kills, sum.RedisRestarts, sum.RedisKills, sum.Provider["late_stored"])
	}
}

// lineLogger turns the run's progress lines into t.Log lines.
type lineLogger struct {
	t   *testing.T
	mu  sync.Mutex
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.t.Log(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}
