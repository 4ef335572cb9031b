package results_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/results"
	"github.com/sendworker/sendworker/tasks"
)

const stream = "sendworker:results"

// sample returns a terminal result like the ledger writes for send i.
func sample(i int) tasks.Result {
	return tasks.Result{
		SendID:     "send-" + string(rune('a'+i)),
		Operation:  tasks.OpSendMessage,
		AccountID:  "acct-1",
		State:      tasks.StateSent,
		MessageID:  "msg-" + string(rune('a'+i)),
		ChatID:     "chat-1",
		Attempts:   1,
		ApprovedBy: "alice",
		FinishedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Metadata:   json.RawMessage(`{"sequence":"s1","step":2}`),
	}
}

// add appends res to the stream shaped like the ledger's entries: the flat
// fields plus the whole JSON in "result".
func add(t *testing.T, rdb redis.UniversalClient, res tasks.Result) string {
	t.Helper()
	return redistest.AddResult(t, rdb, stream, res)
}

func newReader(t *testing.T, rdb redis.UniversalClient, group, consumer string) *results.Reader {
	t.Helper()
	r := results.NewReader(rdb, stream, group, consumer)
	if err := r.EnsureGroup(context.Background(), "0"); err != nil {
		t.Fatal(err)
	}
	return r
}

func readAll(t *testing.T, r *results.Reader, want int) []results.Entry {
	t.Helper()
	var got []results.Entry
	for range 10 {
		es, err := r.Read(context.Background(), 100, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, es...)
		if len(got) >= want {
			break
		}
	}
	if len(got) != want {
		t.Fatalf("read %d entries, want %d", len(got), want)
	}
	return got
}

func TestEveryGroupGetsEveryEntry(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	seq := newReader(t, rdb, "sequencer", "seq-1")
	uni := newReader(t, rdb, "unibox", "uni-1")
	if err := seq.EnsureGroup(context.Background(), "0"); err != nil {
		t.Fatalf("EnsureGroup twice: %v", err) // BUSYGROUP is fine
	}
	var ids []string
	for i := range 3 {
		ids = append(ids, add(t, rdb, sample(i)))
	}
	for _, r := range []*results.Reader{seq, uni} {
		got := readAll(t, r, 3)
		for i, e := range got {
			if e.Err != nil {
				t.Fatalf("%s: entry %s: %v", r.Group(), e.ID, e.Err)
			}
			if e.ID != ids[i] || e.Result.SendID != sample(i).SendID || !e.Result.FinishedAt.Equal(sample(i).FinishedAt) {
				t.Errorf("%s: entry %d = %s %+v", r.Group(), i, e.ID, e.Result)
			}
		}
		if err := r.Ack(context.Background(), ids...); err != nil {
			t.Fatal(err)
		}
	}
	// Within a group an entry goes to one consumer only.
	seq2 := newReader(t, rdb, "sequencer", "seq-2")
	add(t, rdb, sample(3))
	got := readAll(t, seq2, 1)
	if again, err := seq.Read(context.Background(), 10, -1); err != nil || len(again) != 0 {
		t.Fatalf("second consumer of the group got %d entries (err %v), want 0 (seq-2 has %s)", len(again), err, got[0].ID)
	}
}

func TestCrashBeforeAckRedelivers(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	first := newReader(t, rdb, "sequencer", "seq-1")
	for i := range 3 {
		add(t, rdb, sample(i))
	}
	got := readAll(t, first, 3)
	if err := first.Ack(context.Background(), got[0].ID); err != nil {
		t.Fatal(err)
	}
	// "Crash": the process is gone, only the consumer name survives. A new
	// Reader under the same name first gets the two unacked entries.
	restarted := newReader(t, rdb, "sequencer", "seq-1")
	again, err := restarted.Read(context.Background(), 1, 0)
	if err != nil || len(again) != 1 || again[0].ID != got[1].ID {
		t.Fatalf("first re-delivery = %v, %v; want %s", again, err, got[1].ID)
	}
	again, err = restarted.Read(context.Background(), 10, 0)
	if err != nil || len(again) != 1 || again[0].ID != got[2].ID {
		t.Fatalf("second re-delivery = %v, %v; want %s", again, err, got[2].ID)
	}
	// Then new entries only.
	id := add(t, rdb, sample(5))
	next, err := restarted.Read(context.Background(), 10, 100*time.Millisecond)
	if err != nil || len(next) != 1 || next[0].ID != id {
		t.Fatalf("after re-delivery = %v, %v; want the new entry %s", next, err, id)
	}
}

