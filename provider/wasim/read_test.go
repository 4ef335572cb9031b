package wasim

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

func TestAccountsGet(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name       string
		id         string
		wantStatus string
		wantPhone  string
	}{
		{"healthy", "acc-a", "OK", "33700000001"},
		{"needs credentials", "acc-b", "CREDENTIALS", "+33700000002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get("/api/v1/accounts/" + tt.id)
			wantStatus(t, r, http.StatusOK)
			if r.body["object"] != "Account" || r.body["type"] != "WHATSAPP" || r.body["id"] != tt.id {
				t.Fatalf("unexpected account: %s", r.raw)
			}
			wantStamps(t, r.body, "created_at")
			im := r.body["connection_params"].(map[string]any)["im"].(map[string]any)
			if im["phone_number"] != tt.wantPhone {
				t.Errorf("phone_number = %v, want %s", im["phone_number"], tt.wantPhone)
			}
			if g, ok := r.body["groups"].([]any); !ok || len(g) != 0 {
				t.Errorf("groups = %v, want []", r.body["groups"])
			}
			src := r.body["sources"].([]any)[0].(map[string]any)
			if src["status"] != tt.wantStatus || src["id"] == "" {
				t.Errorf("sources[0] = %v, want status %s", src, tt.wantStatus)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		wantProblem(t, e.get("/api/v1/accounts/nope"), http.StatusNotFound, "resource_not_found")
	})
}

func TestAccountsSync(t *testing.T) {
	e := newEnv(t, nil)
	wantProblem(t, e.get("/api/v1/accounts/acc-a/sync?chunk_size=100"), http.StatusNotImplemented, "feature_not_implemented")
	wantProblem(t, e.get("/api/v1/accounts/nope/sync"), http.StatusNotFound, "resource_not_found")
}

func TestChatsGet(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name       string
		path       string
		wantStatus int
		wantSlug   string
		wantID     string
	}{
		{"by id", "/api/v1/chats/chat-alice", http.StatusOK, "", "chat-alice"},
		{"by id with its account", "/api/v1/chats/chat-alice?account_id=acc-a", http.StatusOK, "", "chat-alice"},
		{"by provider id with account", "/api/v1/chats/" + url.PathEscape(pidAlice) + "?account_id=acc-a", http.StatusOK, "", "chat-alice"},
		{"by provider id without account", "/api/v1/chats/" + url.PathEscape(pidAlice), http.StatusNotFound, "resource_not_found", ""},
		{"other account", "/api/v1/chats/chat-alice?account_id=acc-b", http.StatusForbidden, "account_mismatch", ""},
		{"unknown", "/api/v1/chats/nope", http.StatusNotFound, "resource_not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(tt.path)
			if tt.wantSlug != "" {
				wantProblem(t, r, tt.wantStatus, tt.wantSlug)
				return
			}
			wantStatus(t, r, tt.wantStatus)
			if r.body["id"] != tt.wantID {
				t.Fatalf("id = %v, want %s", r.body["id"], tt.wantID)
			}
		})
	}

	t.Run("shape", func(t *testing.T) {
		r := e.get("/api/v1/chats/chat-alice")
		c := r.body
		want := map[string]any{
			"object": "Chat", "account_id": "acc-a", "account_type": "WHATSAPP", "provider_id": pidAlice,
			"attendee_provider_id": pidAlice, "name": "Alice", "type": float64(0), "unread_count": float64(0),
			"muted_until": nil,
		}
		for k, v := range want {
			if got, ok := c[k]; !ok || got != v {
				t.Errorf("%s = %#v, want %#v", k, c[k], v)
			}
		}
		wantFlags(t, c, "archived", "read_only")
		wantStamps(t, c, "timestamp")
		if c["timestamp"] != "2026-11-24T09:55:00.000Z" {
			t.Errorf("timestamp = %v, want the last message's", c["timestamp"])
		}
		if df, ok := c["disabledFeatures"].([]any); !ok || len(df) != 0 {
			t.Errorf("disabledFeatures = %#v, want []", c["disabledFeatures"])
		}
		last, ok := c["lastMessage"].(map[string]any)
		if !ok || last["id"] != "m-alice-3" {
			t.Fatalf("lastMessage = %#v, want m-alice-3", c["lastMessage"])
		}
	})

	t.Run("group", func(t *testing.T) {
		r := e.get("/api/v1/chats/chat-group")
		if r.body["type"] != float64(1) || r.body["attendee_provider_id"] != nil || r.body["provider_id"] != "chat-group@g.us" {
			t.Errorf("group chat = %s", r.raw)
		}
	})
}

