package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

func TestNewValidates(t *testing.T) {
	l := ledger.New(nil, ledger.Options{})
	client, _ := provider.New(provider.Options{BaseURL: "http://127.0.0.1:1", NoAuth: true})
	cases := []struct {
		opts Options
		want string
	}{
		{Options{Lease: 30 * time.Second}, "must exceed the provider timeout"},
		{Options{Lease: 31 * time.Second}, "must exceed the provider timeout"}, // not by the margin
		{Options{Lease: time.Minute, ProviderTimeout: 90 * time.Second}, "must exceed the provider timeout"},
		{Options{AttachmentOrigins: []string{"ftp://x"}}, "attachment origin"},
	}
	for _, tc := range cases {
		w := New(asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, l, client, tc.opts)
		err := w.Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.opts, err, tc.want)
		}
		// A misconfigured worker never runs a task: it asks for a retry.
		var re *retryError
		if err := w.Handler().ProcessTask(context.Background(), taskFor(tasks.OpSendMessage, "s", testDigest, 1)); !errors.As(err, &re) {
			t.Errorf("misconfigured handler returned %v", err)
		}
	}
	if w := New(asynq.RedisClientOpt{}, l, client, Options{}); w.err != nil {
		t.Fatalf("defaults invalid: %v", w.err)
	}
	if New(asynq.RedisClientOpt{}, l, timeoutProvider{client, time.Hour}, Options{Lease: time.Minute}).err == nil {
		t.Fatal("the provider's own Timeout() was not checked against the lease")
	}
	// Without an explicit lease, the default grows with the provider timeout.
	if w := New(asynq.RedisClientOpt{}, l, timeoutProvider{client, time.Hour}, Options{}); w.err != nil || w.opts.Lease <= time.Hour {
		t.Fatalf("default lease %s for a 1h provider timeout (err %v)", w.opts.Lease, w.err)
	}
}

type timeoutProvider struct {
	*provider.Client
	d time.Duration
}

func (p timeoutProvider) Timeout() time.Duration { return p.d }

// TestAsynqMapping: what asynq sees of each outcome. Waits, retries, crash recovery and
// shutdown are never failures; delays are whole seconds, never shorter than asked.
func TestAsynqMapping(t *testing.T) {
	re := &retryError{delay: 2300 * time.Millisecond, why: "x"}
	cases := []struct {
		err     error
		failure bool
		min     time.Duration
	}{
		{re, false, 2300 * time.Millisecond},
		{fmt.Errorf("wrapped: %w", re), false, 2300 * time.Millisecond},
		{asynq.ErrLeaseExpired, false, time.Second},
		{context.Canceled, false, time.Second},
		{context.DeadlineExceeded, false, time.Second},
		{errors.New("bug"), true, time.Second},
	}
	for _, tc := range cases {
		if got := isFailure(tc.err); got != tc.failure {
			t.Errorf("isFailure(%v) = %v", tc.err, got)
		}
		d := retryDelay(0, tc.err, nil)
		if d < tc.min || d%time.Second != 0 {
			t.Errorf("retryDelay(%v) = %s, want whole seconds ≥ %s", tc.err, d, tc.min)
		}
	}
	if d := retryDelay(30, errors.New("bug"), nil); d > time.Minute {
		t.Errorf("unbounded retry delay %s", d)
	}
	w := &Worker{opts: Options{BackoffBase: time.Second, BackoffMax: 10 * time.Second}}
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		if got := w.backoff(n); got < want || got > want+time.Second/2 {
			t.Errorf("backoff(%d) = %s, want %s + jitter", n, got, want)
		}
	}
	if got := w.backoff(1000); got > 11*time.Second {
		t.Errorf("backoff(1000) = %s", got)
	}
}

// TestStop: Stop lets running sends finish within ShutdownTimeout; when they outlast it, they
// are cancelled without being half-recorded, and another worker finishes them, each delivered
// once.
func TestStop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		shutdown time.Duration
		graceful bool
	}{
		{"graceful", 5 * time.Second, true},
		{"cut short", 100 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *envConfig) {
				c.noStart = true
				c.opts.ShutdownTimeout = tc.shutdown
			})
			e.sim.Sim().SetFaults(wasim.Faults{LatencyMin: 700 * time.Millisecond})
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { _ = e.approval.Run(ctx) })
			defer func() { cancel(); wg.Wait() }()
			var ids []string
			for i := range 6 {
				id := newID("stop")
				e.submit(message(id, accA, "chat-x"+twoDigits(i)))
				ids = append(ids, id)
			}
			if err := e.worker.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			var sending []string
			deadline := time.Now().Add(10 * time.Second)
			for len(sending) < 2 {
				if time.Now().After(deadline) {
					t.Fatal("no sends in flight")
				}
				sending = sending[:0]
				for _, id := range ids {
					if e.get(id).State == tasks.StateSending {
						sending = append(sending, id)
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
			start := time.Now()
			if err := e.worker.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if took > tc.shutdown+3*time.Second {
				t.Fatalf("Stop took %s", took)
			}
			if tc.graceful {
				for _, id := range sending {
					if st := e.get(id).State; st != tasks.StateSent {
						t.Fatalf("%s was sending at Stop and is %s after it", id, st)
					}
				}
			}
			// Another worker (a restart) finishes everything, each send exactly once.
			next := New(e.redisOpt, e.ledger, e.provider, e.opts)
			if err := next.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = next.Stop(context.Background()) }()
			for _, id := range ids {
				rec := e.waitTerminal(id, 20*time.Second)
				if rec.State != tasks.StateSent || applied(e.deliveries(id)) != 1 {
					t.Errorf("%s: %s %s, %d applied; %s", id, rec.State, rec.Reason, applied(e.deliveries(id)), historyString(rec))
				}
			}
			t.Logf("Stop took %s with %d sends in flight", took.Round(time.Millisecond), len(sending))
		})
	}
}
