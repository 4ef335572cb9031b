package tasks

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func validReply() SendRequest {
	return SendRequest{
		SendID:    "seq-42:step-3:contact-7",
		Operation: OpSendMessage,
		AccountID: "acc-0001",
		ChatID:    "chat_AbC123",
		Text:      "Hi Marie, following up on our call.",
		Metadata:  json.RawMessage(`{"sequence":"seq-42","step":3}`),
	}
}

func fieldCodes(t *testing.T, err error) map[string]string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	out := map[string]string{}
	for _, f := range ve.Fields {
		out[f.Field] = f.Code
	}
	return out
}

func TestValidate(t *testing.T) {
	past := testNow.Add(-time.Hour)
	future := testNow.Add(time.Hour)
	tests := []struct {
		name   string
		mutate func(r *SendRequest)
		want   map[string]string // field -> code; nil = valid
	}{
		{"valid reply", func(r *SendRequest) {}, nil},
		{"valid reply with attachment only", func(r *SendRequest) {
			r.Text = ""
			r.Attachments = []Attachment{{URL: "https://files.example.com/a.pdf", Filename: "a.pdf", ContentType: "application/pdf", Size: 10, SHA256: strings.Repeat("a", 64)}}
		}, nil},
		{"valid chats_create", func(r *SendRequest) {
			r.Operation, r.ChatID, r.AttendeeIDs = OpCreateChat, "", []string{"33612345678@s.whatsapp.net"}
		}, nil},
		{"valid reaction", func(r *SendRequest) {
			r.Operation, r.ChatID, r.Text, r.MessageID, r.Reaction = OpReaction, "", "", "msg_1", "👍"
		}, nil},
		{"valid edit", func(r *SendRequest) { r.Operation, r.MessageID = OpEdit, "msg_1" }, nil},
		{"valid delete", func(r *SendRequest) { r.Operation, r.Text, r.MessageID = OpDelete, "", "msg_1" }, nil},
		{"valid window", func(r *SendRequest) {
			r.Window = &Window{NotAfter: &future, Timezone: "Europe/Paris", Days: []string{"mon", "tue"}, From: "09:00", To: "18:00"}
		}, nil},
		{"everything missing", func(r *SendRequest) { *r = SendRequest{} }, map[string]string{
			"send_id": "required", "operation": "required", "account_id": "required",
		}},
		{"send_id too long", func(r *SendRequest) { r.SendID = strings.Repeat("a", 129) }, map[string]string{"send_id": "too_long"}},
		{"send_id 128 ok", func(r *SendRequest) { r.SendID = strings.Repeat("a", 128) }, nil},
		{"send_id bad chars", func(r *SendRequest) { r.SendID = "a b" }, map[string]string{"send_id": "invalid"}},
		{"send_id dot", func(r *SendRequest) { r.SendID = "." }, map[string]string{"send_id": "invalid"}},
		{"send_id dot dot", func(r *SendRequest) { r.SendID = ".." }, map[string]string{"send_id": "invalid"}},
		{"send_id only dots", func(r *SendRequest) { r.SendID = "....." }, map[string]string{"send_id": "invalid"}},
		{"send_id with dots ok", func(r *SendRequest) { r.SendID = "..a.." }, nil},
		{"unknown operation", func(r *SendRequest) { r.Operation = "chats_spam" }, map[string]string{"operation": "invalid"}},
		{"reply without chat", func(r *SendRequest) { r.ChatID = "" }, map[string]string{"chat_id": "required"}},
		{"reply without text or attachments", func(r *SendRequest) { r.Text = "" }, map[string]string{"text": "required"}},
		{"text 4096 ok", func(r *SendRequest) { r.Text = strings.Repeat("é", 4096) }, nil},
		{"text 4097 too long", func(r *SendRequest) { r.Text = strings.Repeat("é", 4097) }, map[string]string{"text": "too_long"}},
		{"text invalid utf8", func(r *SendRequest) { r.Text = "\xff\xfe" }, map[string]string{"text": "invalid"}},
		{"text blank", func(r *SendRequest) { r.Text = "   \n" }, map[string]string{"text": "invalid"}},
		{"reply with attendees", func(r *SendRequest) { r.AttendeeIDs = []string{"33612345678@s.whatsapp.net"} }, map[string]string{"attendees_ids": "not_allowed"}},
		{"create with raw phone number", func(r *SendRequest) {
			r.Operation, r.ChatID, r.AttendeeIDs = OpCreateChat, "", []string{"+33 6 12 34 56 78"}
		}, map[string]string{"attendees_ids[0]": "cold_recipient"}},
		{"create with bare digits", func(r *SendRequest) {
			r.Operation, r.ChatID, r.AttendeeIDs = OpCreateChat, "", []string{"33612345678"}
		}, map[string]string{"attendees_ids[0]": "cold_recipient"}},
		{"create with group", func(r *SendRequest) {
			r.Operation, r.ChatID, r.AttendeeIDs = OpCreateChat, "", []string{"33612345678@s.whatsapp.net", "33612345679@s.whatsapp.net"}
		}, map[string]string{"attendees_ids": "too_many"}},
		{"create with chat_id", func(r *SendRequest) {
			r.Operation, r.AttendeeIDs = OpCreateChat, []string{"33612345678@s.whatsapp.net"}
		}, map[string]string{"chat_id": "not_allowed"}},
		{"reaction without reaction", func(r *SendRequest) {
			r.Operation, r.ChatID, r.Text, r.MessageID = OpReaction, "", "", "msg_1"
		}, map[string]string{"reaction": "required"}},
		{"reaction too long", func(r *SendRequest) {
			r.Operation, r.ChatID, r.Text, r.MessageID, r.Reaction = OpReaction, "", "", "msg_1", strings.Repeat("👍", 17)
		}, map[string]string{"reaction": "invalid"}},
		{"delete with text", func(r *SendRequest) { r.Operation, r.MessageID = OpDelete, "msg_1" }, map[string]string{"text": "not_allowed"}},
		{"edit without message", func(r *SendRequest) { r.Operation = OpEdit }, map[string]string{"message_id": "required"}},
		{"metadata not object", func(r *SendRequest) { r.Metadata = json.RawMessage(`[1,2]`) }, map[string]string{"metadata": "invalid"}},
		{"metadata too large", func(r *SendRequest) {
			r.Metadata = json.RawMessage(`{"x":"` + strings.Repeat("a", MaxMetadataBytes) + `"}`)
		}, map[string]string{"metadata": "too_long"}},
		{"deadline in past", func(r *SendRequest) { r.ApprovalDeadline = &past }, map[string]string{"approval_deadline": "in_past"}},
		{"deadline too far", func(r *SendRequest) {
			far := testNow.Add(31 * 24 * time.Hour)
			r.ApprovalDeadline = &far
		}, map[string]string{"approval_deadline": "too_far"}},
		{"stop_if_replied_since in future", func(r *SendRequest) { r.StopIfRepliedSince = &future }, map[string]string{"stop_if_replied_since": "in_future"}},
		{"window inverted", func(r *SendRequest) {
			r.Window = &Window{NotBefore: &future, NotAfter: &future}
		}, map[string]string{"window.not_after": "invalid"}},
		{"window daily without tz", func(r *SendRequest) {
			r.Window = &Window{From: "09:00", To: "18:00"}
		}, map[string]string{"window.timezone": "required"}},
		{"window bad tz, day, hours", func(r *SendRequest) {
			r.Window = &Window{Timezone: "Mars/Olympus", Days: []string{"mon", "mon", "funday"}, From: "9am", To: "25:00"}
		}, map[string]string{"window.timezone": "invalid", "window.days[1]": "duplicate", "window.days[2]": "invalid", "window.from": "invalid", "window.to": "invalid"}},
		{"window crossing midnight", func(r *SendRequest) {
			r.Window = &Window{Timezone: "UTC", From: "22:00", To: "06:00"}
		}, map[string]string{"window.to": "invalid"}},
		{"attachment problems", func(r *SendRequest) {
			r.Attachments = []Attachment{{URL: "ftp://x/y", Filename: "../etc/passwd", ContentType: "nope", Size: 0, SHA256: "ABC"}}
		}, map[string]string{"attachments[0].url": "invalid", "attachments[0].filename": "invalid", "attachments[0].content_type": "invalid", "attachments[0].size": "required", "attachments[0].sha256": "invalid"}},
		{"attachment content_type with CRLF", func(r *SendRequest) {
			r.Attachments = []Attachment{{URL: "https://files.example.com/a.png", Filename: "a.png", ContentType: "image/png\r\n", Size: 10, SHA256: strings.Repeat("b", 64)}}
		}, map[string]string{"attachments[0].content_type": "invalid"}},
		{"attachment content_type with spaces", func(r *SendRequest) {
			r.Attachments = []Attachment{{URL: "https://files.example.com/a.png", Filename: "a.png", ContentType: " image/png", Size: 10, SHA256: strings.Repeat("b", 64)}}
		}, map[string]string{"attachments[0].content_type": "invalid"}},
		{"attachment content_type with a tab inside", func(r *SendRequest) {
			r.Attachments = []Attachment{{URL: "https://files.example.com/a.png", Filename: "a.png", ContentType: "image/png;\tq=1", Size: 10, SHA256: strings.Repeat("b", 64)}}
		}, map[string]string{"attachments[0].content_type": "invalid"}},
		{"attachment too large and origin refused", func(r *SendRequest) {
			r.Attachments = []Attachment{{URL: "https://evil.example.net/a.png", Filename: "a.png", ContentType: "image/png", Size: 16 << 20, SHA256: strings.Repeat("b", 64)}}
		}, map[string]string{"attachments[0].url": "attachment_origin_not_allowed", "attachments[0].size": "attachment_too_large"}},
		{"too many attachments", func(r *SendRequest) {
			a := Attachment{URL: "https://files.example.com/a.pdf", Filename: "a.pdf", ContentType: "application/pdf", Size: 10, SHA256: strings.Repeat("a", 64)}
			r.Attachments = make([]Attachment, MaxAttachments+1)
			for i := range r.Attachments {
				r.Attachments[i] = a
			}
		}, map[string]string{"attachments": "too_many"}},
		{"account id with space", func(r *SendRequest) { r.AccountID = "acc 1" }, map[string]string{"account_id": "invalid"}},
	}
	opts := ValidateOptions{
		Now:                testNow,
		MaxAttachmentBytes: 15 << 20,
		OriginAllowed:      func(u *url.URL) bool { return u.Host == "files.example.com" },
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validReply()
			tt.mutate(&r)
			got := fieldCodes(t, r.Validate(opts))
			if len(got) != len(tt.want) {
				t.Fatalf("fields = %v, want %v", got, tt.want)
			}
			for f, code := range tt.want {
				if got[f] != code {
					t.Errorf("field %s: code %q, want %q (all: %v)", f, got[f], code, got)
				}
			}
		})
	}
}

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantField string
		wantCode  string
	}{
		{"ok", `{"send_id":"s1","operation":"chats_messages_send","account_id":"a","chat_id":"c","text":"hi"}`, "", ""},
		{"unknown field", `{"send_id":"s1","sendid":"x"}`, "sendid", "unknown_field"},
		{"wrong type", `{"send_id":12}`, "send_id", "invalid_type"},
		{"syntax", `{"send_id":`, "body", "invalid_json"},
		{"empty", ``, "body", "invalid_json"},
		{"trailing data", `{"send_id":"s1"} {"x":1}`, "body", "invalid_json"},
		{"bad time", `{"approval_deadline":"tomorrow"}`, "approval_deadline", "invalid_time"},
		{"bad stop_if_replied_since", `{"send_id":"s1","stop_if_replied_since":"yesterday"}`, "stop_if_replied_since", "invalid_time"},
		{"bad window.not_before", `{"window":{"not_before":"soon"}}`, "window.not_before", "invalid_time"},
		{"bad window.not_after", `{"approval_deadline":"2026-01-01T00:00:00Z","window":{"not_before":null,"not_after":"2026-13-01"}}`, "window.not_after", "invalid_time"},
		{"too large", `{"text":"` + strings.Repeat("a", MaxRequestBytes) + `"}`, "body", "too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeRequest(strings.NewReader(tt.body))
			if tt.wantField == "" {
				if err != nil || req.SendID != "s1" {
					t.Fatalf("got %+v, %v", req, err)
				}
				return
			}
			codes := fieldCodes(t, err)
			if codes[tt.wantField] != tt.wantCode {
				t.Fatalf("codes = %v, want %s=%s", codes, tt.wantField, tt.wantCode)
			}
		})
	}
}

