package ratelimit_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/tasks"
)

// The worker asks for a slot right before sending: the zero time means "go now", any other
// time means "defer the send until then" (it holds that slot meanwhile, so coming back then
// it goes).
func ExampleLimiter_Reserve() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "ratelimit-example")
	defer os.RemoveAll(dir)
	srv, err := redisproc.Start(ctx, redisproc.Options{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Kill()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()

	cfg := config.Defaults() // 10 s apart + up to 10 s jitter, 60/h, 300/day, new chats 5/h, 20/day
	l := ratelimit.New(rdb, ratelimit.Options{
		LimitsFor: cfg.LimitsFor,
		Rand:      func() float64 { return 0.5 }, // jitter 5 s, for a stable example
	})

	now := time.Date(2030, 1, 7, 9, 0, 0, 0, time.UTC)
	send := func(id string) *tasks.Record {
		return &tasks.Record{SendID: id, Request: tasks.SendRequest{
			SendID: id, Operation: tasks.OpSendMessage, AccountID: "acc-1", ChatID: "chat-" + id}}
	}
	for _, id := range []string{"s1", "s2", "s3"} {
		until, _ := l.Reserve(ctx, send(id), now)
		if until.IsZero() {
			fmt.Println(id, "goes now")
		} else {
			fmt.Println(id, "waits until", until.Format("15:04:05"))
		}
	}
	// s2 comes back at its slot: it goes.
	until, _ := l.Reserve(ctx, send("s2"), now.Add(15*time.Second))
	fmt.Println("s2 back at 09:00:15, goes now:", until.IsZero())

	f, _ := l.Forecast(ctx, "acc-1", now)
	fmt.Println("queued:", f.Queued, "next free slot:", f.NextSlot.Format("15:04:05"), f.NextSlotBinding)
	// Output:
	// s1 goes now
	// s2 waits until 09:00:15
	// s3 waits until 09:00:30
	// s2 back at 09:00:15, goes now: true
	// queued: 2 next free slot: 09:00:40 min_interval
}
