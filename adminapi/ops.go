package adminapi

import (
	"context"
	"net/http"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

type pauseAnswer struct {
	Global   bool     `json:"global"`
	Accounts []string `json:"accounts"`
}

func (a *api) pauseAnswer(ctx context.Context) (pauseAnswer, error) {
	global, accounts, err := a.svc.Ledger().PauseState(ctx)
	if accounts == nil {
		accounts = []string{}
	}
	return pauseAnswer{Global: global, Accounts: accounts}, err
}

// POST /v1/pause, /v1/resume, /v1/accounts/{account_id}/pause|resume
func (a *api) pause(paused, account bool) handler {
	return func(r *http.Request, c *caller, _ []byte) (int, any, error) {
		accountID := ""
		if account {
			accountID = r.PathValue("account_id")
			if accountID == "" {
				return 0, nil, invalid("account_id", "required", "required")
			}
		}
		if c.scope.Limited() && !account {
			return 0, nil, outOfScope("the global switch")
		}
		if err := c.checkAccount(accountID); account && err != nil {
			return 0, nil, err
		}
		set := a.svc.Resume
		if paused {
			set = a.svc.Pause
		}
		if err := set(r.Context(), accountID, c.identity); err != nil {
			return 0, nil, err
		}
		ans, err := a.pauseAnswer(r.Context())
		return http.StatusOK, ans, err
	}
}

// GET /v1/pause
func (a *api) pauseState(r *http.Request, _ *caller, _ []byte) (int, any, error) {
	ans, err := a.pauseAnswer(r.Context())
	return http.StatusOK, ans, err
}

type optOutsAnswer struct {
	OptOuts []string             `json:"optouts"`
	Entries []ledger.OptOutEntry `json:"entries"`
	// Ended: the sends an opt-out just added ended (skipped/opted_out).
	Ended []string `json:"ended,omitempty"`
}

func (a *api) optOutsAnswer(ctx context.Context, ended []string) (int, any, error) {
	entries, err := a.svc.Ledger().OptOutEntries(ctx)
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.ContactID)
	}
	if entries == nil {
		entries = []ledger.OptOutEntry{}
	}
	return http.StatusOK, optOutsAnswer{OptOuts: ids, Entries: entries, Ended: ended}, err
}

// GET /v1/optouts
func (a *api) optOuts(r *http.Request, _ *caller, _ []byte) (int, any, error) {
	return a.optOutsAnswer(r.Context(), nil)
}

type optOutBody struct {
	ContactID string `json:"contact_id"`
	Reason    string `json:"reason,omitempty"`
}

// POST /v1/optouts {"contact_id", "reason"?}
func (a *api) addOptOut(r *http.Request, c *caller, body []byte) (int, any, error) {
	var b optOutBody
	if err := decodeStrict(body, &b); err != nil {
		return 0, nil, err
	}
	ended, err := a.svc.OptOut(r.Context(), b.ContactID, c.identity, b.Reason)
	if err != nil {
		return 0, nil, err
	}
	return a.optOutsAnswer(r.Context(), ended)
}

// DELETE /v1/optouts/{contact_id}?reason=
func (a *api) removeOptOut(r *http.Request, c *caller, _ []byte) (int, any, error) {
	if err := a.svc.RemoveOptOutReason(r.Context(), r.PathValue("contact_id"), c.identity, r.URL.Query().Get("reason")); err != nil {
		return 0, nil, err
	}
	return a.optOutsAnswer(r.Context(), nil)
}

type statsAnswer struct {
	Counts map[tasks.State]int64 `json:"counts"`
	Outbox int64                 `json:"outbox"`
	Paused pauseAnswer           `json:"paused"`
}

// GET /v1/stats
func (a *api) stats(r *http.Request, _ *caller, _ []byte) (int, any, error) {
	ctx := r.Context()
	l := a.svc.Ledger()
	counts, err := l.Counts(ctx)
	if err != nil {
		return 0, nil, err
	}
	outbox, err := l.OutboxSize(ctx)
	if err != nil {
		return 0, nil, err
	}
	paused, err := a.pauseAnswer(ctx)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, statsAnswer{Counts: counts, Outbox: outbox, Paused: paused}, nil
}