func TestDecodeRequestUnknownFieldHint(t *testing.T) {
	tests := []struct{ body, field, msg string }{
		{`{"attendee_ids":["a"]}`, "attendee_ids", "unknown field; did you mean attendees_ids?"},
		{`{"window":{"not_afer":"2026-01-01T00:00:00Z"}}`, "not_afer", "unknown field; did you mean not_after?"},
		{`{"attachments":[{"contenttype":"x"}]}`, "contenttype", "unknown field; did you mean content_type?"},
		{`{"colour":"blue"}`, "colour", "unknown field"},
	}
	for _, tt := range tests {
		_, err := DecodeRequest(strings.NewReader(tt.body))
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != tt.field || ve.Fields[0].Message != tt.msg {
			t.Errorf("%s: got %v, want %s: %s", tt.body, err, tt.field, tt.msg)
		}
	}
}

func TestDecodeRequests(t *testing.T) {
	reqs, err := DecodeRequests(strings.NewReader(`[{"send_id":"a"},{"send_id":"b"}]`), 1<<20, 10)
	if err != nil || len(reqs) != 2 || reqs[1].SendID != "b" {
		t.Fatalf("got %v, %v", reqs, err)
	}
	_, err = DecodeRequests(strings.NewReader(`[{"send_id":"a"},{"bogus":1}]`), 1<<20, 10)
	if codes := fieldCodes(t, err); codes["[1].bogus"] != "unknown_field" {
		t.Fatalf("codes = %v", codes)
	}
	_, err = DecodeRequests(strings.NewReader(`[{},{},{}]`), 1<<20, 2)
	if codes := fieldCodes(t, err); codes["body"] != "too_many" {
		t.Fatalf("codes = %v", codes)
	}
}

