package results_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sendworker/sendworker/results"
	"github.com/sendworker/sendworker/tasks"
)

func TestDecodeEntry(t *testing.T) {
	want := tasks.Result{
		SendID: "s1", Operation: tasks.OpReaction, AccountID: "a1", State: tasks.StateSkipped,
		Reason: tasks.ReasonContactReplied, ChatID: "c1", Attempts: 2, ApprovedBy: "bob",
		FinishedAt: time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC), DryRun: true,
		Metadata: json.RawMessage(`{"step":1}`),
	}
	full, _ := json.Marshal(want)
	flat := map[string]any{
		"send_id": "s1", "operation": "messages_reaction", "account_id": "a1", "state": "skipped",
		"reason": "contact_replied", "chat_id": "c1", "attempts": "2", "approved_by": "bob",
		"finished_at": "2025-05-06T07:08:09Z", "dry_run": "1", "metadata": `{"step":1}`,
	}
	flatMillis := map[string]any{}
	for k, v := range flat {
		flatMillis[k] = v
	}
	flatMillis["finished_at"] = "1746515289000"

	tests := []struct {
		name    string
		values  map[string]any
		want    tasks.Result
		wantErr string
	}{
		{name: "result field", values: map[string]any{"result": string(full), "send_id": "ignored"}, want: want},
		{name: "result as bytes", values: map[string]any{"result": full}, want: want},
		{name: "flat fields", values: flat, want: want},
		{name: "flat, finished_at in ms", values: flatMillis, want: want},
		{name: "deleted entry", values: nil, wantErr: "no fields"},
		{name: "bad json", values: map[string]any{"result": "{"}, wantErr: "field result"},
		{name: "json null", values: map[string]any{"result": "null"}, wantErr: "send_id: missing"},
		{name: "no state", values: map[string]any{"send_id": "s1"}, wantErr: "state: missing"},
		{name: "bad attempts", values: map[string]any{"send_id": "s1", "state": "sent", "attempts": "-1"}, wantErr: "attempts"},
		{name: "bad time", values: map[string]any{"send_id": "s1", "state": "sent", "finished_at": "yesterday"}, wantErr: "finished_at"},
		{name: "bad metadata", values: map[string]any{"send_id": "s1", "state": "sent", "metadata": "{"}, wantErr: "metadata"},
		{name: "bad dry_run", values: map[string]any{"send_id": "s1", "state": "sent", "dry_run": "maybe"}, wantErr: "dry_run"},
		{name: "wrong type", values: map[string]any{"send_id": 7, "state": "sent"}, wantErr: "unexpected type int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := results.DecodeEntry("1-0", tt.values)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, results.ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrMalformed mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.ID != "1-0" || !e.Result.FinishedAt.Equal(tt.want.FinishedAt) {
				t.Fatalf("got %+v", e)
			}
			e.Result.FinishedAt = tt.want.FinishedAt
			if !reflect.DeepEqual(e.Result, tt.want) {
				t.Fatalf("got %+v\nwant %+v", e.Result, tt.want)
			}
		})
	}
}

// FuzzDecodeEntry feeds arbitrary field maps: DecodeEntry must never panic, and
// must either return a result with a send_id and a state or an ErrMalformed.
func FuzzDecodeEntry(f *testing.F) {
	full, _ := json.Marshal(tasks.Result{SendID: "s", State: tasks.StateSent, Metadata: json.RawMessage(`{}`)})
	f.Add("result", string(full), "", "", "", "")
	f.Add("send_id", "s1", "state", "sent", "attempts", "3")
	f.Add("send_id", "s1", "state", "sent", "finished_at", "1700000000000")
	f.Add("send_id", "s1", "state", "failed", "metadata", "[1,2")
	f.Add("result", "null", "send_id", "s", "state", "sent")
	f.Add("event", "account_breaker_open", "account_id", "a", "at", "2025-01-02T03:04:05Z")
	f.Add("event", "", "send_id", "s1", "state", "sent")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		values := map[string]any{k1: v1, k2: v2, k3: []byte(v3)}
		e, err := results.DecodeEntry("1-0", values)
		if err != nil {
			if !errors.Is(err, results.ErrMalformed) || err.Error() == "" {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if e.Event != nil {
			if e.Event.Type == "" || e.Result.SendID != "" {
				t.Fatalf("accepted an event without a type, or with a result: %+v %+v", e.Event, e.Result)
			}
			return
		}
		if e.Result.SendID == "" || e.Result.State == "" {
			t.Fatalf("accepted a result without send_id or state: %+v", e.Result)
		}
		if len(e.Result.Metadata) > 0 && !json.Valid(e.Result.Metadata) {
			t.Fatalf("accepted invalid metadata %q", e.Result.Metadata)
		}
	})
}

func TestDecodeEventEntry(t *testing.T) {
	at := time.Date(2025, 5, 6, 7, 8, 9, 123000000, time.UTC)
	tests := []struct {
		name    string
		values  map[string]any
		want    results.Event
		wantErr string
	}{
		{name: "breaker open", values: map[string]any{"event": "account_breaker_open", "account_id": "a1",
			"status": "CREDENTIALS", "at": "2025-05-06T07:08:09.123Z"},
			want: results.Event{Type: results.EventAccountBreakerOpen, AccountID: "a1", Status: "CREDENTIALS", At: at}},
		{name: "breaker closed, at in ms, bytes", values: map[string]any{"event": []byte("account_breaker_closed"),
			"account_id": "a1", "status": "OK", "at": "1746515289123"},
			want: results.Event{Type: results.EventAccountBreakerClosed, AccountID: "a1", Status: "OK", At: at}},
		{name: "unknown type decodes", values: map[string]any{"event": "something_new"},
			want: results.Event{Type: "something_new"}},
		{name: "event wins over result fields", values: map[string]any{"event": "account_breaker_open", "send_id": "s1", "state": "sent"},
			want: results.Event{Type: results.EventAccountBreakerOpen, SendID: "s1"}},
		{name: "inbound event", values: map[string]any{"event": "contact_replied", "account_id": "a", "chat_id": "c",
			"message_id": "m", "contact_id": "p", "send_ids": "s1,s2", "detail": "d"},
			want: results.Event{Type: results.EventContactReplied, AccountID: "a", ChatID: "c", MessageID: "m",
				ContactID: "p", SendIDs: []string{"s1", "s2"}, Detail: "d"}},
		{name: "empty type", values: map[string]any{"event": ""}, wantErr: "event: empty"},
		{name: "bad time", values: map[string]any{"event": "account_breaker_open", "at": "soon"}, wantErr: "field at"},
		{name: "wrong type", values: map[string]any{"event": "account_breaker_open", "account_id": 3}, wantErr: "unexpected type int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := results.DecodeEntry("2-0", tt.values)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, results.ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrMalformed mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.ID != "2-0" || e.Event == nil || !reflect.DeepEqual(e.Result, tasks.Result{}) {
				t.Fatalf("got %+v", e)
			}
			if !e.Event.At.Equal(tt.want.At) {
				t.Fatalf("at %s, want %s", e.Event.At, tt.want.At)
			}
			e.Event.At = tt.want.At
			if !reflect.DeepEqual(*e.Event, tt.want) {
				t.Fatalf("got %+v, want %+v", *e.Event, tt.want)
			}
		})
	}
}
