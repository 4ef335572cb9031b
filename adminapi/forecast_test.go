package adminapi_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/adminapi"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/tasks"
)

// forecastReply is the answer of GET /v1/accounts/{id}/forecast.
type forecastReply struct {
	AccountID string    `json:"account_id"`
	At        time.Time `json:"at"`
	Paused    struct {
		Global  bool `json:"global"`
		Account bool `json:"account"`
	} `json:"paused"`
	Rate struct {
		Limits struct {
			MinInterval string `json:"min_interval"`
			HourlyCap   int    `json:"hourly_cap"`
			DailyCap    int    `json:"daily_cap"`
		} `json:"limits"`
		DailyCap               int        `json:"daily_cap"`
		NextSlot               time.Time  `json:"next_slot"`
		NextSlotBinding        string     `json:"next_slot_binding"`
		NextNewChatSlot        time.Time  `json:"next_new_chat_slot"`
		NextNewChatSlotBinding string     `json:"next_new_chat_slot_binding"`
		LastSlot               *time.Time `json:"last_slot"`
		SlotsLastHour          int        `json:"slots_last_hour"`
		SlotsLastDay           int        `json:"slots_last_day"`
		NewChatsLastHour       int        `json:"new_chats_last_hour"`
		Queued                 int        `json:"queued"`
		PenaltyUntil           *time.Time `json:"penalty_until"`
	} `json:"rate"`
	Counts       map[string]int `json:"counts"`
	CountsCapped []string       `json:"counts_capped"`
	Waiting      []struct {
		SendID    string     `json:"send_id"`
		Operation string     `json:"operation"`
		Reason    string     `json:"reason"`
		Until     *time.Time `json:"until"`
		Detail    string     `json:"detail"`
	} `json:"waiting"`
	NextCursor string `json:"next_cursor"`
}

func (f forecastReply) waitingIDs() []string {
	var ids []string
	for _, w := range f.Waiting {
		ids = append(ids, w.SendID)
	}
	return ids
}

// approve approves a send enqueued by e.enqueue.
func (e *env) approve(id string) {
	e.t.Helper()
	r := e.do("POST", "/v1/sends/"+id+"/approve", tokAppr, map[string]string{"digest": digestOf(id, secretText)})
	if r.status != http.StatusOK {
		e.t.Fatalf("approve %s: %d %s", id, r.status, r.raw)
	}
}

