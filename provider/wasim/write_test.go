package wasim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestSendMessage(t *testing.T) {
	e := newEnv(t, nil)
	pdf := bytes.Repeat([]byte("%PDF-"), 1000)
	img := []byte("\x89PNG fake image")
	voice := []byte("OggS fake voice")
	e.clock.Advance(time.Minute)
	r := e.sendForm("/api/v1/chats/chat-bob/messages",
		[][2]string{{"text", "Voici le devis 🚀"}, {"account_id", "acc-a"}, {"quote_id", "m-bob-3"}, {"typing_duration", "1500"}, {"unknown_field", "ignored"}},
		[]formFile{
			{"attachments", "devis.pdf", "application/pdf", pdf},
			{"attachments", "photo.png", "image/png", img},
			{"voice_message", "note.ogg", "audio/ogg", voice},
		})
	wantStatus(t, r, http.StatusCreated)
	id, _ := r.body["message_id"].(string)
	if r.body["object"] != "MessageSent" || id == "" {
		t.Fatalf("body = %s", r.raw)
	}

	// The message is real: stored, listed first, and the chat's last message.
	m, ok := e.sim.Message(id)
	if !ok || m.Text != "Voici le devis 🚀" || !m.IsSender || m.ChatID != "chat-bob" || m.QuotedID != "m-bob-3" {
		t.Fatalf("stored message = %+v", m)
	}
	if !m.Timestamp.Equal(testStart().Add(time.Minute)) {
		t.Errorf("timestamp = %v", m.Timestamp)
	}
	wantFiles := []struct {
		name, typ string
		data      []byte
		voice     bool
	}{{"devis.pdf", "file", pdf, false}, {"photo.png", "img", img, false}, {"note.ogg", "audio", voice, true}}
	if len(m.Attachments) != len(wantFiles) {
		t.Fatalf("attachments = %+v", m.Attachments)
	}
	for i, w := range wantFiles {
		a := m.Attachments[i]
		if a.FileName != w.name || a.Type != w.typ || a.Size != int64(len(w.data)) || a.SHA256 != sha(w.data) || a.VoiceNote != w.voice {
			t.Errorf("attachment %d = %+v", i, a)
		}
	}
	list := items(t, e.get("/api/v1/chats/chat-bob/messages?limit=1"))
	got := list[0]
	if got["id"] != id || got["is_sender"] != float64(1) || got["sender_id"] != pidSelfA {
		t.Errorf("newest message = %v", got)
	}
	if q, _ := got["quoted"].(map[string]any); q["id"] != "m-bob-3" {
		t.Errorf("quoted = %v", got["quoted"])
	}
	if atts := got["attachments"].([]any); len(atts) != 3 || atts[1].(map[string]any)["mimetype"] != "image/png" {
		t.Errorf("attachments = %v", got["attachments"])
	}
	chat := e.get("/api/v1/chats/chat-bob").body
	if chat["lastMessage"].(map[string]any)["id"] != id || chat["timestamp"] != "2026-11-24T10:01:00.000Z" || chat["unread_count"] != float64(0) {
		t.Errorf("chat after send = %v", chat)
	}

	// And recorded as a delivery with the hashes of the received bytes.
	ds := e.sim.Deliveries()
	if len(ds) != 1 {
		t.Fatalf("deliveries = %+v", ds)
	}
	d := ds[0]
	if d.Seq != 1 || d.Operation != "chats_messages_send" || d.Outcome != "ok" || !d.Applied || d.AccountID != "acc-a" ||
		d.ChatID != "chat-bob" || d.MessageID != id || d.Text != "Voici le devis 🚀" || len(d.Attachments) != 3 {
		t.Fatalf("delivery = %+v", d)
	}
	if d.Attachments[0].SHA256 != sha(pdf) || d.Attachments[0].Size != int64(len(pdf)) || d.Attachments[0].ContentType != "application/pdf" ||
		d.Attachments[0].Filename != "devis.pdf" || d.Attachments[2].Field != "voice_message" {
		t.Errorf("delivered attachments = %+v", d.Attachments)
	}
}

