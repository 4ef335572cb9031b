package approval_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
)

// Micro-benchmarks on an empty throwaway Redis; bench/approval measures the
// same operations against a backlog of a million sends.
//
//	go test -run '^$' -bench . -benchtime 20000x ./approval/

var benchSeq atomic.Int64

func BenchmarkEnqueue(b *testing.B) {
	e := newEnv(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := e.svc.Enqueue(e.ctx, send(fmt.Sprint("b-", benchSeq.Add(1))), "sequencer"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkApprove(b *testing.B) {
	e := newEnv(b)
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprint("a-", i)
		e.enqueue(ids[i], "sequencer")
	}
	d := digest("x") // the digest does not cover send_id: every send here has this one
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.svc.Approve(e.ctx, ids[next.Add(1)-1], d, "approver-1"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAsynqEnqueueBaseline is the bare asynq enqueue of a small task.
func BenchmarkAsynqEnqueueBaseline(b *testing.B) {
	e := newEnv(b)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: e.srv.Addr()})
	b.Cleanup(func() { _ = client.Close() })
	payload := []byte(`{"send_id":"b-1","digest":"` + digest("x") + `","gen":1}`)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.Enqueue(asynq.NewTask("bench:noop", payload), asynq.Queue(testQueue)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