// TestForecast builds an account with sends in each waiting situation and
// rate-limit slots taken, and reads its forecast through the API.
func TestForecast(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	e := newEnv(t, func(o *adminapi.Options) { o.Now = func() time.Time { return now } })
	ctx := context.Background()

	// Rate limits: one send went now, one holds the next slot (now+1m).
	for _, id := range []string{"rl-1", "rl-2"} {
		rec := &tasks.Record{SendID: id, Request: tasks.SendRequest{SendID: id, Operation: tasks.OpSendMessage, AccountID: "acc-paris", ChatID: "chat-" + id}}
		if _, err := e.rl.ReserveSlot(ctx, rec, now); err != nil {
			t.Fatal(err)
		}
	}

	// w-1 waits for its rate-limit slot, w-2 for its window, w-3 is held by
	// the account's pause (no until), a-1 stays approved.
	for _, id := range []string{"w-1", "w-2", "w-3", "a-1"} {
		e.enqueue(id)
		e.approve(id)
	}
	if _, err := e.l.Defer(ctx, "w-1", "", now.Add(10*time.Minute), tasks.ReasonWaitRateLimit); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Defer(ctx, "w-2", "", now.Add(2*time.Minute), tasks.ReasonWaitWindow); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.do("POST", "/v1/accounts/acc-paris/pause", tokAdmin, nil), http.StatusOK, "")
	w3, err := e.l.Get(ctx, "w-3")
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.l.BeginAttempt(ctx, ledger.BeginRequest{SendID: "w-3", Digest: w3.Digest, Gen: w3.Gen, Token: "tok-w3", Lease: time.Minute})
	if err != nil || res.Outcome != ledger.BeginHeld {
		t.Fatalf("begin w-3 = %v, %v; want held", res.Outcome, err)
	}

	r := e.do("GET", "/v1/accounts/acc-paris/forecast", tokSched, nil)
	wantStatus(t, r, http.StatusOK, "")
	var f forecastReply
	r.decode(t, &f)
	if f.AccountID != "acc-paris" || !f.At.Equal(now) || !f.Paused.Account || f.Paused.Global {
		t.Fatalf("head = %s", r.raw)
	}
	rate := f.Rate
	if rate.Limits.MinInterval != "1m0s" || rate.Limits.HourlyCap != 3 || rate.Limits.DailyCap != 10 || rate.DailyCap != 10 {
		t.Errorf("limits = %+v (%s)", rate.Limits, r.raw)
	}
	if !rate.NextSlot.Equal(now.Add(2*time.Minute)) || rate.NextSlotBinding != string(ratelimit.BindMinInterval) {
		t.Errorf("next slot %v %s, want now+2m min_interval (%s)", rate.NextSlot, rate.NextSlotBinding, r.raw)
	}
	if rate.SlotsLastHour != 1 || rate.SlotsLastDay != 1 || rate.Queued != 1 || rate.LastSlot == nil ||
		!rate.LastSlot.Equal(now.Add(time.Minute)) || rate.PenaltyUntil != nil {
		t.Errorf("slots = %+v (%s)", rate, r.raw)
	}
	if !slices.Equal(f.waitingIDs(), []string{"w-2", "w-1", "w-3"}) {
		t.Fatalf("waiting order = %v, want by until, held last (%s)", f.waitingIDs(), r.raw)
	}
	w := f.Waiting
	if w[0].Reason != "send_window" || !w[0].Until.Equal(now.Add(2*time.Minute)) || w[0].Operation != "chats_messages_send" || w[0].Detail == "" ||
		w[1].Reason != "rate_limit" || !w[1].Until.Equal(now.Add(10*time.Minute)) ||
		w[2].Reason != "paused" || w[2].Until != nil || !strings.Contains(w[2].Detail, "resume") {
		t.Errorf("waiting = %+v", w)
	}
	if !strings.Contains(string(r.raw), `"until":null`) {
		t.Errorf("a held send's until is not null: %s", r.raw)
	}
	if f.Counts["approved"] != 1 || f.Counts["waiting"] != 3 || f.Counts["sending"] != 0 || len(f.Counts) != 3 ||
		f.CountsCapped == nil || len(f.CountsCapped) != 0 || f.NextCursor != "" {
		t.Errorf("counts = %v capped %v cursor %q", f.Counts, f.CountsCapped, f.NextCursor)
	}
	for _, secret := range []string{secretText, "Camille"} {
		if strings.Contains(string(r.raw), secret) {
			t.Errorf("forecast carries message text: %s", r.raw)
		}
	}

	// Pages walk the waiting sends oldest first; each page is sorted by until,
	// and the count is of every waiting send.
	r = e.do("GET", "/v1/accounts/acc-paris/forecast?limit=2", tokAppr, nil)
	wantStatus(t, r, http.StatusOK, "")
	var p1 forecastReply
	r.decode(t, &p1)
	if !slices.Equal(p1.waitingIDs(), []string{"w-2", "w-1"}) || p1.NextCursor == "" || p1.Counts["waiting"] != 3 {
		t.Fatalf("page 1 = %s", r.raw)
	}
	r = e.do("GET", "/v1/accounts/acc-paris/forecast?limit=2&cursor="+p1.NextCursor, tokAdmin, nil)
	wantStatus(t, r, http.StatusOK, "")
	var p2 forecastReply
	r.decode(t, &p2)
	if !slices.Equal(p2.waitingIDs(), []string{"w-3"}) || p2.NextCursor != "" || p2.Counts["waiting"] != 3 || p2.Counts["approved"] != 1 {
		t.Fatalf("page 2 = %s", r.raw)
	}

	// An account with nothing: empty lists, not null; the next slot is now.
	r = e.do("GET", "/v1/accounts/acc-empty/forecast", tokAppr, nil)
	wantStatus(t, r, http.StatusOK, "")
	if !strings.Contains(string(r.raw), `"waiting":[]`) || !strings.Contains(string(r.raw), `"counts_capped":[]`) {
		t.Fatalf("empty account = %s", r.raw)
	}
	var empty forecastReply
	r.decode(t, &empty)
	if !empty.Rate.NextSlot.Equal(now) || empty.Rate.NextSlotBinding != string(ratelimit.BindNone) || empty.Paused.Account || empty.Rate.LastSlot != nil {
		t.Fatalf("empty account = %s", r.raw)
	}
}

// TestListWaitingCarriesWait: GET /v1/sends?state=waiting shows why and
// until when each send waits.
func TestListWaitingCarriesWait(t *testing.T) {
	e := newEnv(t)
	e.enqueue("w-1")
	e.approve("w-1")
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	if _, err := e.l.Defer(context.Background(), "w-1", "", until, tasks.ReasonWaitRateLimit); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/v1/sends?state=waiting&account_id=acc-paris", tokAppr, nil)
	wantStatus(t, r, http.StatusOK, "")
	var page struct {
		Sends []tasks.Record `json:"sends"`
	}
	r.decode(t, &page)
	if len(page.Sends) != 1 || page.Sends[0].Wait == nil || page.Sends[0].Wait.Reason != tasks.ReasonWaitRateLimit || !page.Sends[0].Wait.Until.Equal(until) {
		t.Fatalf("waiting page = %s", r.raw)
	}
	if !strings.Contains(string(r.raw), `"wait":{"until":"`+until.Format(time.RFC3339Nano)+`","reason":"rate_limit"}`) {
		t.Fatalf("wire shape of wait: %s", r.raw)
	}
}

