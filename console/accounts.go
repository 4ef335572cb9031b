package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

const (
	maxAccounts     = 200              // accounts listed on the accounts page
	accountsTTL     = 30 * time.Second // how long the list of known accounts is reused
	accountParallel = 8                // provider and Redis reads of the page at once
	auditPage       = 200              // audit entries read for the activity page
)

// accountList knows the accounts that have sends: found by the ledger
// (KnownAccounts scans the accounts' state indexes) and cached, since the
// ledger keeps no list of accounts.
type accountList struct {
	ledger *ledger.Ledger
	now    func() time.Time
	mu     sync.Mutex
	at     time.Time
	list   []string
}

func newAccountList(l *ledger.Ledger, now func() time.Time) *accountList {
	return &accountList{ledger: l, now: now}
}

func (a *accountList) get(ctx context.Context) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.list != nil && a.now().Sub(a.at) < accountsTTL {
		return a.list, nil
	}
	out, err := a.ledger.KnownAccounts(ctx, maxAccounts)
	if err != nil {
		return nil, err
	}
	a.list, a.at = out, a.now()
	return out, nil
}

// accountView is one line of the accounts page.
type accountView struct {
	ID          string
	Name        string
	Status      string
	Healthy     bool
	BreakerOpen bool
	BreakerNote string
	Paused      bool
	Pending     int64
	Waiting     []*tasks.Record
	WaitingN    int64
	SlotsHour   int
	HourlyCap   int
	SlotsDay    int
	DailyCap    int
	WarmingUp   bool
	NextSlot    time.Time
	Problem     string
}

// GET /console/accounts
func (c *Console) accountsPage(w http.ResponseWriter, r *request) error {
	ctx := r.Context()
	l := c.svc.Ledger()
	global, paused, err := l.PauseState(ctx)
	if err != nil {
		return err
	}
	ids := slices.Clone([]string(r.who.Accounts))
	if !r.who.Accounts.Limited() {
		if ids, err = c.accounts.get(ctx); err != nil {
			return err
		}
		for _, p := range paused {
			if !slices.Contains(ids, p) {
				ids = append(ids, p)
			}
		}
		slices.Sort(ids)
	}
	views := make([]accountView, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, accountParallel)
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			views[i] = c.accountView(ctx, id, slices.Contains(paused, id))
		})
	}
	wg.Wait()
	b := c.base(r, "Accounts", "accounts")
	b.Notice = r.URL.Query().Get("ok")
	c.render(w, r.Request, http.StatusOK, "accounts", map[string]any{"Accounts": views, "Global": global, "Now": c.opts.Now()}, &b, nil)
	return nil
}

func (c *Console) accountView(ctx context.Context, id string, paused bool) accountView {
	v := accountView{ID: id, Paused: paused}
	l := c.svc.Ledger()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if p := c.opts.Provider; p != nil {
		if acc, err := p.GetAccount(rctx, id); err == nil {
			v.Name, v.Status, v.Healthy = acc.Name, acc.Status(), acc.Healthy()
		} else {
			v.Problem = "the provider did not answer for this account"
		}
	}
	if c.opts.Breaker != nil {
		if open, status, since, err := c.opts.Breaker(rctx, id); err == nil && open {
			v.BreakerOpen, v.BreakerNote = true, status+" since "+since.UTC().Format("2006-01-02 15:04 MST")
		}
	}
	v.Pending, _ = l.PendingCount(rctx, id)
	v.WaitingN, _ = l.StateCount(rctx, id, tasks.StateWaiting)
	if p, err := l.List(rctx, ledger.Query{State: tasks.StateWaiting, AccountID: id, Limit: 5, Oldest: true}); err == nil {
		v.Waiting = p.Records
	}
	if f := c.opts.Forecaster; f != nil {
		if fc, err := f.Forecast(rctx, id, c.opts.Now()); err == nil {
			v.SlotsHour, v.HourlyCap, v.SlotsDay, v.DailyCap = fc.SlotsLastHour, fc.Limits.HourlyCap, fc.SlotsLastDay, fc.DailyCap
			v.WarmingUp = fc.DailyCap > 0 && fc.DailyCap < fc.Limits.DailyCap
			v.NextSlot = fc.NextSlot
		}
	}
	return v
}