func TestSendAttachmentOnly(t *testing.T) {
	e := newEnv(t, nil)
	r := e.sendForm("/api/v1/chats/chat-alice/messages", nil, []formFile{{"attachments", "a.bin", "", []byte{1, 2, 3}}})
	wantStatus(t, r, http.StatusCreated)
	list := items(t, e.get("/api/v1/chats/chat-alice/messages?limit=1"))
	if list[0]["text"] != nil {
		t.Errorf("text = %#v, want null for an attachment-only message", list[0]["text"])
	}
	if a := list[0]["attachments"].([]any)[0].(map[string]any); a["mimetype"] != "application/octet-stream" {
		t.Errorf("attachment = %v", a)
	}
}

func TestSendErrors(t *testing.T) {
	tests := []struct {
		name       string
		chat       string
		fields     [][2]string
		files      []formFile
		rawBody    string
		rawType    string
		wantStatus int
		wantSlug   string
	}{
		{"unknown chat", "nope", [][2]string{{"text", "hi"}}, nil, "", "", 404, "resource_not_found"},
		{"other account", "chat-alice", [][2]string{{"text", "hi"}, {"account_id", "acc-b"}}, nil, "", "", 403, "account_mismatch"},
		{"disconnected account", "chat-eve", [][2]string{{"text", "hi"}}, nil, "", "", 401, "disconnected_account"},
		{"nothing to send", "chat-alice", [][2]string{{"account_id", "acc-a"}}, nil, "", "", 400, "invalid_parameters"},
		{"text over the limit", "chat-alice", [][2]string{{"text", strings.Repeat("é", maxTextChars+1)}}, nil, "", "", 400, "too_many_characters"},
		{"text far over the limit", "chat-alice", [][2]string{{"text", strings.Repeat("a", maxFieldBytes+1)}}, nil, "", "", 400, "too_many_characters"},
		{"text twice", "chat-alice", [][2]string{{"text", "a"}, {"text", "b"}}, nil, "", "", 400, "invalid_parameters"},
		{"bad typing duration", "chat-alice", [][2]string{{"text", "a"}, {"typing_duration", "-1"}}, nil, "", "", 400, "invalid_parameters"},
		{"quote from another chat", "chat-alice", [][2]string{{"text", "a"}, {"quote_id", "m-bob-1"}}, nil, "", "", 404, "resource_not_found"},
		{"attachment over 15 MiB", "chat-alice", nil, []formFile{{"attachments", "big.bin", "", make([]byte, maxAttachmentBytes+1<<20)}}, "", "", 400, "content_too_large"},
		{"media the provider rejects", "chat-alice", nil, []formFile{{"attachments", "setup.exe", "", []byte("MZ")}}, "", "", 415, "unsupported_media_type"},
		{"JSON body", "chat-alice", nil, nil, `{"text":"hi"}`, "application/json", 400, "invalid_parameters"},
		{"urlencoded body", "chat-alice", nil, nil, `text=hi`, "application/x-www-form-urlencoded", 400, "invalid_parameters"},
		{"no boundary", "chat-alice", nil, nil, `x`, "multipart/form-data", 400, "invalid_parameters"},
		{"broken multipart", "chat-alice", nil, nil, "--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhi", "multipart/form-data; boundary=b", 400, "invalid_parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			var r reply
			if tt.rawType != "" {
				r = e.request(http.MethodPost, "/api/v1/chats/"+tt.chat+"/messages", strings.NewReader(tt.rawBody), tt.rawType, nil)
			} else {
				r = e.sendForm("/api/v1/chats/"+tt.chat+"/messages", tt.fields, tt.files)
			}
			wantProblem(t, r, tt.wantStatus, tt.wantSlug)
			ds := e.sim.Deliveries()
			if len(ds) != 1 || ds[0].Outcome != "rejected_"+tt.wantSlug || ds[0].Applied {
				t.Errorf("deliveries = %+v", ds)
			}
			if n := len(items(t, e.get("/api/v1/chats/chat-alice/messages"))); tt.chat == "chat-alice" && n != 3 {
				t.Errorf("chat-alice has %d messages after a refused send", n)
			}
		})
	}
}

