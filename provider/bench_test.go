package provider_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
)

// BenchmarkSendPath is the provider side of one chats_messages_send as the worker does it:
// chats_get (the warm check), then the send, over real HTTP against the simulator in this
// process, with as many goroutines as bench/throughput's concurrency. Besides ns/op it reports
// cpu-µs/send, the CPU time of this process (client and simulator together) per send: what the
// two provider calls cost a machine on which the simulator runs beside the worker.
//
//	go test -run '^$' -bench BenchmarkSendPath -benchtime 10000x ./provider
func BenchmarkSendPath(b *testing.B) {
	seed := wasim.GenerateSeed(100, 20, 1)
	h := newHarness(b, wasim.Options{Seed: seed, APIKey: testKey})
	type target struct{ chat, account string }
	var targets []target
	for _, a := range seed.Accounts {
		for _, c := range a.Chats {
			targets = append(targets, target{c.ID, a.ID})
		}
	}
	var next atomic.Int64
	ctx := context.Background()
	b.SetParallelism(25) // × GOMAXPROCS goroutines: 50 on 2 CPUs
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t := targets[int(next.Add(1))%len(targets)]
			chat, err := h.c.GetChat(ctx, t.chat, t.account)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := h.c.SendMessage(ctx, chat.ID, provider.SendMessageParams{AccountID: t.account, Text: "Following up on our call"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/send")
}

func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
