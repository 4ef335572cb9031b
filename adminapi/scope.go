package adminapi

import (
	"context"
	"net/http"
	"slices"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/tasks"
)

// Account scopes.
//
// A token may be limited to some accounts (Token.Accounts). A scoped caller
// sees and decides only those accounts' sends: a send of another account is
// answered as if it did not exist (404 not_found, no hint that it does),
// a list or look-up naming another account is 403, and routes that cannot
// tell an account (the provider's chat reads, the global pause) are 403.
// Counts (stats), the pause state and the opt-out list stay readable: they
// hold no message content.

// Scope is the set of accounts a caller may see; nil means every account.
type Scope []string

// Allows reports whether account is in the scope.
func (s Scope) Allows(account string) bool {
	return s == nil || slices.Contains(s, account)
}

// Limited reports whether the scope leaves some accounts out.
func (s Scope) Limited() bool { return s != nil }

func outOfScope(what string) error {
	return apiError{status: http.StatusForbidden, code: "forbidden", message: "this identity is limited to other accounts (" + what + ")"}
}

func sendNotFound(id string) error {
	return apiError{status: http.StatusNotFound, code: "not_found", message: "send " + id + ": not found"}
}

// checkAccount refuses an account outside the caller's scope.
func (c *caller) checkAccount(account string) error {
	if !c.scope.Allows(account) {
		return outOfScope("account_id")
	}
	return nil
}

// visible loads a send and hides it (not found) when its account is outside
// the caller's scope. An unscoped caller costs no read. The account of a
// send never changes, so checking before deciding is safe.
func (a *api) visible(ctx context.Context, c *caller, sendID string) error {
	if !c.scope.Limited() {
		return nil
	}
	rec, err := a.svc.Ledger().Get(ctx, sendID)
	if err != nil {
		return err
	}
	if !c.scope.Allows(rec.Request.AccountID) {
		return sendNotFound(sendID)
	}
	return nil
}

// inScope splits ids into those the caller may decide (returned) and the
// results of the others (filled into out at their index).
func (a *api) inScope(ctx context.Context, c *caller, ids []string, out []approval.DecisionResult) []int {
	var keep []int
	for i, id := range ids {
		if err := a.visible(ctx, c, id); err != nil {
			out[i] = approval.DecisionResult{SendID: id, Err: err}
			continue
		}
		keep = append(keep, i)
	}
	return keep
}

// scopedList checks or fills the account filter of a list for a scoped
// caller: a caller of one account lists it without naming it; a caller of
// several must name one.
func (c *caller) scopedList(account string) (string, error) {
	switch {
	case !c.scope.Limited():
		return account, nil
	case account == "" && len(c.scope) == 1:
		return c.scope[0], nil
	case account == "":
		return "", invalid("account_id", "required", "this identity is limited to some accounts: name one")
	}
	return account, c.checkAccount(account)
}

// checkRequests refuses, item by item, sends to accounts outside the scope.
func (c *caller) checkRequest(req *tasks.SendRequest) error {
	return c.checkAccount(req.AccountID)
}