// POST /console/accounts/{account_id}/{pause|resume}
func (c *Console) pauseAccount(w http.ResponseWriter, r *request) error {
	id, action := r.PathValue("account_id"), r.PathValue("action")
	if !r.who.Accounts.Allows(id) {
		c.errorPage(w, r.Request, r.who, http.StatusForbidden, "You may act only on the accounts "+strings.Join(r.who.Accounts, ", ")+".")
		return nil
	}
	var err error
	switch action {
	case "pause":
		err = c.svc.Pause(r.Context(), id, r.who.Name)
	case "resume":
		err = c.svc.Resume(r.Context(), id, r.who.Name)
	default:
		c.errorPage(w, r.Request, r.who, http.StatusNotFound, "There is no such action.")
		return nil
	}
	if err != nil {
		if _, p := decisionProblem(err); p != "" {
			c.errorPage(w, r.Request, r.who, http.StatusBadRequest, p)
			return nil
		}
		return err
	}
	c.log.Info("console: account "+action+"d", zap.String("account_id", id), zap.String("by", r.who.Name))
	http.Redirect(w, r.Request, Prefix+"accounts?ok="+url.QueryEscape("Account "+id+" "+action+"d."), http.StatusSeeOther)
	return nil
}

// auditEntry is one line of the activity page.
type auditEntry struct {
	At      string
	Event   string
	By      string
	SendID  string
	Account string
	Note    string
}

// GET /console/activity?q=: the latest decisions (approved, rejected,
// paused...) from the audit stream, filtered by a text.
func (c *Console) activity(w http.ResponseWriter, r *request) error {
	l := c.svc.Ledger()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	entries, err := l.LatestAudit(r.Context(), auditPage)
	if err != nil {
		return err
	}
	var out []auditEntry
	for _, a := range entries {
		e := auditEntry{Event: a.Event, By: a.By, SendID: a.SendID, Account: a.AccountID, Note: a.Note}
		if !a.At.IsZero() {
			e.At = a.At.UTC().Format(time.RFC3339Nano)
		}
		if r.who.Accounts.Limited() && !r.who.Accounts.Allows(e.Account) {
			continue
		}
		if q != "" && !strings.Contains(strings.ToLower(strings.Join([]string{e.Event, e.By, e.SendID, e.Account, e.Note}, " ")), strings.ToLower(q)) {
			continue
		}
		out = append(out, e)
	}
	b := c.base(r, "Activity", "activity")
	c.render(w, r.Request, http.StatusOK, "activity", map[string]any{"Entries": out, "Q": q, "Max": auditPage}, &b, nil)
	return nil
}

func urlPathEscape(s string) string { return url.PathEscape(s) }

// GET /console/review?cursor=: the sends whose outcome is unknown (the
// provider may or may not have delivered them), oldest first. Each links to
// its send page, which shows its attempts and the chat around them.
func (c *Console) needsReview(w http.ResponseWriter, r *request) error {
	q := ledger.Query{State: tasks.StateNeedsReview, Limit: queuePageSize, Oldest: true, Cursor: r.URL.Query().Get("cursor")}
	if len(r.who.Accounts) == 1 {
		q.AccountID = r.who.Accounts[0]
	}
	page, err := c.svc.Ledger().List(r.Context(), q)
	if errors.Is(err, ledger.ErrBadQuery) {
		c.errorPage(w, r.Request, r.who, http.StatusBadRequest, "That page link is not valid any more.")
		return nil
	}
	if err != nil {
		return err
	}
	var recs []*tasks.Record
	for _, rec := range page.Records {
		if r.who.Accounts.Allows(rec.Request.AccountID) {
			recs = append(recs, rec)
		}
	}
	next := ""
	if page.NextCursor != "" {
		next = Prefix + "review?cursor=" + url.QueryEscape(page.NextCursor)
	}
	b := c.base(r, "Needs review", "review")
	c.render(w, r.Request, http.StatusOK, "review", map[string]any{"Records": recs, "Next": next}, &b, nil)
	return nil
}