func TestDigest(t *testing.T) {
	base := validReply()
	d0 := base.Digest()
	if len(d0) != 64 {
		t.Fatalf("digest %q is not hex sha256", d0)
	}
	same := base
	same.Metadata = json.RawMessage(`{"other":"metadata"}`)
	deadline := testNow.Add(time.Hour)
	same.ApprovalDeadline = &deadline
	same.RequestedBy = "someone"
	if same.Digest() != d0 {
		t.Error("metadata, deadline or requester changed the digest; they do not decide what is sent")
	}
	changes := map[string]func(r *SendRequest){
		"text":       func(r *SendRequest) { r.Text += "!" },
		"account":    func(r *SendRequest) { r.AccountID = "acc-0002" },
		"chat":       func(r *SendRequest) { r.ChatID = "chat_other" },
		"operation":  func(r *SendRequest) { r.Operation = OpEdit },
		"reaction":   func(r *SendRequest) { r.Reaction = "x" },
		"message":    func(r *SendRequest) { r.MessageID = "m" },
		"attendees":  func(r *SendRequest) { r.AttendeeIDs = []string{"1@lid"} },
		"attachment": func(r *SendRequest) { r.Attachments = []Attachment{{SHA256: "x"}} },
	}
	for name, change := range changes {
		r := validReply()
		change(&r)
		if r.Digest() == d0 {
			t.Errorf("changing %s did not change the digest", name)
		}
	}
	// Field boundaries are unambiguous: moving text between fields changes it.
	a, b := validReply(), validReply()
	a.ChatID, a.Text = "ab", "c"
	b.ChatID, b.Text = "a", "bc"
	if a.Digest() == b.Digest() {
		t.Error("digest is ambiguous across field boundaries")
	}
}

func TestTaskType(t *testing.T) {
	for _, op := range Operations {
		got, err := ParseTaskType(op.TaskType())
		if err != nil || got != op {
			t.Errorf("round trip %s: %s, %v", op, got, err)
		}
	}
	for _, bad := range []string{"", "whatsapp:", "whatsapp:nope", "chats_create", "sms:chats_create"} {
		if _, err := ParseTaskType(bad); err == nil {
			t.Errorf("ParseTaskType(%q) succeeded", bad)
		}
	}
}

func TestStates(t *testing.T) {
	terminal := map[State]bool{StateSent: true, StateRejected: true, StateExpired: true, StateCanceled: true, StateSkipped: true, StateFailed: true, StateNeedsReview: true}
	for _, s := range States {
		if s.Terminal() != terminal[s] {
			t.Errorf("%s.Terminal() = %v", s, s.Terminal())
		}
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
	}
	if State("bogus").Valid() {
		t.Error("bogus state valid")
	}
}