func TestChatsCreate(t *testing.T) {
	tests := []struct {
		name        string
		fields      [][2]string
		wantStatus  int
		wantSlug    string
		wantChat    string // "new" for a chat that did not exist
		wantType    float64
		wantMembers int
	}{
		{"existing single chat", [][2]string{{"account_id", "acc-a"}, {"attendees_ids", pidAlice}, {"text", "hello again"}}, 201, "", "chat-alice", 0, 1},
		{"known contact without chat", [][2]string{{"account_id", "acc-a"}, {"attendees_ids", pidCarol}, {"text", "hello Carol"}}, 201, "", "new", 0, 1},
		{"lid contact", [][2]string{{"account_id", "acc-a"}, {"attendees_ids", pidDan}, {"text", "hello Dan"}}, 201, "", "new", 0, 1},
		{"several contacts make a group", [][2]string{{"account_id", "acc-a"}, {"attendees_ids", pidCarol}, {"attendees_ids", pidDan}, {"title", "Launch"}, {"text", "hi all"}}, 201, "", "new", 1, 2},
		{"raw phone number", [][2]string{{"account_id", "acc-a"}, {"attendees_ids", "+33600000000"}, {"text", "hi"}}, 422, "invalid_recipient", "", 0, 0},
		{"unknown provider id", [][2]string{{"account_id", "acc-a"}, {"attendees_ids", "33699999999@s.whatsapp.net"}, {"text", "hi"}}, 422, "invalid_recipient", "", 0, 0},
		{"attendee id instead of provider id", [][2]string{{"account_id", "acc-a"}, {"attendees_ids", "att-alice"}, {"text", "hi"}}, 422, "invalid_recipient", "", 0, 0},
		{"another account's contact", [][2]string{{"account_id", "acc-a"}, {"attendees_ids", pidEve}, {"text", "hi"}}, 422, "invalid_recipient", "", 0, 0},
		{"no account", [][2]string{{"attendees_ids", pidAlice}, {"text", "hi"}}, 400, "invalid_parameters", "", 0, 0},
		{"unknown account", [][2]string{{"account_id", "nope"}, {"attendees_ids", pidAlice}, {"text", "hi"}}, 404, "resource_not_found", "", 0, 0},
		{"no attendees", [][2]string{{"account_id", "acc-a"}, {"text", "hi"}}, 400, "invalid_parameters", "", 0, 0},
		{"no text", [][2]string{{"account_id", "acc-a"}, {"attendees_ids", pidAlice}}, 400, "invalid_parameters", "", 0, 0},
		{"disconnected account", [][2]string{{"account_id", "acc-b"}, {"attendees_ids", pidEve}, {"text", "hi"}}, 401, "disconnected_account", "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			before := len(items(t, e.get("/api/v1/chats?limit=250")))
			r := e.sendForm("/api/v1/chats", tt.fields, nil)
			if tt.wantSlug != "" {
				wantProblem(t, r, tt.wantStatus, tt.wantSlug)
				if after := len(items(t, e.get("/api/v1/chats?limit=250"))); after != before {
					t.Errorf("chats went from %d to %d on a refused create", before, after)
				}
				if d := e.sim.Deliveries(); len(d) != 1 || d[0].Outcome != "rejected_"+tt.wantSlug || d[0].Operation != "chats_create" {
					t.Errorf("deliveries = %+v", d)
				}
				return
			}
			wantStatus(t, r, tt.wantStatus)
			chatID, _ := r.body["chat_id"].(string)
			msgID, _ := r.body["message_id"].(string)
			if r.body["object"] != "ChatStarted" || chatID == "" || msgID == "" {
				t.Fatalf("body = %s", r.raw)
			}
			after := len(items(t, e.get("/api/v1/chats?limit=250")))
			if tt.wantChat == "new" {
				if after != before+1 || strings.HasPrefix(chatID, "chat-") {
					t.Errorf("chat %s: chats went from %d to %d, want a new chat", chatID, before, after)
				}
			} else if chatID != tt.wantChat || after != before {
				t.Errorf("chat = %s (chats %d -> %d), want the existing %s", chatID, before, after, tt.wantChat)
			}
			c := e.get("/api/v1/chats/" + chatID).body
			if c["type"] != tt.wantType || c["lastMessage"].(map[string]any)["id"] != msgID {
				t.Errorf("chat = %v", c)
			}
			if n := len(items(t, e.get("/api/v1/chats/"+chatID+"/attendees"))); n != tt.wantMembers+1 {
				t.Errorf("chat has %d attendees, want %d and self", n, tt.wantMembers)
			}
			d := e.sim.Deliveries()
			if len(d) != 1 || d[0].Outcome != "ok" || d[0].ChatID != chatID || d[0].MessageID != msgID || d[0].AccountID != "acc-a" || len(d[0].AttendeeIDs) == 0 {
				t.Errorf("deliveries = %+v", d)
			}
		})
	}

	t.Run("a second create reuses the new chat", func(t *testing.T) {
		e := newEnv(t, nil)
		fields := [][2]string{{"account_id", "acc-a"}, {"attendees_ids", pidCarol}, {"text", "one"}}
		first := e.sendForm("/api/v1/chats", fields, nil).body["chat_id"]
		second := e.sendForm("/api/v1/chats", fields, nil).body["chat_id"]
		if first == nil || first != second {
			t.Errorf("chat ids %v then %v, want one chat per person", first, second)
		}
		if c := e.get("/api/v1/chats/" + first.(string)).body; c["attendee_provider_id"] != pidCarol || c["name"] != "Carol" {
			t.Errorf("new chat = %v", c)
		}
	})
}

