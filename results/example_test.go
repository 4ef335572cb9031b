package results_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/results"
	"github.com/sendworker/sendworker/tasks"
)

// A Sequencer consumes the results of its sends with its own consumer group:
// read, act on each result, then ack. A crash before the ack only means the
// entry is read again, so acting on a result must be idempotent (keyed by
// send_id).
func Example() {
	rdb, stop := exampleRedis() // in production: redis.NewClient(&redis.Options{Addr: ...})
	defer stop()
	ctx := context.Background()

	// What the ledger appends when a send ends (here by hand).
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: results.DefaultStream, Values: map[string]any{
		"send_id": "seq42-step3-contact7", "state": "sent", "message_id": "wamid.1",
		"result": `{"send_id":"seq42-step3-contact7","operation":"chats_messages_send","account_id":"acct-1",` +
			`"state":"sent","message_id":"wamid.1","attempts":1,"finished_at":"2025-01-02T03:04:05Z"}`,
	}})

	r := results.NewReader(rdb, results.DefaultStream, "sequencer", "sequencer-host1")
	if err := r.EnsureGroup(ctx, "0"); err != nil {
		fmt.Println(err)
		return
	}
	entries, err := r.Read(ctx, 100, 2*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range entries {
		switch {
		case e.Err != nil:
			fmt.Println("unreadable entry:", e.Err)
		case e.Event != nil:
			// Not a result: e.g. account_breaker_open (the account's sends wait).
			fmt.Printf("event %s for account %s (%s)\n", e.Event.Type, e.Event.AccountID, e.Event.Status)
		case e.Result.State == tasks.StateSent:
			fmt.Printf("%s sent as %s: advance the sequence\n", e.Result.SendID, e.Result.MessageID)
		default:
			fmt.Printf("%s ended %s (%s)\n", e.Result.SendID, e.Result.State, e.Result.Reason)
		}
		if err := r.Ack(ctx, e.ID); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Output:
	// seq42-step3-contact7 sent as wamid.1: advance the sequence
}

// exampleRedis runs a throwaway redis-server for the example.
func exampleRedis() (*redis.Client, func()) {
	dir, err := os.MkdirTemp("", "results-example")
	if err != nil {
		panic(err)
	}
	p, err := redisproc.Start(context.Background(), redisproc.Options{Dir: dir})
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr()})
	return rdb, func() {
		_ = rdb.Close()
		_ = p.Kill()
		_ = os.RemoveAll(dir)
	}
}