// fakeForecaster answers with err, and records what it was asked.
type fakeForecaster struct {
	err     error
	account string
}

func (f *fakeForecaster) Forecast(_ context.Context, accountID string, now time.Time) (ratelimit.Forecast, error) {
	f.account = accountID
	return ratelimit.Forecast{AccountID: accountID, At: now, NextSlot: now, NextNewChatSlot: now}, f.err
}

func TestForecastErrors(t *testing.T) {
	none := newEnv(t, func(o *adminapi.Options) { o.Forecaster = nil })
	wantStatus(t, none.do("GET", "/v1/accounts/acc-paris/forecast", tokAppr, nil), http.StatusServiceUnavailable, "unavailable")

	fake := &fakeForecaster{}
	e := newEnv(t, func(o *adminapi.Options) { o.Forecaster = fake })
	wantStatus(t, e.do("GET", "/v1/accounts/acc%2Fx/forecast", tokAppr, nil), http.StatusOK, "")
	if fake.account != "acc/x" {
		t.Fatalf("forecaster asked for %q", fake.account)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "cursor=bogus", "state=waiting", "limit=1&limit=2"} {
		wantStatus(t, e.do("GET", "/v1/accounts/acc-paris/forecast?"+q, tokAppr, nil), http.StatusBadRequest, "invalid_request")
	}
	r := e.do("GET", "/v1/accounts/"+strings.Repeat("a", tasks.MaxAccountIDLen+1)+"/forecast", tokAppr, nil)
	wantStatus(t, r, http.StatusBadRequest, "invalid_request")
	if got := fieldNames(r.err(t)); !slices.Equal(got, []string{"account_id"}) {
		t.Fatalf("fields = %v", got)
	}
	wantStatus(t, e.do("POST", "/v1/accounts/acc-paris/forecast", tokAdmin, nil), http.StatusMethodNotAllowed, "method_not_allowed")

	fake.err = redis.ErrClosed
	wantStatus(t, e.do("GET", "/v1/accounts/acc-paris/forecast", tokAppr, nil), http.StatusServiceUnavailable, "unavailable")
	fake.err = errors.New("ratelimit: forecast acc-paris: reply of 2 items")
	r = e.do("GET", "/v1/accounts/acc-paris/forecast", tokAppr, nil)
	wantStatus(t, r, http.StatusInternalServerError, "internal")
	if strings.Contains(string(r.raw), "reply of") {
		t.Fatalf("internal cause leaked: %s", r.raw)
	}
}

// TestForecastUndecided: a send whose lost outcome is still undecided (sending, waiting for
// its next check) is listed with its next check and why.
func TestForecastUndecided(t *testing.T) {
	e := newEnv(t, func(*adminapi.Options) {})
	ctx := context.Background()
	for _, id := range []string{"u-1", "s-1"} {
		e.enqueue(id)
		e.approve(id)
		rec, err := e.l.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.l.BeginAttempt(ctx, ledger.BeginRequest{SendID: id, Digest: rec.Digest, Gen: rec.Gen, Token: "tok-" + id, Lease: time.Minute})
		if err != nil || res.Outcome != ledger.BeginOK {
			t.Fatalf("begin %s = %v, %v", id, res.Outcome, err)
		}
	}
	why := "absent in read 1, but the provider could still store it until then"
	next, err := e.l.ReconcileLater(ctx, "u-1", "tok-u-1", ledger.Undecided{After: 10 * time.Minute, Absent: true, Why: why})
	if err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/v1/accounts/acc-paris/forecast", tokSched, nil)
	wantStatus(t, r, http.StatusOK, "")
	var f struct {
		Counts    map[string]int `json:"counts"`
		Undecided []struct {
			SendID string     `json:"send_id"`
			Reason string     `json:"reason"`
			Until  *time.Time `json:"until"`
			Detail string     `json:"detail"`
		} `json:"undecided"`
	}
	r.decode(t, &f)
	if f.Counts["sending"] != 2 || len(f.Undecided) != 1 {
		t.Fatalf("forecast %s", r.raw)
	}
	u := f.Undecided[0]
	if u.SendID != "u-1" || u.Reason != string(tasks.ReasonUnknownOutcome) || u.Until == nil || !u.Until.Equal(next) || u.Detail != why {
		t.Fatalf("undecided %+v, next check %v", u, next)
	}
}
