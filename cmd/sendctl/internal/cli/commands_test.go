package cli

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sendworker/sendworker/tasks"
)

// TestCommandRequests checks, for every command, the request it sends
// (method, path, query, body, token) and its table and JSON output.
func TestCommandRequests(t *testing.T) {
	rec := sampleRecord("s-1", tasks.StatePendingApproval)
	recJSON := mustJSON(t, rec)
	approved := rec
	approved.State = tasks.StateApproved
	approved.Approval = &tasks.Decision{By: "alice", At: t0, Digest: rec.Digest}
	rejected := rec
	rejected.State, rejected.Reason = tasks.StateRejected, tasks.ReasonRejected
	canceled := rec
	canceled.State, canceled.Reason = tasks.StateCanceled, tasks.ReasonCanceled
	pause := `{"global":true,"accounts":["acc-2"]}`
	account := `{"object":"Account","type":"WHATSAPP","id":"acc-1","name":"Sales FR","created_at":"2025-01-02T03:04:05.000Z",
		"connection_params":{"im":{"phone_number":"+33600000001"}},"sources":[{"id":"acc-1_MESSAGING","status":"OK"}]}`
	chats := `{"object":"ChatList","items":[{"id":"chat-1","account_id":"acc-1","name":"Marie Curie","type":0,
		"attendee_provider_id":"33611111111@s.whatsapp.net","timestamp":"2025-06-01T08:00:00.000Z","unread_count":2}],"cursor":"next-c"}`
	// Newest first, as the provider lists them.
	messages := `{"object":"MessageList","items":[
		{"id":"m-3","chat_id":"c/1","text":"See you tomorrow","timestamp":"2025-06-01T10:00:00.000Z","is_sender":1},
		{"id":"m-2","chat_id":"c/1","text":"Can we meet?","timestamp":"2025-06-01T09:30:00.000Z","is_sender":0},
		{"id":"m-1","chat_id":"c/1","text":"Hi!","timestamp":"2025-06-01T09:00:00.000Z","is_sender":1,
		 "attachments":[{"id":"a1","type":"img","file_name":"menu.jpg"}]}],"cursor":null}`
	attendees := `{"object":"ChatAttendeeList","items":[{"id":"att-1","provider_id":"33611111111@s.whatsapp.net","name":"Marie","is_self":0},
		{"id":"att-2","provider_id":"33600000001@s.whatsapp.net","name":"Us","is_self":1}]}`
	stats := `{"counts":{"pending_approval":3,"sent":10,"failed":1},"outbox":2,"paused":{"global":false,"accounts":["acc-2"]}}`

	dir := t.TempDir()
	sendFile := filepath.Join(dir, "send.json")
	writeFile(t, sendFile, mustJSON(t, sampleRequest("s-1")))
	approveFile := filepath.Join(dir, "approve.json")
	writeFile(t, approveFile, `[{"send_id":"s-1","digest":"`+rec.Digest+`"},{"send_id":"s-2","digest":"`+strings.Repeat("b", 64)+`"}]`)
	idsFile := filepath.Join(dir, "ids.json")
	writeFile(t, idsFile, `{"sends":[{"send_id":"s-1"},{"send_id":"s-2"}]}`)

	flagReq := tasks.SendRequest{SendID: "s-9", Operation: tasks.OpCreateChat, AccountID: "acc-1",
		AttendeeIDs: []string{"33611111111@s.whatsapp.net"}, Text: "Bonjour", Metadata: []byte(`{"step":1}`)}
	deadline := t0.Add(48 * 3600e9)
	flagReq.ApprovalDeadline = &deadline

	tests := []struct {
		name     string
		args     []string
		stdin    string
		reply    reply
		method   string
		path     string
		query    url.Values // nil: no query
		body     string     // "" = no body; else compared as JSON
		code     int
		contains []string // in the table output
	}{
		{name: "enqueue flags", args: []string{"enqueue", "-send-id", "s-9", "-op", "create", "-account", "acc-1",
			"-attendee", "33611111111@s.whatsapp.net", "-text", "Bonjour", "-metadata", `{"step":1}`, "-deadline", deadline.Format("2006-01-02T15:04:05Z07:00")},
			reply: reply{201, recJSON}, method: "POST", path: "/v1/sends", body: mustJSON(t, flagReq),
			contains: []string{"s-1: enqueued (state pending_approval)", "digest: " + rec.Digest, "sendctl show s-1"}},
		{name: "enqueue file same digest", args: []string{"enqueue", "-f", sendFile},
			reply: reply{200, recJSON}, method: "POST", path: "/v1/sends", body: mustJSON(t, sampleRequest("s-1")),
			contains: []string{"already enqueued with the same content"}},
		{name: "enqueue stdin batch", args: []string{"enqueue", "-f", "-"},
			stdin:  `{"sends":[` + mustJSON(t, sampleRequest("s-1")) + `]}`,
			reply:  reply{200, `{"results":[{"send_id":"s-1","status":201,"record":` + recJSON + `}]}`},
			method: "POST", path: "/v1/sends:batch", body: `{"sends":[` + mustJSON(t, sampleRequest("s-1")) + `]}`,
			contains: []string{"SEND_ID", "s-1", "enqueued", "pending_approval"}},
		{name: "list", args: []string{"list", "-state", "pending_approval", "-account", "acc-1", "-limit", "5", "-cursor", "c9", "-oldest"},
			reply: reply{200, `{"sends":[` + recJSON + `],"next_cursor":""}`}, method: "GET", path: "/v1/sends",
			query:    url.Values{"state": {"pending_approval"}, "account_id": {"acc-1"}, "limit": {"5"}, "cursor": {"c9"}, "order": {"oldest"}},
			contains: []string{"SEND_ID", "STATE", "s-1", "pending_approval", "chat chat-1", "Hello Marie,↵thanks for your visit. Mor…"}},
		{name: "show", args: []string{"show", "s-1"}, reply: reply{200, recJSON}, method: "GET", path: "/v1/sends/s-1",
			contains: []string{"DIGEST     " + rec.Digest, "approve with: sendctl approve s-1 -digest " + rec.Digest,
				"chats_messages_send", "acc-1", "chat-1", "  | Hello Marie,", "END-OF-TEXT", "History:", `{"sequence":"seq-9","step":2}`}},
		{name: "approve", args: []string{"approve", "s-1", "-digest", strings.ToUpper(rec.Digest)},
			reply: reply{200, mustJSON(t, approved)}, method: "POST", path: "/v1/sends/s-1/approve", body: `{"digest":"` + rec.Digest + `"}`,
			contains: []string{"s-1: approved digest " + rec.Digest[:12] + "… (state approved)"}},
		{name: "approve bulk file", args: []string{"approve", "-f", approveFile},
			reply:  reply{200, `{"results":[{"send_id":"s-1","status":200,"record":` + mustJSON(t, approved) + `},{"send_id":"s-2","status":200}]}`},
			method: "POST", path: "/v1/sends:approve",
			body:     `{"items":[{"send_id":"s-1","digest":"` + rec.Digest + `"},{"send_id":"s-2","digest":"` + strings.Repeat("b", 64) + `"}]}`,
			contains: []string{"s-1", "approved", "s-2"}},
		{name: "reject", args: []string{"reject", "s-1", "-reason", "wrong tone"}, reply: reply{200, mustJSON(t, rejected)},
			method: "POST", path: "/v1/sends/s-1/reject", body: `{"reason":"wrong tone"}`, contains: []string{"s-1: rejected (state rejected)"}},
		{name: "reject several", args: []string{"reject", "-reason", "dup", "s-1", "s-2"},
			reply:  reply{200, `{"results":[{"send_id":"s-1","status":200},{"send_id":"s-2","status":200}]}`},
			method: "POST", path: "/v1/sends:reject", body: `{"send_ids":["s-1","s-2"],"reason":"dup"}`, contains: []string{"rejected"}},
		{name: "reject file", args: []string{"reject", "-f", idsFile, "-reason", "dup"},
			reply:  reply{200, `{"results":[{"send_id":"s-1","status":200},{"send_id":"s-2","status":200}]}`},
			method: "POST", path: "/v1/sends:reject", body: `{"send_ids":["s-1","s-2"],"reason":"dup"}`},
		{name: "cancel with reason", args: []string{"cancel", "s-1", "-reason", "contact called"}, reply: reply{200, mustJSON(t, canceled)},
			method: "POST", path: "/v1/sends/s-1/cancel", body: `{"reason":"contact called"}`, contains: []string{"s-1: canceled (state canceled)"}},
		{name: "cancel", args: []string{"cancel", "s-1"}, reply: reply{200, mustJSON(t, canceled)},
			method: "POST", path: "/v1/sends/s-1/cancel", body: `{}`},
		{name: "pause", args: []string{"pause"}, reply: reply{200, pause}, method: "POST", path: "/v1/pause",
			contains: []string{"global pause: ON; paused accounts: acc-2"}},
		{name: "pause account", args: []string{"pause", "-account", "acc/2"}, reply: reply{200, pause}, method: "POST", path: "/v1/accounts/acc%2F2/pause"},
		{name: "pause status", args: []string{"pause", "status"}, reply: reply{200, pause}, method: "GET", path: "/v1/pause",
			contains: []string{"global pause: ON"}},
		{name: "resume", args: []string{"resume"}, reply: reply{200, `{"global":false,"accounts":[]}`}, method: "POST", path: "/v1/resume",
			contains: []string{"global pause: off; paused accounts: none"}},
		{name: "resume account", args: []string{"resume", "-account", "acc-2"}, reply: reply{200, `{"global":false,"accounts":[]}`},
			method: "POST", path: "/v1/accounts/acc-2/resume"},
		{name: "optout add", args: []string{"optout", "add", "contact-7"}, reply: reply{200, `{"optouts":["contact-7"]}`},
			method: "POST", path: "/v1/optouts", body: `{"contact_id":"contact-7"}`, contains: []string{"contact-7: opted out"}},
		{name: "optout remove", args: []string{"optout", "remove", "contact-7"}, reply: reply{200, `{"optouts":[]}`},
			method: "DELETE", path: "/v1/optouts/contact-7", contains: []string{"removed"}},
		{name: "optout list", args: []string{"optout", "list"}, reply: reply{200, `{"optouts":["c-1","c-2"]}`},
			method: "GET", path: "/v1/optouts", contains: []string{"CONTACT_ID", "c-1", "c-2"}},
		{name: "events tail", args: []string{"events", "tail", "-limit", "5"}, reply: reply{200, `{"events":[{"id":"1-0","type":"message_received","outcome":"replied","account_id":"acc-1","chat_id":"ch-1","message_id":"m-1","send_ids":["s-1","s-2"],"detail":"2 sends skipped","at":"2026-12-03T09:00:00Z"}],"next_cursor":"1-0"}`},
			method: "GET", path: "/v1/provider/events", query: url.Values{"limit": {"5"}}, contains: []string{"OUTCOME", "replied", "s-1,s-2", "2 sends skipped"}},
		{name: "optout list with details", args: []string{"optout", "list"}, reply: reply{200, `{"optouts":["c-1"],"entries":[{"contact_id":"c-1","reason":"keyword","keyword":"STOP","source":"provider message m1 in chat ch","by":"provider","at":"2026-12-03T09:00:00Z"}]}`},
			method: "GET", path: "/v1/optouts", contains: []string{"REASON", "keyword", "STOP", "provider message m1"}},
		{name: "optout add with a reason", args: []string{"optout", "add", "-reason", "asked by phone", "c-9"}, reply: reply{200, `{"optouts":["c-9"],"ended":["s-1"]}`},
			method: "POST", path: "/v1/optouts", body: `{"contact_id":"c-9","reason":"asked by phone"}`, contains: []string{"1 pending send(s) ended opted_out: s-1"}},
		{name: "optout remove with a reason", args: []string{"optout", "remove", "-reason", "resubscribed", "c-9"}, reply: reply{200, `{"optouts":[]}`},
			method: "DELETE", path: "/v1/optouts/c-9", query: url.Values{"reason": {"resubscribed"}}, contains: []string{"removed"}},
		{name: "forecast", args: []string{"forecast", "acc-1", "-limit", "3"}, reply: reply{200, sampleForecast}, method: "GET",
			path: "/v1/accounts/acc-1/forecast", query: url.Values{"limit": {"3"}},
			contains: []string{"Next reply slot", "in 3m12s", "SEND_ID", "w-1", "rate_limit"}},
		{name: "stats", args: []string{"stats"}, reply: reply{200, stats}, method: "GET", path: "/v1/stats",
			contains: []string{"pending_approval  3", "sent              10", "total             14", "outbox: 2", "paused accounts: acc-2"}},
		{name: "account", args: []string{"account", "acc-1"}, reply: reply{200, account}, method: "GET", path: "/v1/provider/accounts/acc-1",
			contains: []string{"Sales FR", "+33600000001", "Status", "OK", "Can send", "yes"}},
		{name: "chats", args: []string{"chats", "-account", "acc-1", "-limit", "10"}, reply: reply{200, chats}, method: "GET",
			path: "/v1/provider/chats", query: url.Values{"account_id": {"acc-1"}, "limit": {"10"}},
			contains: []string{"CHAT_ID", "chat-1", "Marie Curie", "single", "33611111111@s.whatsapp.net"}},
		{name: "messages", args: []string{"messages", "c/1", "-limit", "3"}, reply: reply{200, messages}, method: "GET",
			path: "/v1/provider/chats/c%2F1/messages", query: url.Values{"limit": {"3"}},
			contains: []string{"2025-06-01T09:00:00Z  us       m-1         Hi! [attachment: menu.jpg]",
				"2025-06-01T09:30:00Z  contact  m-2         Can we meet?"}},
		{name: "attendees", args: []string{"attendees", "chat-1"}, reply: reply{200, attendees}, method: "GET",
			path: "/v1/provider/chats/chat-1/attendees", contains: []string{"ATTENDEE_ID", "att-1", "Marie", "no", "att-2", "yes"}},
	}
	for _, tc := range tests {
		for _, output := range []string{"table", "json"} {
			t.Run(tc.name+"/"+output, func(t *testing.T) {
				api := newFakeAPI(t, func(call) reply { return tc.reply })
				args := append([]string{}, tc.args...)
				if output == "json" {
					args = append([]string{"-o", "json"}, args...)
				}
				res := run(t, api.srv.URL, tc.stdin, args...)
				if res.code != tc.code {
					t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", res.code, tc.code, res.stdout, res.stderr)
				}
				calls := api.Calls()
				if len(calls) != 1 {
					t.Fatalf("%d calls, want 1: %+v", len(calls), calls)
				}
				c := calls[0]
				if c.Method != tc.method || c.Path != tc.path {
					t.Errorf("request %s %s, want %s %s", c.Method, c.Path, tc.method, tc.path)
				}
				gotQuery, _ := url.ParseQuery(c.Query)
				if tc.query == nil {
					tc.query = url.Values{}
				}
				if gotQuery.Encode() != tc.query.Encode() {
					t.Errorf("query %q, want %q", c.Query, tc.query.Encode())
				}
				if tc.body == "" {
					if c.Body != "" {
						t.Errorf("unexpected body %s", c.Body)
					}
				} else {
					if !jsonEqual(t, c.Body, tc.body) {
						t.Errorf("body\n%s\nwant\n%s", c.Body, tc.body)
					}
					if c.CType != "application/json" {
						t.Errorf("Content-Type %q", c.CType)
					}
				}
				if c.Auth != "Bearer "+testToken {
					t.Errorf("Authorization %q", c.Auth)
				}
				if output == "json" {
					if !strings.HasPrefix(res.stdout, "{\n  ") {
						t.Errorf("json output is not indented JSON:\n%s", res.stdout)
					}
					if !strings.Contains(tc.path, ":") && !jsonEqual(t, res.stdout, tc.reply.Body) {
						t.Errorf("json output\n%s\nwant the API's answer\n%s", res.stdout, tc.reply.Body)
					}
					return
				}
				for _, want := range tc.contains {
					if !strings.Contains(res.stdout, want) {
						t.Errorf("output lacks %q:\n%s", want, res.stdout)
					}
				}
			})
		}
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTimeZone: times print in UTC by default, in -tz (or SENDCTL_TZ) when given, "local" being
// the machine's zone; an unknown zone is a usage error.
func TestTimeZone(t *testing.T) {
	rec := sampleRecord("s-1", tasks.StateExpired)
	rec.Reason, rec.Detail = tasks.ReasonMaxDelay, "approved at 2025-05-29T09:00:00Z, not sent within 72h0m0s (SENDWORKER_MAX_DELAY_AFTER_APPROVAL)"
	api := newFakeAPI(t, always(200, mustJSON(t, rec)))
	res := run(t, api.srv.URL, "", "show", "s-1")
	if !strings.Contains(res.stdout, "2025-06-01T09:00:00Z") {
		t.Fatalf("default output not in UTC:\n%s", res.stdout)
	}
	// The expiry after approval shows with its own reason and why.
	if !strings.Contains(res.stdout, "max_delay_exceeded") || !strings.Contains(res.stdout, "not sent within 72h0m0s") {
		t.Errorf("show does not say why the send expired:\n%s", res.stdout)
	}
	res = run(t, api.srv.URL, "", "show", "s-1", "-tz", "Europe/Paris")
	if !strings.Contains(res.stdout, "2025-06-01T11:00:00+02:00") || strings.Contains(res.stdout, "2025-06-01T09:00:00Z") {
		t.Fatalf("-tz Europe/Paris:\n%s", res.stdout)
	}
	env := map[string]string{"SENDCTL_URL": api.srv.URL, "SENDCTL_TOKEN": testToken, "SENDCTL_TZ": "America/New_York"}
	if res := runEnv(t, env, "", "show", "s-1"); !strings.Contains(res.stdout, "2025-06-01T05:00:00-04:00") {
		t.Fatalf("SENDCTL_TZ:\n%s", res.stdout)
	}
	if res := run(t, api.srv.URL, "", "-tz", "Mars/Olympus", "show", "s-1"); res.code != exitUsage || !strings.Contains(res.stderr, `-tz "Mars/Olympus"`) {
		t.Fatalf("bad zone: exit %d %s", res.code, res.stderr)
	}
}