func TestReaction(t *testing.T) {
	e := newEnv(t, nil)
	r := e.sendJSON(http.MethodPost, "/api/v1/messages/m-alice-2/reaction", `{"reaction":"👍"}`)
	wantStatus(t, r, http.StatusOK)
	if r.body["object"] != "MessageReactionAdded" {
		t.Fatalf("body = %s", r.raw)
	}
	// Only the singular route exists, as in the provider's reference.
	wantProblem(t, e.sendJSON(http.MethodPost, "/api/v1/messages/m-alice-2/reactions", `{"reaction":"👍"}`), 404, "resource_not_found")
	wantStatus(t, e.sendJSON(http.MethodPost, "/api/v1/messages/m-alice-2/reaction", `{"reaction":"❤️"}`), http.StatusOK)
	m, _ := e.sim.Message("m-alice-2")
	if len(m.Reactions) != 1 || m.Reactions[0] != (Reaction{Value: "❤️", SenderID: pidSelfA, IsSender: true}) {
		t.Fatalf("reactions = %+v, want one, replaced", m.Reactions)
	}
	list := items(t, e.get("/api/v1/chats/chat-alice/messages"))
	react := list[1]["reactions"].([]any)[0].(map[string]any)
	if react["value"] != "❤️" || react["sender_id"] != pidSelfA || react["is_sender"] != float64(1) {
		t.Errorf("wire reaction = %v", react)
	}
	if d := e.sim.Deliveries(); len(d) != 2 || d[1].Reaction != "❤️" || d[1].MessageID != "m-alice-2" || d[1].ChatID != "chat-alice" {
		t.Errorf("deliveries = %+v", d)
	}

	errs := []struct {
		name, path, body, ctype string
		status                  int
		slug                    string
	}{
		{"unknown message", "/api/v1/messages/nope/reaction", `{"reaction":"👍"}`, "application/json", 404, "resource_not_found"},
		{"no reaction", "/api/v1/messages/m-alice-2/reaction", `{}`, "application/json", 400, "invalid_parameters"},
		{"not JSON", "/api/v1/messages/m-alice-2/reaction", `reaction=x`, "application/json", 400, "invalid_parameters"},
		{"too long", "/api/v1/messages/m-alice-2/reaction", `{"reaction":"` + strings.Repeat("x", 40) + `"}`, "application/json", 400, "invalid_parameters"},
		{"form body", "/api/v1/messages/m-alice-2/reaction", `reaction=x`, "application/x-www-form-urlencoded", 400, "invalid_parameters"},
		{"disconnected", "/api/v1/messages/m-eve-1/reaction", `{"reaction":"👍"}`, "application/json", 401, "disconnected_account"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, e.request(http.MethodPost, tt.path, strings.NewReader(tt.body), tt.ctype, nil), tt.status, tt.slug)
		})
	}
}

