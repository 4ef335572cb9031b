package provider

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDecodeProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want *Problem
	}{
		{"full", `{"title":"Disconnected","detail":"d","instance":"i","type":"errors/disconnected_account","status":401}`,
			&Problem{Type: "errors/disconnected_account", Title: "Disconnected", Detail: "d", Instance: "i", Status: 401}},
		{"status as string", `{"type":"errors/x","status":"503"}`, &Problem{Type: "errors/x", Status: 503}},
		{"wrong types ignored", `{"type":"errors/x","title":42,"status":true}`, &Problem{Type: "errors/x"}},
		{"unknown fields", `{"type":"errors/brand_new","extra":{"a":1}}`, &Problem{Type: "errors/brand_new"}},
		{"html", `<html><body>502 Bad Gateway</body></html>`, nil},
		{"empty", ``, nil},
		{"array", `[1,2]`, nil},
		{"null", `null`, nil},
		{"empty object", `{}`, nil},
		{"truncated", `{"type":"errors/x","tit`, nil},
		{"fractional status", `{"status":401.5}`, nil},
		{"huge status", `{"status":1e300}`, nil},
	} {
		got := decodeProblem([]byte(tc.in))
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestDecodeList(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         string
		wantItems  int
		wantCursor string
		wantErr    bool
	}{
		{"next page", `{"object":"ChatAttendeeList","items":[{"id":"a"},{"id":"b"}],"cursor":"abc"}`, 2, "abc", false},
		{"null cursor", `{"object":"ChatAttendeeList","items":[{"id":"a"}],"cursor":null}`, 1, "", false},
		{"absent cursor", `{"object":"ChatAttendeeList","items":[{"id":"a"}]}`, 1, "", false},
		{"empty cursor", `{"items":[],"cursor":""}`, 0, "", false},
		{"null items", `{"items":null,"cursor":null}`, 0, "", false},
		{"numeric cursor", `{"items":[],"cursor":12}`, 0, "", true},
		{"not an object", `"hello"`, 0, "", true},
		{"garbage", `<html>`, 0, "", true},
		{"bad flag", `{"items":[{"id":"a","is_self":"maybe"}]}`, 0, "", true},
	} {
		object, items, cursor, err := decodeList[Attendee]([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if err == nil && (len(items) != tc.wantItems || cursor != tc.wantCursor) {
			t.Errorf("%s: %d items cursor %q (object %q)", tc.name, len(items), cursor, object)
		}
	}
}

func TestDecodeWireTypes(t *testing.T) {
	in := `{"object":"Chat","id":"c1","account_id":"acc","account_type":"WHATSAPP","provider_id":"336@s.whatsapp.net",
		"attendee_provider_id":"336@s.whatsapp.net","name":null,"type":0,"timestamp":"2026-11-24T10:00:00.000Z",
		"unread_count":2,"archived":0,"muted_until":null,"read_only":1,"disabledFeatures":["reactions"],
		"lastMessage":{"id":"m1","text":"hi","timestamp":"2026-11-24T09:59:59Z","is_sender":1,"seen":true,"deleted":null,
		"reactions":[{"value":"👍","sender_id":"s","is_sender":0}],"attachments":[{"id":"a","type":"img","unavailable":0}],"quoted":{"id":"q"}}}`
	chat, err := decodeChat([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	if chat.ID != "c1" || !chat.Timestamp.Equal(want) || bool(chat.Archived) || !bool(chat.ReadOnly) || chat.UnreadCount != 2 || chat.Name != "" {
		t.Errorf("chat: %+v", chat)
	}
	m := chat.LastMessage
	if m == nil || !bool(m.IsSender) || !bool(m.Seen) || bool(m.Deleted) || m.Text != "hi" || len(m.Reactions) != 1 || len(m.Attachments) != 1 || len(m.Quoted) == 0 {
		t.Errorf("last message: %+v", m)
	}
	if _, err := decodeChat([]byte(`null`)); err == nil {
		t.Error("null chat must be an error")
	}
	// The reference's other values: read_only 2 and muted_until -1 (muted for good).
	ro, err := decodeChat([]byte(`{"id":"c2","read_only":2,"muted_until":-1,"disabledFeatures":["reactions","reply"]}`))
	if err != nil || !bool(ro.ReadOnly) || !ro.MutedUntil.Before(time.Unix(0, 0)) || len(ro.DisabledFeatures) != 2 {
		t.Errorf("read_only 2 / muted_until -1: %+v %v", ro, err)
	}

	acc, err := decodeAccount([]byte(`{"object":"Account","type":"WHATSAPP","id":"acc","name":"n","created_at":"2026-01-01T00:00:00.000Z",
		"connection_params":{"im":{"phone_number":"+33600000000"}},"groups":[],"sources":[{"id":"acc_MESSAGING","status":"CONNECTED"},{"id":"x","status":"ERROR"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if acc.Status() != StatusConnected || !acc.Healthy() || acc.ConnectionParams.IM.PhoneNumber != "+33600000000" {
		t.Errorf("account: %+v", acc)
	}
	for status, healthy := range map[string]bool{"OK": true, "CONNECTED": true, "CREDENTIALS": false, "STOPPED": false, "": false} {
		a := &Account{}
		if status != "" {
			a.Sources = []AccountSource{{Status: status}}
		}
		if a.Healthy() != healthy {
			t.Errorf("Healthy with %q = %v", status, !healthy)
		}
	}
	var nilAcc *Account
	if nilAcc.Healthy() || nilAcc.Status() != "" {
		t.Error("nil account")
	}
}

func TestDecodeSent(t *testing.T) {
	sent, _ := decodeSent([]byte(`{"object":"MessageSent","message_id":"m1"}`))
	if sent.MessageID == nil || *sent.MessageID != "m1" {
		t.Errorf("sent %+v", sent)
	}
	for _, in := range []string{`{"object":"MessageSent","message_id":null}`, `{"message_id":""}`, `garbage`, ``, `{"message_id":5}`} {
		sent, started := decodeSent([]byte(in))
		if sent.MessageID != nil || started.ChatID != nil {
			t.Errorf("%q: want nil ids, got %+v %+v", in, sent, started)
		}
	}
	_, started := decodeSent([]byte(`{"object":"ChatStarted","chat_id":"c","message_id":"m"}`))
	if started.ChatID == nil || *started.ChatID != "c" || *started.MessageID != "m" {
		t.Errorf("started %+v", started)
	}
}

func TestFlag(t *testing.T) {
	for in, want := range map[string]bool{
		`0`: false, `1`: true, `2`: true, `0.0`: false, `true`: true, `false`: false, `null`: false,
		`"1"`: true, `"0"`: false, `"true"`: true, `"false"`: false, `""`: false, ` 1 `: true,
	} {
		var f Flag
		if err := json.Unmarshal([]byte(in), &f); err != nil || bool(f) != want {
			t.Errorf("%s: %v %v", in, f, err)
		}
	}
	for _, in := range []string{`"yes"`, `[]`, `{}`} {
		var f Flag
		if err := json.Unmarshal([]byte(in), &f); err == nil {
			t.Errorf("%s: want error", in)
		}
	}
	out, _ := json.Marshal(struct{ A, B Flag }{true, false})
	if string(out) != `{"A":1,"B":0}` {
		t.Errorf("marshal: %s", out)
	}
}

func TestTime(t *testing.T) {
	want := time.Date(2026, 11, 24, 10, 0, 0, 123e6, time.UTC)
	for _, in := range []string{`"2026-11-24T10:00:00.123Z"`, `"2026-11-24T11:00:00.123+01:00"`, `1795514400123`} {
		var tm Time
		if err := json.Unmarshal([]byte(in), &tm); err != nil || !tm.Equal(want) {
			t.Errorf("%s: %v %v", in, tm, err)
		}
	}
	var tm Time
	if err := json.Unmarshal([]byte(`"2026-11-24T10:00:00Z"`), &tm); err != nil || !tm.Equal(want.Truncate(time.Second)) {
		t.Errorf("without ms: %v %v", tm, err)
	}
	for _, in := range []string{`null`, `""`} {
		tm := Time{Time: want}
		if err := json.Unmarshal([]byte(in), &tm); err != nil || !tm.IsZero() {
			t.Errorf("%s: %v %v", in, tm, err)
		}
	}
	for _, in := range []string{`"yesterday"`, `"2026-11-24"`, `true`, `{}`} {
		var tm Time
		if err := json.Unmarshal([]byte(in), &tm); err == nil {
			t.Errorf("%s: want error", in)
		}
	}
	out, _ := json.Marshal(struct{ A, B Time }{Time{want.In(time.FixedZone("x", 3600))}, Time{}})
	if string(out) != `{"A":"2026-11-24T10:00:00.123Z","B":null}` {
		t.Errorf("marshal: %s", out)
	}
	if got := FormatTime(time.Date(2026, 11, 24, 11, 0, 0, 0, time.FixedZone("x", 3600))); got != "2026-11-24T10:00:00.000Z" {
		t.Errorf("FormatTime: %s", got)
	}
}

// The fuzz targets: every decoder of provider input must return, never panic, whatever the
// bytes.

func FuzzDecodeProblem(f *testing.F) {
	f.Add([]byte(`{"title":"t","detail":"d","instance":"i","type":"errors/disconnected_account","status":401}`))
	f.Add([]byte(`{"status":"429","type":"https://x/errors/"}`))
	f.Add([]byte(`<html>`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		if p := decodeProblem(data); p != nil {
			_ = p.Slug()
			e := &Error{Op: OpChatsList, Status: 400, Problem: p, Err: ErrStatus}
			_ = e.Error()
		}
	})
}

func FuzzDecodeList(f *testing.F) {
	f.Add([]byte(`{"object":"MessageList","items":[{"id":"m","is_sender":1,"timestamp":"2026-11-24T10:00:00.000Z","reactions":[{"value":"x"}]}],"cursor":"c"}`))
	f.Add([]byte(`{"object":"ChatList","items":[{"id":"c","type":1,"archived":true,"muted_until":-1}],"cursor":null}`))
	f.Add([]byte(`{"object":"ChatAttendeeList","items":[{"id":"a","is_self":0}]}`))
	f.Add([]byte(`{"items":[{}],"cursor":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _, _ = decodeList[Message](data)
		_, _, _, _ = decodeList[Chat](data)
		if _, items, cursor, err := decodeList[Attendee](data); err == nil && cursor == "" {
			_ = len(items)
		}
	})
}

func FuzzDecodeObject(f *testing.F) {
	f.Add([]byte(`{"object":"Account","id":"a","sources":[{"id":"s","status":"OK"}],"created_at":"2026-11-24T10:00:00.000Z"}`))
	f.Add([]byte(`{"object":"Chat","id":"c","lastMessage":{"id":"m","seen":"1"}}`))
	f.Add([]byte(`{"object":"MessageSent","message_id":null}`))
	f.Add([]byte(`{"object":"AccountResync","status":"SYNC_DONE"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if a, err := decodeAccount(data); err == nil {
			_ = a.Healthy()
		}
		_, _ = decodeChat(data)
		_, _ = decodeObject[AccountResync](data)
		sent, started := decodeSent(data)
		if sent == nil || started == nil {
			t.Fatal("decodeSent must always return values")
		}
	})
}
