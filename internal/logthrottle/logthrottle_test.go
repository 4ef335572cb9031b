package logthrottle

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestThrottleLetsOneLineThroughPerInterval(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	th := New(30*time.Second, c.now)
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	// Redis down: the same failure every 100 ms for 65 s.
	for range 650 {
		th.Warn(log, "release failed", zap.String("err", "dial tcp: connection refused"))
		c.t = c.t.Add(100 * time.Millisecond)
	}
	got := logs.All()
	if len(got) != 3 {
		t.Fatalf("%d lines in 65 s, want 3 (at 0, 30 and 60 s)", len(got))
	}
	if n := got[1].ContextMap()["suppressed"]; n != int64(299) {
		t.Fatalf("second line says %v suppressed, want 299", n)
	}
	// Another message is not held back by the first.
	th.Warn(log, "another failure")
	if logs.Len() != 4 {
		t.Fatal("a different message was throttled")
	}
}

func TestRedisAndAsynqLoggersAreStructuredAndThrottled(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	th := New(time.Minute, c.now)
	rl := NewRedisLogger(log, th)
	al := NewAsynqLogger(log, th)
	for range 10 {
		rl.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, "dial tcp 10.0.0.1:6379: connect: connection refused")
		al.Error("Dequeue error: dial tcp 10.0.0.1:6379: connect: connection refused")
	}
	al.Info("Starting processing")
	if logs.Len() != 3 {
		for _, e := range logs.All() {
			t.Log(e.Message, e.ContextMap())
		}
		t.Fatalf("%d lines, want 3 (one redis, one asynq error, one info)", logs.Len())
	}
	first := logs.All()[0]
	if first.Message != "redis client" || first.Level != zapcore.WarnLevel || first.ContextMap()["detail"] == "" {
		t.Fatalf("redis line %+v", first)
	}
}
