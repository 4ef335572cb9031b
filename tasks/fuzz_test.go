package tasks

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bodies to the decoder and validator: they
// must never panic, and any error must be a field-named *ValidationError.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"send_id":"s1","operation":"chats_messages_send","account_id":"a","chat_id":"c","text":"hi"}`,
		`{"send_id":"s2","operation":"chats_create","account_id":"a","attendees_ids":["+33600000000"],"text":"x"}`,
		`{"send_id":"s3","operation":"messages_reaction","account_id":"a","message_id":"m","reaction":"👍"}`,
		`{"window":{"timezone":"Europe/Paris","days":["mon"],"from":"09:00","to":"18:00"}}`,
		`{"attachments":[{"url":"https://x/y","filename":"a","content_type":"a/b","size":1,"sha256":"00"}]}`,
		`{"metadata":{"a":[1,2,{"b":null}]}}`,
		`[]`, `null`, `{"send_id":`, "\x00",
		`{"stop_if_replied_since":"yesterday"}`, `{"window":{"not_after":"x","not_before":1}}`,
		`{"attendee_ids":["a"]}`, `{"send_id":".."}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(bytes.NewReader(body))
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) == 0 {
				t.Fatalf("decode error %v is not a field-named ValidationError", err)
			}
			return
		}
		if err := req.Validate(ValidateOptions{Now: testNow}); err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) == 0 {
				t.Fatalf("validate error %v is not a field-named ValidationError", err)
			}
			for _, fe := range ve.Fields {
				if fe.Field == "" || fe.Code == "" {
					t.Fatalf("unnamed field error %+v", fe)
				}
			}
			return
		}
		// A valid request has a stable digest.
		if req.Digest() != req.Digest() {
			t.Fatal("digest not deterministic")
		}
	})
}
