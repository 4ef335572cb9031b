package adminapi

import (
	"net/http"

	"github.com/sendworker/sendworker/provider"
)

// providerPageLimit is the provider's own page cap.
const providerPageLimit = 250

// page is a provider list as the provider's wire shape has it:
// {"object","items","cursor"} (sendctl decodes it into provider.*List).
type page[T any] struct {
	Object string `json:"object"`
	Items  []T    `json:"items"`
	Cursor string `json:"cursor"`
}

func newPage[T any](object string, items []T, cursor string) page[T] {
	if items == nil {
		items = []T{}
	}
	return page[T]{Object: object, Items: items, Cursor: cursor}
}

func (a *api) providerOrErr() (ProviderReader, error) {
	if a.provider == nil {
		return nil, apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "provider look-ups are not configured"}
	}
	return a.provider, nil
}

// GET /v1/provider/accounts/{account_id}
func (a *api) providerAccount(r *http.Request, c *caller, _ []byte) (int, any, error) {
	p, err := a.providerOrErr()
	if err != nil {
		return 0, nil, err
	}
	if err := parseQuery(r).err(); err != nil {
		return 0, nil, err
	}
	if err := c.checkAccount(r.PathValue("account_id")); err != nil {
		return 0, nil, err
	}
	acct, err := p.GetAccount(r.Context(), r.PathValue("account_id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, acct, nil
}

// GET /v1/provider/chats?account_id=&limit=&cursor=
func (a *api) providerChats(r *http.Request, c *caller, _ []byte) (int, any, error) {
	p, err := a.providerOrErr()
	if err != nil {
		return 0, nil, err
	}
	q := parseQuery(r, "account_id", "limit", "cursor")
	params := provider.ListChatsParams{AccountID: q.get("account_id"), Limit: q.limit(providerPageLimit), Cursor: q.cursor()}
	if err := q.err(); err != nil {
		return 0, nil, err
	}
	if params.AccountID, err = c.scopedList(params.AccountID); err != nil {
		return 0, nil, err
	}
	list, err := p.ListChats(r.Context(), params)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newPage(list.Object, list.Items, list.Cursor), nil
}

// GET /v1/provider/chats/{chat_id}/messages?limit=&cursor=
func (a *api) providerMessages(r *http.Request, c *caller, _ []byte) (int, any, error) {
	p, err := a.providerOrErr()
	if err != nil {
		return 0, nil, err
	}
	if c.scope.Limited() {
		// A chat id does not say its account without a look-up: the console
		// shows a scoped approver the conversations of the sends it may see.
		return 0, nil, outOfScope("chat reads")
	}
	q := parseQuery(r, "limit", "cursor")
	params := provider.ListMessagesParams{Limit: q.limit(providerPageLimit), Cursor: q.cursor()}
	if err := q.err(); err != nil {
		return 0, nil, err
	}
	list, err := p.ListMessages(r.Context(), r.PathValue("chat_id"), params)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newPage(list.Object, list.Items, list.Cursor), nil
}

// GET /v1/provider/chats/{chat_id}/attendees?limit=&cursor=
func (a *api) providerAttendees(r *http.Request, c *caller, _ []byte) (int, any, error) {
	p, err := a.providerOrErr()
	if err != nil {
		return 0, nil, err
	}
	if c.scope.Limited() {
		// A chat id does not say its account without a look-up: the console
		// shows a scoped approver the conversations of the sends it may see.
		return 0, nil, outOfScope("chat reads")
	}
	q := parseQuery(r, "limit", "cursor")
	params := provider.ListAttendeesParams{Limit: q.limit(providerPageLimit), Cursor: q.cursor()}
	if err := q.err(); err != nil {
		return 0, nil, err
	}
	list, err := p.ListAttendees(r.Context(), r.PathValue("chat_id"), params)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newPage(list.Object, list.Items, list.Cursor), nil
}