func TestClaimFromDeadConsumer(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	dead := newReader(t, rdb, "sequencer", "dead")
	for i := range 2 {
		add(t, rdb, sample(i))
	}
	got := readAll(t, dead, 2)

	other := newReader(t, rdb, "sequencer", "alive")
	if es, err := other.Claim(context.Background(), time.Hour, 10); err != nil || len(es) != 0 {
		t.Fatalf("claim of fresh entries = %v, %v; want none", es, err)
	}
	time.Sleep(20 * time.Millisecond) // XAUTOCLAIM measures idle time in Redis' clock
	claimed, err := other.Claim(context.Background(), 10*time.Millisecond, 10)
	if err != nil || len(claimed) != 2 || claimed[0].ID != got[0].ID || claimed[0].Result.SendID != got[0].Result.SendID {
		t.Fatalf("claim = %+v, %v; want both entries", claimed, err)
	}
	if kept, err := other.Touch(context.Background(), claimed[0].ID, claimed[1].ID); err != nil || len(kept) != 2 {
		t.Fatalf("touch by the new owner = %v, %v; want both", kept, err)
	}
	// The consumer presumed dead learns it lost them, and does not take them back.
	if kept, err := dead.Touch(context.Background(), got[0].ID, got[1].ID); err != nil || len(kept) != 0 {
		t.Fatalf("touch by the old owner = %v, %v; want none", kept, err)
	}
	if err := other.Ack(context.Background(), claimed[0].ID, claimed[1].ID); err != nil {
		t.Fatal(err)
	}
	if n := rdb.XPending(context.Background(), stream, "sequencer").Val().Count; n != 0 {
		t.Fatalf("%d entries still pending", n)
	}
}

func TestMalformedEntryIsReturnedWithError(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	r := newReader(t, rdb, "sequencer", "seq-1")
	if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: []any{"result", "{not json"}}).Err(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r, 1)
	if !errors.Is(got[0].Err, results.ErrMalformed) {
		t.Fatalf("Err = %v, want ErrMalformed", got[0].Err)
	}
	var de *results.DecodeError
	if !errors.As(got[0].Err, &de) || de.ID != got[0].ID {
		t.Fatalf("Err = %#v, want a *DecodeError for %s", got[0].Err, got[0].ID)
	}
}

// TestEventsAmongResults: event entries (an "event" field) come through Read in stream order
// with the results, decoded into Entry.Event without error.
func TestEventsAmongResults(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	r := newReader(t, rdb, "sequencer", "seq-1")
	first := add(t, rdb, sample(0))
	evID, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: []any{
		"event", results.EventAccountBreakerOpen, "account_id", "acct-1", "status", "CREDENTIALS",
		"at", "2025-01-02T03:04:05Z",
	}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	last := add(t, rdb, sample(1))
	got := readAll(t, r, 3)
	if got[0].ID != first || got[0].Event != nil || got[0].Result.SendID != sample(0).SendID {
		t.Fatalf("entry 0: %+v", got[0])
	}
	ev := got[1]
	if ev.ID != evID || ev.Err != nil || ev.Event == nil || ev.Result.SendID != "" {
		t.Fatalf("event entry: %+v", ev)
	}
	if ev.Event.Type != results.EventAccountBreakerOpen || ev.Event.AccountID != "acct-1" || ev.Event.Status != "CREDENTIALS" ||
		!ev.Event.At.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("event %+v", *ev.Event)
	}
	if got[2].ID != last || got[2].Event != nil {
		t.Fatalf("entry 2: %+v", got[2])
	}
}
