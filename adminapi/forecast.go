package adminapi

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/sendworker/sendworker/adminapi/wire"
	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/tasks"
)

// Forecaster is the rate limiter's read-only view of an account
// (*ratelimit.Limiter implements it).
type Forecaster interface {
	Forecast(ctx context.Context, accountID string, now time.Time) (ratelimit.Forecast, error)
}

// Limits of GET /v1/accounts/{account_id}/forecast.
const (
	// forecastPageDefault and forecastPageMax bound the page of waiting sends.
	forecastPageDefault = 50
	forecastPageMax     = 1000
	// countCap bounds each per-account count: one ledger List page (the
	// ledger keeps no per-account counters). A count that reaches it is
	// named in counts_capped and means "at least".
	countCap = 1000
)

// forecastStates are the states an account's forecast counts.
var forecastStates = []tasks.State{tasks.StateApproved, tasks.StateWaiting, tasks.StateSending}

// waitDetails explain a wait reason when the record carries no detail.
var waitDetails = map[tasks.Reason]string{
	tasks.ReasonWaitRateLimit:   "the account's rate limits put it at this time",
	tasks.ReasonWaitWindow:      "outside the send's window; goes when it opens",
	tasks.ReasonWaitPaused:      "held by a pause; goes after resume",
	tasks.ReasonWaitAccountDown: "the account cannot send; checked again then",
	tasks.ReasonWaitProvider:    "the provider asked to slow down or was unavailable; tried again then",
	tasks.ReasonWaitInFlight:    "another execution holds the attempt; tried again then",
	tasks.ReasonWaitReconcile:   "an earlier attempt's outcome is being checked",
	tasks.ReasonWaitTransient:   "a transient failure; tried again then",
	tasks.ReasonWaitReplication: "Redis replicas did not confirm the attempt's start; tried again then",
}

// GET /v1/accounts/{account_id}/forecast?limit=&cursor=
func (a *api) forecast(r *http.Request, c *caller, _ []byte) (int, any, error) {
	if a.opts.Forecaster == nil {
		return 0, nil, apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "rate-limit forecasts are not configured"}
	}
	q := parseQuery(r, "limit", "cursor")
	account := r.PathValue("account_id")
	switch {
	case account == "":
		q.add("account_id", "required", "required")
	case len(account) > tasks.MaxAccountIDLen:
		q.add("account_id", "too_long", fmt.Sprintf("at most %d characters", tasks.MaxAccountIDLen))
	}
	lq := ledger.Query{State: tasks.StateWaiting, AccountID: account, Limit: q.limit(forecastPageMax), Cursor: q.cursor(), Oldest: true}
	if lq.Limit == 0 {
		lq.Limit = forecastPageDefault
	}
	if err := q.err(); err != nil {
		return 0, nil, err
	}
	if err := c.checkAccount(account); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	now := a.opts.Now()
	l := a.svc.Ledger()

	page, err := l.List(ctx, lq)
	if err != nil {
		return 0, nil, err
	}
	f, err := a.opts.Forecaster.Forecast(ctx, account, now)
	if err != nil {
		return 0, nil, err
	}
	global, accounts, err := l.PauseState(ctx)
	if err != nil {
		return 0, nil, err
	}
	ans := wire.Forecast{
		AccountID:    account,
		At:           now.UTC(),
		Paused:       wire.Paused{Global: global, Account: slices.Contains(accounts, account)},
		Rate:         rateOf(f),
		Counts:       make(map[tasks.State]int, len(forecastStates)),
		CountsCapped: []tasks.State{},
		Waiting:      waitingOf(page.Records),
		NextCursor:   page.NextCursor,
		Undecided:    []wire.WaitingSend{},
	}
	for _, s := range forecastStates {
		if s == tasks.StateWaiting && lq.Cursor == "" && page.NextCursor == "" {
			ans.Counts[s] = len(page.Records) // the page is every waiting send
			continue
		}
		p, err := l.List(ctx, ledger.Query{State: s, AccountID: account, Limit: countCap, Oldest: true})
		if err != nil {
			return 0, nil, err
		}
		n, capped := len(p.Records), p.NextCursor != ""
		if s == tasks.StateSending {
			ans.Undecided = undecidedOf(p.Records)
		}
		ans.Counts[s] = n
		if capped {
			ans.CountsCapped = append(ans.CountsCapped, s)
		}
	}
	return http.StatusOK, ans, nil
}