func TestEdit(t *testing.T) {
	tests := []struct {
		name        string
		message     string
		advance     time.Duration
		body        string
		wantStatus  int
		wantSlug    string
		wantEdited  bool
		wantApplied bool
	}{
		// m-alice-3 was sent 5 minutes before start.
		{"own, within 15 min", "m-alice-3", 9 * time.Minute, `{"text":"Great, talk Thursday"}`, 200, "", true, true},
		{"own, at 15 min", "m-alice-3", 10 * time.Minute, `{"text":"Great, talk Thursday"}`, 200, "", true, true},
		{"own, after 15 min: success without effect", "m-alice-3", 10*time.Minute + time.Millisecond, `{"text":"Great, talk Thursday"}`, 200, "", false, false},
		{"own, long ago", "m-alice-1", 0, `{"text":"changed"}`, 200, "", false, false},
		{"the contact's message", "m-alice-2", 0, `{"text":"changed"}`, 403, "account_mismatch", false, false},
		{"no text", "m-alice-3", 0, `{}`, 400, "invalid_parameters", false, false},
		{"text over the limit", "m-alice-3", 0, `{"text":"` + strings.Repeat("a", maxTextChars+1) + `"}`, 400, "too_many_characters", false, false},
		{"unknown", "nope", 0, `{"text":"x"}`, 404, "resource_not_found", false, false},
		{"disconnected", "m-eve-1", 0, `{"text":"x"}`, 401, "disconnected_account", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			before, _ := e.sim.Message(tt.message)
			e.clock.Advance(tt.advance)
			r := e.sendJSON(http.MethodPatch, "/api/v1/messages/"+tt.message, tt.body)
			if tt.wantSlug != "" {
				wantProblem(t, r, tt.wantStatus, tt.wantSlug)
			} else {
				wantStatus(t, r, tt.wantStatus)
				if r.body["object"] != "MessageEdited" {
					t.Errorf("body = %s", r.raw)
				}
			}
			after, _ := e.sim.Message(tt.message)
			if after.Edited != tt.wantEdited {
				t.Errorf("edited = %v, want %v", after.Edited, tt.wantEdited)
			}
			if !tt.wantEdited && after.Text != before.Text {
				t.Errorf("text changed to %q without an edit", after.Text)
			}
			if d := e.sim.Deliveries(); len(d) != 1 || d[0].Applied != tt.wantApplied || d[0].Operation != "messages_edit" {
				t.Errorf("deliveries = %+v", d)
			}
		})
	}

	t.Run("wire shows the edit", func(t *testing.T) {
		e := newEnv(t, nil)
		wantStatus(t, e.sendJSON(http.MethodPatch, "/api/v1/messages/m-alice-3", `{"text":"edited"}`), 200)
		m := items(t, e.get("/api/v1/chats/chat-alice/messages?limit=1"))[0]
		if m["text"] != "edited" || m["edited"] != float64(1) {
			t.Errorf("message = %v", m)
		}
	})
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name        string
		message     string
		advance     time.Duration
		wantStatus  int
		wantSlug    string
		wantDeleted bool
	}{
		// m-bob-1 was sent 70 hours before start, m-alice-1 two hours before.
		{"own, within 60 h", "m-alice-1", 0, 200, "", true},
		{"own, at 60 h", "m-alice-1", 58 * time.Hour, 200, "", true},
		{"own, after 60 h: success without effect", "m-alice-1", 58*time.Hour + time.Second, 200, "", false},
		{"own, long ago", "m-bob-1", 0, 200, "", false},
		{"the contact's message", "m-alice-2", 0, 403, "account_mismatch", false},
		{"unknown", "nope", 0, 404, "resource_not_found", false},
		{"disconnected", "m-eve-1", 0, 401, "disconnected_account", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.clock.Advance(tt.advance)
			r := e.request(http.MethodDelete, "/api/v1/messages/"+tt.message, nil, "", nil)
			if tt.wantSlug != "" {
				wantProblem(t, r, tt.wantStatus, tt.wantSlug)
			} else {
				wantStatus(t, r, tt.wantStatus)
				if r.body["object"] != "MessageDeleted" {
					t.Errorf("body = %s", r.raw)
				}
			}
			m, _ := e.sim.Message(tt.message)
			if m.Deleted != tt.wantDeleted || (tt.wantDeleted && m.Text != "") {
				t.Errorf("message = %+v, want deleted %v", m, tt.wantDeleted)
			}
			if d := e.sim.Deliveries(); len(d) != 1 || d[0].Applied != tt.wantDeleted {
				t.Errorf("deliveries = %+v", d)
			}
		})
	}

	t.Run("wire shows the deletion, a second delete changes nothing", func(t *testing.T) {
		e := newEnv(t, nil)
		for range 2 {
			wantStatus(t, e.request(http.MethodDelete, "/api/v1/messages/m-alice-3", nil, "", nil), 200)
		}
		m := items(t, e.get("/api/v1/chats/chat-alice/messages?limit=1"))[0]
		if m["deleted"] != float64(1) || m["text"] != nil {
			t.Errorf("message = %v", m)
		}
		if d := e.sim.Deliveries(); !d[0].Applied || d[1].Applied {
			t.Errorf("deliveries = %+v", d)
		}
		wantStatus(t, e.sendJSON(http.MethodPatch, "/api/v1/messages/m-alice-3", `{"text":"x"}`), 200)
		if m, _ := e.sim.Message("m-alice-3"); m.Edited {
			t.Error("a deleted message was edited")
		}
	})
}

