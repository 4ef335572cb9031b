package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/tasks"
)

func TestKeysMatchLua(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := e.l.Keys()
	const id, acct, st, mid, seen = "s:1", "acct:9", tasks.StateWaiting, "m-1", "ev-1"
	want := []string{k.Send(id), k.History(id), k.Seq(), k.legacyAll(), k.State(st), k.Account(acct, st), k.legacyAccountAll(acct),
		k.Deadlines(), k.Outbox(), k.Watch(), k.Leases(), k.Finished(), k.HeldGlobal(), k.HeldAccount(acct), k.PausedGlobal(),
		k.PausedAccounts(), k.OptOut(), k.Audit(), k.Msg(mid), k.HeldAccounts(), k.InboundSeen(seen)}
	v, err := e.l.run(e.ctx, keysScript, e.l.nowMs(), []string{k.Seq()}, id, acct, string(st), mid, seen)
	if err != nil {
		t.Fatal(err)
	}
	got, err := stringList(v)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("lua keys\n got %q\nwant %q", got, want)
	}
	for _, key := range want {
		if hashTag(key) != e.l.opts.Prefix {
			t.Errorf("key %q is not in the ledger's slot", key)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cluster.Close()
	single := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer single.Close()
	tests := []struct {
		name    string
		rdb     redis.UniversalClient
		opts    Options
		wantErr bool
	}{
		{"single default", single, Options{}, false},
		{"cluster default stream", cluster, Options{}, true},
		{"cluster tagged stream", cluster, Options{ResultsStream: "{sendworker}:results"}, false},
		{"cluster other tag", cluster, Options{Prefix: "p", ResultsStream: "{sendworker}:results"}, true},
		{"braces in prefix", single, Options{Prefix: "{x}"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(tt.rdb, tt.opts).Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req := request("s1", "acct-1")
	deadline := e.clock.Now().Add(2 * time.Hour)
	rec, created, err := e.l.Create(e.ctx, req, req.Digest(), deadline)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	wantState(t, rec, tasks.StatePendingApproval, "")
	if rec.SendID != "s1" || rec.Digest != req.Digest() || rec.Request.Text != req.Text || rec.Request.RequestedBy != "scheduler" ||
		!rec.ApprovalDeadline.Equal(deadline) || !rec.CreatedAt.Equal(e.clock.Now()) || rec.Attempts != 0 {
		t.Fatalf("record: %+v", rec)
	}
	if len(rec.History) != 1 || rec.History[0].Detail != "enqueued" || rec.History[0].By != "scheduler" ||
		rec.History[0].State != tasks.StatePendingApproval || !rec.History[0].At.Equal(e.clock.Now()) {
		t.Fatalf("history: %+v", rec.History)
	}
	// The creation event comes from the record: a pending send has no history list.
	if n, err := e.rdb.Exists(e.ctx, e.l.Keys().History("s1")).Result(); err != nil || n != 0 {
		t.Fatalf("history list of a pending send: exists=%d err=%v", n, err)
	}

	// Same id, same digest: the same record, not created.
	again, created, err := e.l.Create(e.ctx, req, req.Digest(), deadline.Add(time.Hour))
	if err != nil || created || again.SendID != "s1" || !again.ApprovalDeadline.Equal(deadline) {
		t.Fatalf("idempotent create: %v %v %+v", created, err, again)
	}

	// Same id, other content: conflict naming the existing digest.
	other := request("s1", "acct-1")
	other.Text = "something else"
	_, _, err = e.l.Create(e.ctx, other, other.Digest(), deadline)
	var ce *ConflictError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.ExistingDigest != req.Digest() {
		t.Fatalf("conflict: %v", err)
	}
	if got := e.auditEvents(); !slices.Equal(got, []string{"enqueued"}) {
		t.Fatalf("audit %v", got)
	}
	if _, err := e.l.Get(e.ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
}

func TestCreateConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req := request("dup", "acct-1")
	var wg sync.WaitGroup
	var mu sync.Mutex
	createdN := 0
	for range 50 {
		wg.Go(func() {
			rec, created, err := e.l.Create(e.ctx, req, req.Digest(), e.clock.Now().Add(time.Hour))
			if err != nil || rec.SendID != "dup" {
				t.Errorf("create: %v", err)
				return
			}
			if created {
				mu.Lock()
				createdN++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if createdN != 1 {
		t.Fatalf("%d creates reported created, want 1", createdN)
	}
	if got := e.auditEvents(); !slices.Equal(got, []string{"enqueued"}) {
		t.Fatalf("audit %v", got)
	}
	if n := e.rdb.ZCard(e.ctx, e.l.Keys().State(tasks.StatePendingApproval)).Val(); n != 1 {
		t.Fatalf("index holds %d, want 1", n)
	}
	if h := e.get("dup").History; len(h) != 1 {
		t.Fatalf("history %+v", h)
	}
}

func ids(recs []*tasks.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.SendID
	}
	return out
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 5 {
		e.create(fmt.Sprintf("a%d", i), "acct-a")
		e.create(fmt.Sprintf("b%d", i), "acct-b")
	}
	e.approved("a9", "acct-a")
	if _, err := e.l.Reject(e.ctx, "b0", "approver", "no"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"all newest first", Query{}, []string{"a9", "b4", "a4", "b3", "a3", "b2", "a2", "b1", "a1", "b0", "a0"}},
		{"all oldest first, limit", Query{Oldest: true, Limit: 3}, []string{"a0", "b0", "a1"}},
		{"pending", Query{State: tasks.StatePendingApproval, Limit: 4}, []string{"b4", "a4", "b3", "a3"}},
		{"approved", Query{State: tasks.StateApproved}, []string{"a9"}},
		{"rejected", Query{State: tasks.StateRejected}, []string{"b0"}},
		{"account and state", Query{AccountID: "acct-b", State: tasks.StatePendingApproval, Oldest: true}, []string{"b1", "b2", "b3", "b4"}},
		{"account", Query{AccountID: "acct-a"}, []string{"a9", "a4", "a3", "a2", "a1", "a0"}},
		{"nothing", Query{AccountID: "acct-z"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := e.l.List(e.ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(page.Records); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for _, r := range page.Records {
				if r.History != nil {
					t.Fatalf("list returned history")
				}
			}
		})
	}

	counts, err := e.l.Counts(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[tasks.StatePendingApproval] != 9 || counts[tasks.StateApproved] != 1 || counts[tasks.StateRejected] != 1 || counts[tasks.StateSent] != 0 {
		t.Fatalf("counts %v", counts)
	}

	for _, q := range []Query{
		{Cursor: "garbage"}, {Cursor: encodeCursor(5) + "x"}, {State: "nope"}, {Limit: 1001}, {Limit: -1},
	} {
		if _, err := e.l.List(e.ctx, q); !errors.Is(err, ErrBadQuery) {
			t.Errorf("List(%+v) = %v, want ErrBadQuery", q, err)
		}
	}
	if _, err := e.l.List(e.ctx, Query{Cursor: "!!"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}

	// Pages of every state (merged from the state indexes) follow one another
	// by cursor, in both orders, with every record once.
	for _, q := range []Query{{Limit: 4}, {Limit: 4, Oldest: true}, {Limit: 2, AccountID: "acct-b"}} {
		var got []string
		for {
			page, err := e.l.List(e.ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids(page.Records)...)
			if page.NextCursor == "" {
				break
			}
			q.Cursor = page.NextCursor
		}
		want := []string{"a9", "b4", "a4", "b3", "a3", "b2", "a2", "b1", "a1", "b0", "a0"}
		if q.AccountID != "" {
			want = []string{"b4", "b3", "b2", "b1", "b0"}
		}
		if q.Oldest {
			slices.Reverse(want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("paged %+v: got %v, want %v", q, got, want)
		}
	}
}

// TestListPaginationWhileAdding pages through an index, both directions,
// while other records are being added: every record that existed at the
// start is seen exactly once.
func TestListPaginationWhileAdding(t *testing.T) {
	t.Parallel()
	for _, oldest := range []bool{false, true} {
		t.Run(fmt.Sprintf("oldest=%v", oldest), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var initial []string
			for i := range 57 {
				id := fmt.Sprintf("s%03d", i)
				e.create(id, "acct")
				initial = append(initial, id)
			}
			seen := map[string]int{}
			cursor, pages, added := "", 0, 0
			for {
				page, err := e.l.List(e.ctx, Query{State: tasks.StatePendingApproval, Limit: 10, Cursor: cursor, Oldest: oldest})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range page.Records {
					seen[r.SendID]++
				}
				for range 3 { // new records arrive between pages
					e.create(fmt.Sprintf("new%03d", added), "acct")
					added++
				}
				pages++
				if page.NextCursor == "" || pages > 100 {
					break
				}
				cursor = page.NextCursor
			}
			for _, id := range initial {
				if seen[id] != 1 {
					t.Errorf("%s seen %d times", id, seen[id])
				}
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("%s seen %d times", id, n)
				}
			}
			if !oldest && len(seen) != len(initial) {
				t.Errorf("newest first saw %d records, want the %d initial ones", len(seen), len(initial))
			}
		})
	}
}

func TestListDropsExpiredRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 4 {
		e.create(fmt.Sprintf("s%d", i), "acct")
	}
	e.rdb.Del(e.ctx, e.l.Keys().Send("s1"), e.l.Keys().Send("s2")) // as if expired
	page, err := e.l.List(e.ctx, Query{Oldest: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(page.Records); !slices.Equal(got, []string{"s0", "s3"}) {
		t.Fatalf("got %v", got)
	}
	if n := e.rdb.ZCard(e.ctx, e.l.Keys().State(tasks.StatePendingApproval)).Val(); n != 2 {
		t.Fatalf("index still holds %d entries, want 2", n)
	}
}

func TestTrim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("old", "acct")
	if _, err := e.l.Cancel(e.ctx, "old", "admin", ""); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(testRetention / 2)
	e.create("young", "acct")
	if _, err := e.l.Cancel(e.ctx, "young", "admin", ""); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(testRetention/2 + time.Second)
	// Records created before List merged the state indexes are also in the
	// every-state indexes: Trim drains those too.
	k := e.l.Keys()
	for _, key := range []string{k.legacyAll(), k.legacyAccountAll("acct")} {
		if err := e.rdb.ZAdd(e.ctx, key, redis.Z{Score: 1, Member: "old"}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	n, err := e.l.Trim(e.ctx)
	if err != nil || n != 1 {
		t.Fatalf("trim = %d, %v", n, err)
	}
	for _, key := range []string{k.legacyAll(), k.State(tasks.StateCanceled), k.Account("acct", tasks.StateCanceled), k.legacyAccountAll("acct")} {
		if _, ok := e.zscore(key, "old"); ok {
			t.Errorf("%s still lists old", key)
		}
	}
	for _, key := range []string{k.State(tasks.StateCanceled), k.Account("acct", tasks.StateCanceled)} {
		if _, ok := e.zscore(key, "young"); !ok {
			t.Errorf("%s lost young", key)
		}
	}
	if _, err := e.l.Get(e.ctx, "old"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old record still there: %v", err)
	}
	counts, _ := e.l.Counts(e.ctx)
	if counts[tasks.StateCanceled] != 1 {
		t.Fatalf("counts %v", counts)
	}

	// A send_id reused after its record expired is a new record: trimming
	// the old one's entries leaves the new one's alone.
	e.create("young2", "acct")
	if _, err := e.l.Cancel(e.ctx, "young2", "admin", ""); err != nil {
		t.Fatal(err)
	}
	e.rdb.Del(e.ctx, k.Send("young2"), k.History("young2")) // expired by Redis
	e.create("young2", "acct")
	e.clock.Advance(testRetention + time.Second)
	if _, err := e.l.Trim(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.zscore(k.State(tasks.StatePendingApproval), "young2"); !ok {
		t.Fatal("trim removed the new record's entry")
	}
	if rec := e.get("young2"); rec.State != tasks.StatePendingApproval {
		t.Fatalf("new record %s", rec.State)
	}
}

// TestRecordGen: every record read carries the current release generation.
func TestRecordGen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if rec := e.create("s1", "acct"); rec.Gen != 0 {
		t.Fatalf("pending gen %d", rec.Gen)
	}
	rec, err := e.l.Approve(e.ctx, "s1", e.get("s1").Digest, "approver", "")
	if err != nil || rec.Gen != 1 {
		t.Fatalf("approved gen %d %v", rec.Gen, err)
	}
	rec, err = e.l.Defer(e.ctx, "s1", "", e.clock.Now().Add(time.Minute), tasks.ReasonWaitWindow)
	if err != nil || rec.Gen != 2 || e.get("s1").Gen != e.gen("s1") {
		t.Fatalf("deferred gen %d (stored %d) %v", rec.Gen, e.gen("s1"), err)
	}
	page, err := e.l.List(e.ctx, Query{State: tasks.StateWaiting})
	if err != nil || len(page.Records) != 1 || page.Records[0].Gen != 2 {
		t.Fatalf("list %+v %v", page, err)
	}
}

// TestHistoryWrittenWithItsCreationEvent: a history list written before
// Create stopped storing the creation event (it starts with it) is shown as
// it is, not with a second creation event.
func TestHistoryWrittenWithItsCreationEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("old", "acct-1")
	stored := `{"at":"2030-01-02T03:04:05Z","state":"pending_approval","by":"scheduler","detail":"enqueued"}`
	if err := e.rdb.RPush(e.ctx, e.l.Keys().History("old"), stored).Err(); err != nil {
		t.Fatal(err)
	}
	rec, err := e.l.Approve(e.ctx, "old", e.get("old").Digest, "approver", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.History) != 2 || rec.History[0].Detail != "enqueued" || rec.History[1].State != tasks.StateApproved {
		t.Fatalf("history: %+v", rec.History)
	}
}

// TestRequestKeptInChunks: a request longer than 64 bytes is stored in
// chunks, so the record hash stays a listpack (Redis's compact encoding);
// it reads back whole; a revision to a shorter or a much longer request
// drops the chunks it no longer uses; a request over 1 KiB stays whole.
func TestRequestKeptInChunks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	encoding := func() string {
		t.Helper()
		enc, err := e.rdb.ObjectEncoding(e.ctx, e.l.Keys().Send("s1")).Result()
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	fields := func() []string {
		t.Helper()
		keys, err := e.rdb.HKeys(e.ctx, e.l.Keys().Send("s1")).Result()
		if err != nil {
			t.Fatal(err)
		}
		var req []string
		for _, k := range keys {
			if k == fReq || strings.HasPrefix(k, fReq+".") {
				req = append(req, k)
			}
		}
		sort.Strings(req)
		return req
	}
	req := request("s1", "acct-1")
	req.Text = strings.Repeat("Ünïcode follow-up, ", 10) // 200 characters, multi-byte ones among them
	rec, created, err := e.l.Create(e.ctx, req, req.Digest(), e.clock.Now().Add(time.Hour))
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if rec.Request.Text != req.Text || rec.Digest != req.Digest() {
		t.Fatalf("request read back: %q", rec.Request.Text)
	}
	if enc := encoding(); enc != "listpack" && enc != "ziplist" {
		t.Fatalf("record encoding %s, want listpack", enc)
	}
	chunks := fields()
	if len(chunks) < 4 || chunks[len(chunks)-1] != fReq+".n" {
		t.Fatalf("request fields %v", chunks)
	}

	for _, c := range []struct {
		name      string
		text      string
		wantWhole bool
	}{
		{"shorter", "short", false},
		{"longer than 1 KiB", strings.Repeat("x", 1100), true},
		{"back to chunks", strings.Repeat("y", 300), false},
	} {
		shown := e.get("s1").Digest
		next := request("s1", "acct-1")
		next.Text = c.text
		rec, err := e.l.Revise(e.ctx, "s1", shown, next, next.Digest(), "editor")
		if err != nil {
			t.Fatalf("%s: revise: %v", c.name, err)
		}
		if rec.Request.Text != c.text || e.get("s1").Request.Text != c.text {
			t.Fatalf("%s: text read back %q", c.name, rec.Request.Text)
		}
		got := fields()
		body, _ := json.Marshal(next)
		whole := len(got) == 1 && got[0] == fReq
		if c.wantWhole != whole || (!whole && len(got) != (len(body)+63)/64+1) {
			t.Fatalf("%s: request fields %v for %d bytes", c.name, got, len(body))
		}
	}
}

// TestCreateReturnsTheStoredRecord: the record Create returns (built from the
// fields the script stores, without reading it back) is the one Get reads,
// for requests of every shape; a repeated Create returns the stored record.
func TestCreateReturnsTheStoredRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	since := e.clock.Now().Add(-time.Hour)
	withMeta := request("meta", "acct-1")
	withMeta.Metadata = json.RawMessage("{ \"sequence\": \"s-1\",\n \"step\": 3 }")
	withMeta.Text = strings.Repeat("long text ", 40)
	create := request("create", "acct-1")
	create.Operation, create.ChatID, create.Text = tasks.OpCreateChat, "", "hello"
	create.AttendeeIDs = []string{"att-1"}
	react := request("react", "acct-2")
	react.Operation, react.Text, react.MessageID, react.Reaction = tasks.OpReaction, "", "m-1", "👍"
	react.Metadata, react.RequestedBy = nil, ""
	window := request("window", "acct-2")
	window.StopIfRepliedSince = &since
	window.Window = &tasks.Window{Timezone: "Europe/Paris", Days: []string{"mon"}, From: "09:00", To: "18:00"}
	for _, req := range []*tasks.SendRequest{request("plain", "acct-1"), withMeta, create, react, window} {
		rec, created, err := e.l.Create(e.ctx, req, req.Digest(), e.clock.Now().Add(time.Hour))
		if err != nil || !created {
			t.Fatalf("%s: create: %v %v", req.SendID, created, err)
		}
		got, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(e.get(req.SendID))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: Create returned\n%s\nGet reads\n%s", req.SendID, got, want)
		}
		again, created, err := e.l.Create(e.ctx, req, req.Digest(), e.clock.Now().Add(2*time.Hour))
		if err != nil || created {
			t.Fatalf("%s: create again: %v %v", req.SendID, created, err)
		}
		if b, _ := json.Marshal(again); string(b) != string(want) {
			t.Errorf("%s: repeated Create returned\n%s", req.SendID, b)
		}
	}
}

// TestGetWithBreaker: the record as Get reads it, with the named account's breaker (open or
// not) read in the same MULTI; an unknown send is ErrNotFound.
func TestGetWithBreaker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("s1", "acct-1")
	policy := BreakerPolicy{ProbeEvery: time.Minute, TTL: time.Hour, Window: time.Minute, Trips: 1}
	if _, err := e.l.OpenBreaker(e.ctx, "acct-2", "CREDENTIALS", e.clock.Now(), policy); err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(e.get("s1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		account string
		open    bool
	}{{"acct-1", false}, {"acct-2", true}} {
		rec, open, err := e.l.GetWithBreaker(e.ctx, "s1", c.account)
		if err != nil || open != c.open {
			t.Fatalf("%s: open %v, %v; want %v", c.account, open, err, c.open)
		}
		if got, _ := json.Marshal(rec); string(got) != string(want) {
			t.Fatalf("%s: record %s, want %s", c.account, got, want)
		}
	}
	if _, _, err := e.l.GetWithBreaker(e.ctx, "nope", "acct-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown send: %v", err)
	}
}
