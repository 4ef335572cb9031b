package ledger

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sendworker/sendworker/tasks"
)

// storedShapes are requests of many shapes: with and without each field the record also
// holds, metadata that json.Marshal escapes, text and metadata that mimic the stripped keys,
// ids that JSON escapes, a request too long to be chunked.
func storedShapes(now time.Time) []*tasks.SendRequest {
	since, after := now.Add(-time.Hour), now.Add(48*time.Hour)
	deadline := now.Add(2 * time.Hour)
	shapes := []*tasks.SendRequest{}
	add := func(id string, edit func(r *tasks.SendRequest)) {
		r := request(id, "acct-1")
		edit(r)
		shapes = append(shapes, r)
	}
	add("plain", func(*tasks.SendRequest) {})
	add("no-meta", func(r *tasks.SendRequest) { r.Metadata = nil })
	add("empty-meta", func(r *tasks.SendRequest) { r.Metadata = json.RawMessage(`{}`) })
	add("spaced-meta", func(r *tasks.SendRequest) { r.Metadata = json.RawMessage("{ \"a\" :\n [1, 2] }") })
	add("escaped-meta", func(r *tasks.SendRequest) { r.Metadata = json.RawMessage(`{"html":"<b>&</b>","u":"\u2028"}`) })
	add("meta-mimics", func(r *tasks.SendRequest) {
		r.Metadata = json.RawMessage(`{"account_id":"","operation":"x","chat_id":"c","requested_by":"m"}`)
	})
	add("text-mimics", func(r *tasks.SendRequest) {
		r.Text = `{"send_id":"x","operation":"","account_id":""} "chat_id":"y" <&> ` + "\u00e9\U0001F600"
	})
	add("no-requester", func(r *tasks.SendRequest) { r.RequestedBy = "" })
	add("new-chat", func(r *tasks.SendRequest) {
		r.Operation, r.ChatID, r.AttendeeIDs = tasks.OpCreateChat, "", []string{"att-1", "att-2"}
	})
	add("reaction", func(r *tasks.SendRequest) {
		r.Operation, r.Text, r.MessageID, r.Reaction, r.Metadata = tasks.OpReaction, "", "m-1", "👍", nil
	})
	add("attachment", func(r *tasks.SendRequest) {
		r.Attachments = []tasks.Attachment{{URL: "https://files.example/a.pdf", Filename: "a.pdf",
			ContentType: "application/pdf", Size: 1234, SHA256: strings.Repeat("ab", 32)}}
	})
	add("scheduled", func(r *tasks.SendRequest) {
		r.ApprovalDeadline, r.StopIfRepliedSince = &deadline, &since
		r.Window = &tasks.Window{NotAfter: &after, Timezone: "Europe/Paris", Days: []string{"mon", "tue"}, From: "09:00", To: "18:00"}
	})
	add(`odd"id\é`, func(*tasks.SendRequest) {})
	add("long", func(r *tasks.SendRequest) { r.Text = strings.Repeat("long text ", 150) })
	add("odd-account", func(r *tasks.SendRequest) { r.AccountID, r.ChatID = `acc "q" <x>`, "chat <&>" })
	return shapes
}

// asStoredWhole is req as a record stores it whole (the form before storedRequest, and
// Revise's): its JSON decoded, the Request decodeRecord gave before the change.
func asStoredWhole(t *testing.T, req *tasks.SendRequest) tasks.SendRequest {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var out tasks.SendRequest
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStoredRequestRoundTrip: Create stores the request without the fields the record holds
// (and not the fields whose value is the default), and Get gives back the very request a
// record storing it whole gives: equal field by field, same digest.
func TestStoredRequestRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, req := range storedShapes(e.clock.Now()) {
		created, ok, err := e.l.Create(e.ctx, req, req.Digest(), e.clock.Now().Add(time.Hour))
		if err != nil || !ok {
			t.Fatalf("%s: create: %v %v", req.SendID, ok, err)
		}
		got := e.get(req.SendID)
		want := asStoredWhole(t, req)
		for name, rec := range map[string]*tasks.Record{"Get": got, "Create": created} {
			if !reflect.DeepEqual(rec.Request, want) {
				t.Errorf("%s: %s decodes\n%+v\nwant\n%+v", req.SendID, name, rec.Request, want)
			}
			if d := rec.Request.Digest(); d != req.Digest() {
				t.Errorf("%s: %s: digest %s, want %s", req.SendID, name, d, req.Digest())
			}
			if !rec.UpdatedAt.Equal(rec.CreatedAt) || rec.Gen != 0 || rec.Attempts != 0 {
				t.Errorf("%s: %s: updated %v (created %v), gen %d, attempts %d", req.SendID, name, rec.UpdatedAt, rec.CreatedAt, rec.Gen, rec.Attempts)
			}
		}
		h, err := e.rdb.HGetAll(e.ctx, e.l.keys.Send(req.SendID)).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{fUpdatedMs, fGen, fAttempts} {
			if _, ok := h[f]; ok {
				t.Errorf("%s: field %s stored at creation", req.SendID, f)
			}
		}
		body, err := joinLong(h, fReq)
		if err != nil {
			t.Fatal(err)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &top); err != nil {
			t.Fatalf("%s: stored request %q: %v", req.SendID, body, err)
		}
		for _, k := range []string{"operation", "account_id", "requested_by"} {
			if _, ok := top[k]; ok {
				t.Errorf("%s: stored request holds %s: %s", req.SendID, k, body)
			}
		}
		if _, ok := top["metadata"]; ok != (req.SendID == "escaped-meta") {
			t.Errorf("%s: stored request holds metadata: %v (only a metadata json.Marshal escapes stays): %s", req.SendID, ok, body)
		}
	}
}