// TestConcurrentSends runs sends, reactions and reads in parallel; -race checks the locking,
// the counts check that nothing was lost or doubled.
func TestConcurrentSends(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Seed = GenerateSeed(2, 4, 7) })
	const workers, perWorker = 8, 15
	// Bodies are built up front: t.Fatal must not run on the workers' goroutines.
	type send struct {
		chat, ct string
		body     []byte
	}
	var sends [workers][perWorker]send
	for w := range workers {
		for i := range perWorker {
			body, ct := multipartBody(t, [][2]string{{"text", fmt.Sprintf("w%d i%d", w, i)}}, nil)
			sends[w][i] = send{chat: fmt.Sprintf("chat-%04d-%05d", 1+w%2, 1+i%4), ct: ct, body: body.Bytes()}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				sd := sends[w][i]
				req, _ := http.NewRequest(http.MethodPost, e.srv.URL()+"/api/v1/chats/"+sd.chat+"/messages", bytes.NewReader(sd.body))
				req.Header.Set("Content-Type", sd.ct)
				req.Header.Set("X-API-KEY", testKey)
				resp, err := e.client.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
				resp, err = e.client.Get(e.srv.URL() + "/_sim/stats")
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ds := e.sim.Deliveries()
	if len(ds) != workers*perWorker {
		t.Fatalf("%d deliveries, want %d", len(ds), workers*perWorker)
	}
	seen := map[string]bool{}
	for i, d := range ds {
		if d.Seq != i+1 || d.Outcome != "ok" || seen[d.MessageID] {
			t.Fatalf("delivery %d = %+v", i, d)
		}
		seen[d.MessageID] = true
	}
	total := 0
	for _, c := range items(t, e.get("/api/v1/chats?limit=250")) {
		total += len(items(t, e.get("/api/v1/chats/"+c["id"].(string)+"/messages?limit=250")))
	}
	if st := e.sim.Stats(); st.Requests["chats_messages_send"]["ok"] != workers*perWorker {
		t.Errorf("stats = %+v", st)
	}
	if total < workers*perWorker+2*8 {
		t.Errorf("%d messages in all chats, want the seed's and %d sends", total, workers*perWorker)
	}
}