func TestMessageShape(t *testing.T) {
	e := newEnv(t, nil)
	r := e.get("/api/v1/chats/chat-alice/messages")
	wantStatus(t, r, http.StatusOK)
	if r.body["object"] != "MessageList" {
		t.Fatalf("object = %v", r.body["object"])
	}
	if c, ok := r.body["cursor"]; !ok || c != nil {
		t.Errorf("cursor = %#v, want null on the only page", r.body["cursor"])
	}
	msgs := items(t, r)
	if got, want := ids(msgs), []string{"m-alice-3", "m-alice-2", "m-alice-1"}; !slices.Equal(got, want) {
		t.Fatalf("ids = %v, want newest first %v", got, want)
	}
	tests := []struct {
		idx          int
		wantSender   string
		wantIsSender float64
		wantText     string
	}{
		{0, pidSelfA, 1, "Great, talk soon"},
		{1, pidAlice, 0, "Hi there"},
	}
	for _, tt := range tests {
		m := msgs[tt.idx]
		if m["object"] != "Message" || m["chat_id"] != "chat-alice" || m["account_id"] != "acc-a" {
			t.Errorf("message %d: %v", tt.idx, m)
		}
		if m["sender_id"] != tt.wantSender || m["is_sender"] != tt.wantIsSender || m["text"] != tt.wantText {
			t.Errorf("message %d: sender %v is_sender %v text %v", tt.idx, m["sender_id"], m["is_sender"], m["text"])
		}
		if s, _ := m["provider_id"].(string); s == "" {
			t.Errorf("message %d: empty provider_id", tt.idx)
		}
		if s, _ := m["sender_attendee_id"].(string); s == "" {
			t.Errorf("message %d: empty sender_attendee_id", tt.idx)
		}
		wantFlags(t, m, "is_sender", "seen", "hidden", "deleted", "edited", "is_event", "delivered")
		wantStamps(t, m, "timestamp")
		for _, k := range []string{"attachments", "reactions"} {
			if _, ok := m[k].([]any); !ok {
				t.Errorf("message %d: %s = %#v, want an array", tt.idx, k, m[k])
			}
		}
	}
	if msgs[0]["timestamp"] != "2026-11-24T09:55:00.000Z" {
		t.Errorf("timestamp = %v", msgs[0]["timestamp"])
	}
}

func TestAttendeesList(t *testing.T) {
	e := newEnv(t, nil)
	r := e.get("/api/v1/chats/chat-alice/attendees")
	wantStatus(t, r, http.StatusOK)
	if r.body["object"] != "ChatAttendeeList" {
		t.Fatalf("object = %v", r.body["object"])
	}
	if _, ok := r.body["cursor"]; ok {
		t.Errorf("the attendee list carries no cursor, got %v", r.body["cursor"])
	}
	list := items(t, r)
	if len(list) != 2 {
		t.Fatalf("got %d attendees, want self and Alice", len(list))
	}
	for i, want := range []struct {
		providerID string
		isSelf     float64
	}{{pidSelfA, 1}, {pidAlice, 0}} {
		at := list[i]
		if at["object"] != "ChatAttendee" || at["account_id"] != "acc-a" || at["provider_id"] != want.providerID || at["is_self"] != want.isSelf {
			t.Errorf("attendee %d = %v", i, at)
		}
		wantFlags(t, at, "is_self")
	}
	wantProblem(t, e.get("/api/v1/chats/nope/attendees"), http.StatusNotFound, "resource_not_found")
}

