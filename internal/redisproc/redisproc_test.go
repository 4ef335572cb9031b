package redisproc

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestStartRestartKeepsAOFData(t *testing.T) {
	ctx := context.Background()
	p, err := Start(ctx, Options{Dir: t.TempDir(), AppendOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	c := redis.NewClient(&redis.Options{Addr: p.Addr()})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart: got %q, %v; want v", got, err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded after Kill")
	}
}

func TestStartWithoutAOFAndMissingBinary(t *testing.T) {
	if _, err := Start(context.Background(), Options{Dir: t.TempDir(), Binary: "no-such-redis-server"}); err != ErrNoBinary {
		t.Fatalf("got %v, want ErrNoBinary", err)
	}
	if _, err := Start(context.Background(), Options{}); err == nil {
		t.Fatal("Start without Dir succeeded")
	}
}
