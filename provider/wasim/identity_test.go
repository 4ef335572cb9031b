package wasim

import (
	"fmt"
	"net/http"
	"testing"
)

// One person under both id forms: the seed (or the control API) names the other form; the
// person's chat then shows one form as attendee_provider_id and the other as provider_id, and
// chats_create accepts either, posting into that same chat.
func TestOneContactUnderBothForms(t *testing.T) {
	const lid = "987654321012@lid"
	e := newEnv(t, nil)
	wantStatus(t, e.control(http.MethodPut, "/_sim/accounts/acc-a/contacts/"+pidAlice+"/other_id", `{"other_id":"`+lid+`"}`), 200)
	c := e.get("/api/v1/chats/chat-alice").body
	if c["attendee_provider_id"] != pidAlice || c["provider_id"] != lid {
		t.Fatalf("chat = %v", c)
	}
	for _, id := range []string{lid, pidAlice} {
		r := e.sendForm("/api/v1/chats", [][2]string{{"account_id", "acc-a"}, {"attendees_ids", id}, {"text", "hi " + id}}, nil)
		wantStatus(t, r, 201)
		if r.body["chat_id"] != "chat-alice" {
			t.Fatalf("%s: posted into %v, want chat-alice", id, r.body["chat_id"])
		}
	}
	for _, tt := range []struct{ name, path, body string }{
		{"same form", "/_sim/accounts/acc-a/contacts/" + pidBob + "/other_id", `{"other_id":"33699999999@s.whatsapp.net"}`},
		{"taken", "/_sim/accounts/acc-a/contacts/" + pidBob + "/other_id", `{"other_id":"` + lid + `"}`},
		{"not a contact", "/_sim/accounts/acc-a/contacts/33600000000@s.whatsapp.net/other_id", `{"other_id":"1234567@lid"}`},
	} {
		wantStatus(t, e.control(http.MethodPut, tt.path, tt.body), 400)
	}

	// In a seed.
	seed := testSeed()
	seed.Accounts[0].Contacts[1].OtherID = "5550001112223@lid"
	seed.Accounts[0].Contacts[0].OtherID = pidBob // the same form: refused
	if err := seed.Validate(); err == nil {
		t.Fatal("a seed with other_id of the same form was accepted")
	}
	seed.Accounts[0].Contacts[0].OtherID = ""
	if err := seed.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The account-level answers, on demand: every sending call of the account answers the type with
// its documented status, reads still answer, "" clears it.
func TestAccountErrorTypes(t *testing.T) {
	e := newEnv(t, nil)
	for _, slug := range AccountErrorTypes() {
		t.Run(slug, func(t *testing.T) {
			wantStatus(t, e.control(http.MethodPut, "/_sim/accounts/acc-a/error", fmt.Sprintf(`{"type":%q}`, slug)), 200)
			r := e.sendForm("/api/v1/chats/chat-alice/messages", [][2]string{{"text", "hi"}}, nil)
			wantProblem(t, r, accountErrorStatus[slug], slug)
			wantStatus(t, e.get("/api/v1/accounts/acc-a"), 200)
		})
	}
	wantStatus(t, e.control(http.MethodPut, "/_sim/accounts/acc-a/error", `{"type":"invalid_parameters"}`), 400)
	wantStatus(t, e.control(http.MethodPut, "/_sim/accounts/nope/error", `{"type":"no_channel"}`), 400)
	wantStatus(t, e.control(http.MethodPut, "/_sim/accounts/acc-a/error", `{"type":""}`), 200)
	wantStatus(t, e.sendForm("/api/v1/chats/chat-alice/messages", [][2]string{{"text", "hi"}}, nil), 201)
}

// Chat capabilities as the reference shows them: read_only 2, muted_until -1, disabledFeatures.
func TestChatCapabilities(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		chats := o.Seed.Accounts[0].Chats
		for i := range chats {
			switch chats[i].ID {
			case "chat-alice":
				chats[i].ReadOnly, chats[i].MutedForever = 2, true
			case "chat-bob":
				chats[i].DisabledFeatures = []string{"reactions"}
			}
		}
	})
	c := e.get("/api/v1/chats/chat-alice").body
	if c["read_only"] != float64(2) || c["muted_until"] != float64(-1) {
		t.Fatalf("chat = %v", c)
	}
	wantProblem(t, e.sendForm("/api/v1/chats/chat-alice/messages", [][2]string{{"text", "hi"}}, nil), 422, "cant_send_message")
	b := e.get("/api/v1/chats/chat-bob").body
	if fs, _ := b["disabledFeatures"].([]any); len(fs) != 1 || fs[0] != "reactions" || b["muted_until"] != nil {
		t.Fatalf("chat = %v", b)
	}
	wantProblem(t, e.sendJSON(http.MethodPost, "/api/v1/messages/m-bob-1/reaction", `{"reaction":"👍"}`), 400, "invalid_action")
	var ro ReadOnly
	for in, want := range map[string]ReadOnly{"true": 1, "false": 0, "2": 2, "1": 1} {
		if err := ro.UnmarshalJSON([]byte(in)); err != nil || ro != want {
			t.Errorf("%s: %d %v", in, ro, err)
		}
	}
	if err := ro.UnmarshalJSON([]byte("3")); err == nil {
		t.Error("read_only 3 accepted")
	}
}