// undecidedOf are the sends among recs (in sending) whose reconciliation is
// waiting for its next check, soonest first.
func undecidedOf(recs []*tasks.Record) []wire.WaitingSend {
	out := []wire.WaitingSend{}
	for _, rec := range recs {
		rc := rec.Reconcile
		if rc == nil || rc.Why == "" || rc.NextCheck.IsZero() {
			continue
		}
		out = append(out, wire.WaitingSend{SendID: rec.SendID, Operation: rec.Request.Operation,
			Reason: tasks.ReasonUnknownOutcome, Until: timePtr(rc.NextCheck), Detail: rc.Why})
	}
	slices.SortFunc(out, func(x, y wire.WaitingSend) int {
		return cmp.Or(x.Until.Compare(*y.Until), cmp.Compare(x.SendID, y.SendID))
	})
	return out
}

// waitingOf is the page of waiting sends sorted by until (sends held by a
// pause, without an until, last), then send_id.
func waitingOf(recs []*tasks.Record) []wire.WaitingSend {
	out := make([]wire.WaitingSend, 0, len(recs))
	for _, rec := range recs {
		w := wire.WaitingSend{SendID: rec.SendID, Operation: rec.Request.Operation, Reason: rec.Reason, Detail: rec.Detail}
		if rec.Wait != nil {
			w.Reason = rec.Wait.Reason
			w.Until = timePtr(rec.Wait.Until)
		}
		if w.Detail == "" {
			w.Detail = waitDetails[w.Reason]
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(x, y wire.WaitingSend) int {
		switch {
		case x.Until == nil && y.Until != nil:
			return 1
		case x.Until != nil && y.Until == nil:
			return -1
		case x.Until != nil:
			if c := x.Until.Compare(*y.Until); c != 0 {
				return c
			}
		}
		return cmp.Compare(x.SendID, y.SendID)
	})
	return out
}

func rateOf(f ratelimit.Forecast) wire.RateForecast {
	return wire.RateForecast{
		Limits:                 limitsOf(f.Limits),
		DailyCap:               f.DailyCap,
		NextSlot:               f.NextSlot.UTC(),
		NextSlotBinding:        string(f.NextSlotBinding),
		NextNewChatSlot:        f.NextNewChatSlot.UTC(),
		NextNewChatSlotBinding: string(f.NextNewChatSlotBinding),
		LastSlot:               timePtr(f.LastSlot),
		SlotsLastHour:          f.SlotsLastHour,
		SlotsLastDay:           f.SlotsLastDay,
		NewChatsLastHour:       f.NewChatsLastHour,
		NewChatsLastDay:        f.NewChatsLastDay,
		Queued:                 f.Queued,
		NewChatsQueued:         f.NewChatsQueued,
		PenaltyUntil:           timePtr(f.PenaltyUntil),
	}
}

func limitsOf(l config.Limits) wire.Limits {
	return wire.Limits{
		MinInterval:       l.MinInterval.String(),
		Jitter:            l.Jitter.String(),
		HourlyCap:         l.HourlyCap,
		DailyCap:          l.DailyCap,
		NewChatsHourlyCap: l.NewChatsHourlyCap,
		NewChatsDailyCap:  l.NewChatsDailyCap,
		RecipientCooldown: l.RecipientCooldown.String(),
		WarmupStart:       l.WarmupStart,
		WarmupStep:        l.WarmupStep,
	}
}

// timePtr is t in UTC, or nil for the zero time.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