// TestWholeStoredRequestIsReadAsItIs: a record whose req is a whole request (written before
// storedRequest, or by Revise) is decoded from it alone, even where the record's own fields
// say otherwise.
func TestWholeStoredRequestIsReadAsItIs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("whole", "acct-1")
	req := request("whole", "acct-1")
	req.ChatID, req.RequestedBy, req.Metadata = "", "", nil
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	key := e.l.keys.Send("whole")
	if err := e.rdb.HDel(e.ctx, key, fReq+".1", fReq+".n").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.HSet(e.ctx, key, fReq, b, fUpdatedMs, "1", fGen, "0", fAttempts, "0").Err(); err != nil {
		t.Fatal(err)
	}
	got := e.get("whole")
	if want := asStoredWhole(t, req); !reflect.DeepEqual(got.Request, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", got.Request, want)
	}
	if got.UpdatedAt.UnixMilli() != 1 {
		t.Errorf("updated %v, want the stored 1 ms", got.UpdatedAt)
	}
}

// FuzzStoredRequest: for any request, the record Create stores (createdRecord: storedRequest
// and the record's fields) decodes to the request a record storing it whole decodes to.
func FuzzStoredRequest(f *testing.F) {
	f.Add("s1", "chats_messages_send", "acc-1", "sched", "chat-1", "hello", `{"a":1}`)
	f.Add(`s"2`, "", "a", "", "", `"operation":""`, `{"x":"<&>"}`)
	f.Add("s3", "chats_create", `acc "x"`, "by", "", strings.Repeat("é", 300), "")
	f.Add("s4", "x", "a", "b", "c", "", `null`)
	f.Add("s5", "x", "a", "b", "c", "t", "{ \"k\" : [ 1 ,2 ] }")
	f.Fuzz(func(t *testing.T, id, op, account, by, chat, text, meta string) {
		req := &tasks.SendRequest{SendID: id, Operation: tasks.Operation(op), AccountID: account,
			RequestedBy: by, ChatID: chat, Text: text}
		if meta != "" {
			req.Metadata = json.RawMessage(meta)
		}
		b, err := json.Marshal(req)
		if err != nil || id == "" || account == "" {
			return // Create refuses these: invalid metadata, no id or account
		}
		var whole tasks.SendRequest
		if err := json.Unmarshal(b, &whole); err != nil || whole.SendID != id || whole.AccountID != account {
			return // not valid UTF-8: JSON does not keep it as given
		}
		for _, v := range []string{op, by, chat} {
			if !utf8.ValidString(v) {
				return // Validate refuses it
			}
		}
		metadata := ""
		if len(req.Metadata) > 0 {
			var buf bytes.Buffer
			if err := json.Compact(&buf, req.Metadata); err != nil {
				return
			}
			metadata = buf.String()
		}
		body, err := storedRequest(req, metadata)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := createdRecord(req, string(body), metadata, strings.Repeat("0", 64), 1700000000000, 1700000360000)
		if err != nil {
			t.Fatalf("stored %s: %v", body, err)
		}
		if !reflect.DeepEqual(rec.Request, whole) {
			t.Fatalf("stored %s decodes\n%+v\nwant\n%+v", body, rec.Request, whole)
		}
	})
}

// TestEndedSendKeepsItsRequest: the record's chat_id is the chat a send went to once it ends
// (a chats_create's new chat), so the request is not rebuilt from it: a sent chats_create still
// reads back as the request given, with its digest, and an idempotent re-enqueue answers it.
func TestEndedSendKeepsItsRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req := request("nc", "acct-1")
	req.Operation, req.ChatID, req.AttendeeIDs = tasks.OpCreateChat, "", []string{"att-1"}
	rec, _, err := e.l.Create(e.ctx, req, req.Digest(), e.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Approve(e.ctx, "nc", rec.Digest, "approver", "ok"); err != nil {
		t.Fatal(err)
	}
	res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "nc", Digest: rec.Digest, Gen: e.gen("nc"), Token: "tok",
		Lease: time.Minute})
	if err != nil || res.Outcome != BeginOK {
		t.Fatalf("begin: %v %v", res.Outcome, err)
	}
	if _, err := e.l.End(e.ctx, "nc", "tok", Outcome{State: tasks.StateSent, MessageID: "m-1", ChatID: "new-chat-9"}); err != nil {
		t.Fatal(err)
	}
	got := e.get("nc")
	if got.Request.ChatID != "" || got.Request.Digest() != got.Digest || got.Result.ChatID != "new-chat-9" {
		t.Fatalf("request chat_id %q, digest matches %v, result chat %q", got.Request.ChatID,
			got.Request.Digest() == got.Digest, got.Result.ChatID)
	}
	again, created, err := e.l.Create(e.ctx, req, req.Digest(), e.clock.Now().Add(time.Hour))
	if err != nil || created || again.Request.ChatID != "" {
		t.Fatalf("replay: created=%v err=%v chat_id=%q", created, err, again.Request.ChatID)
	}
}