func TestChatsListFilters(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"all, newest activity first", "", []string{"chat-eve", "chat-alice", "chat-bob", "chat-group"}},
		{"one account", "account_id=acc-a", []string{"chat-alice", "chat-bob", "chat-group"}},
		{"unknown account", "account_id=nope", []string{}},
		{"unread", "unread=true", []string{"chat-bob"}},
		{"read", "unread=false&account_id=acc-a", []string{"chat-alice", "chat-group"}},
		{"whatsapp", "account_type=WHATSAPP&account_id=acc-b", []string{"chat-eve"}},
		{"other network", "account_type=LINKEDIN", []string{}},
		{"before", "before=2026-11-24T09:00:00.000Z", []string{"chat-bob", "chat-group"}},
		{"after", "after=2026-11-24T09:00:00.000Z", []string{"chat-eve", "chat-alice"}},
		{"between, bounds strict", "after=2026-11-24T00:00:00.000Z&before=2026-11-24T09:00:00.000Z&limit=250", []string{"chat-bob"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get("/api/v1/chats?" + tt.query)
			wantStatus(t, r, http.StatusOK)
			if r.body["object"] != "ChatList" {
				t.Fatalf("object = %v", r.body["object"])
			}
			if got := ids(items(t, r)); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestListQueryValidation(t *testing.T) {
	e := newEnv(t, nil)
	bad := []string{
		"limit=0", "limit=251", "limit=abc", "limit=", "limit=10&limit=20", "limit=1.5",
		"cursor=garbage", "cursor=" + base64.RawURLEncoding.EncodeToString([]byte("v2.1.2")),
		"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("v1.-5.1")), "cursor=" + base64.RawURLEncoding.EncodeToString([]byte("v1.5")),
		"before=2026-11-24", "before=2026-11-24T10:00:00Z", "before=2026-11-24T10:00:00.0000Z",
		"after=2026-11-24T10:00:00.000%2B01:00", "after=1732442400000",
		"unread=maybe", "account_type=FAX",
	}
	for _, q := range bad {
		for _, path := range []string{"/api/v1/chats", "/api/v1/chats/chat-alice/messages"} {
			if path != "/api/v1/chats" && (q == "unread=maybe" || q == "account_type=FAX") {
				continue // chats_list filters only
			}
			t.Run(path+"?"+q, func(t *testing.T) {
				wantProblem(t, e.get(path+"?"+q), http.StatusBadRequest, "invalid_parameters")
			})
		}
	}
	for _, q := range []string{"limit=1", "limit=250", "before=2026-11-24T10:00:00.000Z"} {
		t.Run("ok "+q, func(t *testing.T) {
			wantStatus(t, e.get("/api/v1/chats?"+q), http.StatusOK)
		})
	}
}

// walk pages through a list with the given limit and returns every id and the page count.
func walk(t *testing.T, e *env, path string, limit string) ([]string, int) {
	t.Helper()
	var all []string
	pages := 0
	cursor := ""
	for {
		q := url.Values{"limit": {limit}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r := e.get(path + "?" + q.Encode())
		wantStatus(t, r, http.StatusOK)
		pages++
		all = append(all, ids(items(t, r))...)
		next, ok := r.body["cursor"].(string)
		if !ok {
			if r.body["cursor"] != nil {
				t.Fatalf("cursor = %#v", r.body["cursor"])
			}
			return all, pages
		}
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Seed = GenerateSeed(2, 7, 42) })
	// Seven more messages in one chat, two of them in the same millisecond, to test ties.
	for i := 0; i < 7; i++ {
		if i != 3 {
			e.clock.Advance(time.Second)
		}
		if _, err := e.sim.AddIncomingMessage("chat-0001-00001", "ping", time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		path      string
		limit     string
		wantCount int
		wantPages int
	}{
		{"chats by 3", "/api/v1/chats", "3", 14, 5},
		{"chats by 7", "/api/v1/chats", "7", 14, 2},
		{"chats in one page", "/api/v1/chats", "250", 14, 1},
		{"messages by 3", "/api/v1/chats/chat-0001-00001/messages", "3", 0, 0},
		{"messages by 1", "/api/v1/chats/chat-0001-00001/messages", "1", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := walk(t, e, tt.path, tt.limit)
			// The reference is one page with the maximum limit.
			want, _ := walk(t, e, tt.path, "250")
			if !slices.Equal(got, want) {
				t.Fatalf("paged ids = %v, want %v", got, want)
			}
			if tt.wantCount != 0 && (len(got) != tt.wantCount || pages != tt.wantPages) {
				t.Errorf("got %d items in %d pages, want %d in %d", len(got), pages, tt.wantCount, tt.wantPages)
			}
			seen := map[string]bool{}
			for _, id := range got {
				if seen[id] {
					t.Fatalf("id %s repeated", id)
				}
				seen[id] = true
			}
		})
	}

	t.Run("messages newest first", func(t *testing.T) {
		r := e.get("/api/v1/chats/chat-0001-00001/messages")
		list := items(t, r)
		if len(list) < 9 {
			t.Fatalf("got %d messages, want at least 9", len(list))
		}
		for i := 1; i < len(list); i++ {
			if list[i-1]["timestamp"].(string) < list[i]["timestamp"].(string) {
				t.Fatalf("message %d is newer than message %d", i, i-1)
			}
		}
	})

	t.Run("a message arriving between pages is not repeated", func(t *testing.T) {
		r := e.get("/api/v1/chats/chat-0001-00001/messages?limit=2")
		first := ids(items(t, r))
		e.clock.Advance(time.Second)
		if _, err := e.sim.AddIncomingMessage("chat-0001-00001", "late", time.Time{}); err != nil {
			t.Fatal(err)
		}
		r2 := e.get("/api/v1/chats/chat-0001-00001/messages?limit=2&cursor=" + url.QueryEscape(r.body["cursor"].(string)))
		for _, id := range ids(items(t, r2)) {
			if slices.Contains(first, id) {
				t.Fatalf("id %s repeated across pages", id)
			}
		}
	})
}

func TestMessagesListFilters(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"sender provider id", "sender_id=" + url.QueryEscape(pidBob), []string{"m-bob-3", "m-bob-2"}},
		{"sender attendee id", "sender_id=att-self-acc-a", []string{"m-bob-1"}},
		{"before", "before=2026-11-24T07:30:00.000Z", []string{"m-bob-2", "m-bob-1"}},
		{"before is strict", "before=2026-11-24T07:00:00.000Z", []string{"m-bob-1"}},
		{"after is strict", "after=2026-11-24T07:00:00.000Z", []string{"m-bob-3"}},
		{"limit", "limit=1", []string{"m-bob-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get("/api/v1/chats/chat-bob/messages?" + tt.query)
			wantStatus(t, r, http.StatusOK)
			if got := ids(items(t, r)); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}
	wantProblem(t, e.get("/api/v1/chats/nope/messages"), http.StatusNotFound, "resource_not_found")
}

func TestUnknownRoutes(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct{ method, path string }{
		{http.MethodGet, "/api/v1/nothing"},
		{http.MethodGet, "/api/v1"},
		{http.MethodPut, "/api/v1/chats"},
		{http.MethodGet, "/api/v1/chats/"},
		{http.MethodPost, "/api/v1/messages/m-alice-1/like"},
		{http.MethodGet, "/api/v2/chats"},
		{http.MethodGet, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			wantProblem(t, e.request(tt.method, tt.path, nil, "", nil), http.StatusNotFound, "resource_not_found")
		})
	}
}
