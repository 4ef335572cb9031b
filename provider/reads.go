package provider

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// GetAccount returns an account and its connection status (accounts_get).
func (c *Client) GetAccount(ctx context.Context, accountID string) (*Account, error) {
	r := &request{op: OpAccountsGet, method: http.MethodGet, path: escapePath("accounts", accountID)}
	if err := checkID("account id", accountID); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	return get(ctx, c, r, decodeAccount)
}

// SyncParams are the options of accounts_sync. Zero values are not sent.
type SyncParams struct {
	ChunkSize int
	Partial   bool
	Before    time.Time
	After     time.Time
}

// SyncAccount starts, or polls, a resynchronisation of an account's history
// (accounts_sync). The provider's reference says WhatsApp does not support it: expect an
// error for which IsNotImplemented is true.
func (c *Client) SyncAccount(ctx context.Context, accountID string, p SyncParams) (*AccountResync, error) {
	q := url.Values{}
	if p.ChunkSize > 0 {
		q.Set("chunk_size", strconv.Itoa(p.ChunkSize))
	}
	if p.Partial {
		q.Set("partial", "true")
	}
	// This route takes epoch milliseconds, unlike the ISO time stamps of the lists.
	if !p.Before.IsZero() {
		q.Set("before", strconv.FormatInt(p.Before.UnixMilli(), 10))
	}
	if !p.After.IsZero() {
		q.Set("after", strconv.FormatInt(p.After.UnixMilli(), 10))
	}
	r := &request{op: OpAccountsSync, method: http.MethodGet, path: escapePath("accounts", accountID, "sync"), query: q}
	if err := checkID("account id", accountID); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	if p.ChunkSize < 0 {
		return nil, c.newError(r, ClassPermanent, fmt.Errorf("%w: chunk size must not be negative", ErrInvalidArgument))
	}
	return get(ctx, c, r, decodeObject[AccountResync])
}

// ListChatsParams select a page of chats. Zero values are not sent; the account type is
// always WHATSAPP.
type ListChatsParams struct {
	AccountID string
	Unread    *bool
	Before    time.Time
	After     time.Time
	Limit     int    // 1–250; 0 for the provider's default (100)
	Cursor    string // from the previous page
}

// ListChats returns one page of chats (chats_list).
func (c *Client) ListChats(ctx context.Context, p ListChatsParams) (*ChatList, error) {
	q := url.Values{"account_type": {"WHATSAPP"}}
	if p.AccountID != "" {
		q.Set("account_id", p.AccountID)
	}
	if p.Unread != nil {
		q.Set("unread", strconv.FormatBool(*p.Unread))
	}
	setPage(q, p.Before, p.After, p.Limit, p.Cursor)
	r := &request{op: OpChatsList, method: http.MethodGet, path: "/chats", query: q}
	if err := checkLimit(p.Limit); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	return get(ctx, c, r, func(data []byte) (*ChatList, error) {
		object, items, cursor, err := decodeList[Chat](data)
		return &ChatList{Object: object, Items: items, Cursor: cursor}, err
	})
}

// Chats iterates over the chats of every page from p.Cursor on. It stops at the first
// error, which it yields.
func (c *Client) Chats(ctx context.Context, p ListChatsParams) iter.Seq2[Chat, error] {
	return pages(p.Cursor, func(cursor string) ([]Chat, string, error) {
		p.Cursor = cursor
		page, err := c.ListChats(ctx, p)
		if err != nil {
			return nil, "", err
		}
		return page.Items, page.Cursor, nil
	}, c.cursorLoop(OpChatsList, "/chats"))
}

// GetChat returns a chat with its last message (chats_get). accountID is needed only when
// chatID is a provider id rather than the provider's own chat id.
func (c *Client) GetChat(ctx context.Context, chatID, accountID string) (*Chat, error) {
	q := url.Values{}
	if accountID != "" {
		q.Set("account_id", accountID)
	}
	r := &request{op: OpChatsGet, method: http.MethodGet, path: escapePath("chats", chatID), query: q}
	if err := checkID("chat id", chatID); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	return get(ctx, c, r, decodeChat)
}

// ListMessagesParams select a page of a chat's messages. Zero values are not sent.
type ListMessagesParams struct {
	Before   time.Time
	After    time.Time
	Limit    int    // 1–250; 0 for the provider's default (100)
	Cursor   string // from the previous page
	SenderID string
}

// ListMessages returns one page of a chat's messages, newest first (chats_messages_list).
func (c *Client) ListMessages(ctx context.Context, chatID string, p ListMessagesParams) (*MessageList, error) {
	q := url.Values{}
	if p.SenderID != "" {
		q.Set("sender_id", p.SenderID)
	}
	setPage(q, p.Before, p.After, p.Limit, p.Cursor)
	r := &request{op: OpChatsMessagesList, method: http.MethodGet, path: escapePath("chats", chatID, "messages"), query: q}
	if err := checkID("chat id", chatID); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	if err := checkLimit(p.Limit); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	return get(ctx, c, r, func(data []byte) (*MessageList, error) {
		object, items, cursor, err := decodeList[Message](data)
		return &MessageList{Object: object, Items: items, Cursor: cursor}, err
	})
}

// Messages iterates over a chat's messages, newest first, across pages from p.Cursor on. It
// stops at the first error, which it yields.
func (c *Client) Messages(ctx context.Context, chatID string, p ListMessagesParams) iter.Seq2[Message, error] {
	return pages(p.Cursor, func(cursor string) ([]Message, string, error) {
		p.Cursor = cursor
		page, err := c.ListMessages(ctx, chatID, p)
		if err != nil {
			return nil, "", err
		}
		return page.Items, page.Cursor, nil
	}, c.cursorLoop(OpChatsMessagesList, escapePath("chats", chatID, "messages")))
}

// ListAttendeesParams select a page of a chat's attendees. Zero values are not sent.
type ListAttendeesParams struct {
	Limit  int    // 1–250; 0 for the provider's default
	Cursor string // from the previous page
}

// ListAttendees returns one page of a chat's attendees (chats_attendees_list).
func (c *Client) ListAttendees(ctx context.Context, chatID string, p ListAttendeesParams) (*AttendeeList, error) {
	q := url.Values{}
	setPage(q, time.Time{}, time.Time{}, p.Limit, p.Cursor)
	r := &request{op: OpChatsAttendeesList, method: http.MethodGet, path: escapePath("chats", chatID, "attendees"), query: q}
	if err := checkID("chat id", chatID); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	if err := checkLimit(p.Limit); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	return get(ctx, c, r, func(data []byte) (*AttendeeList, error) {
		object, items, cursor, err := decodeList[Attendee](data)
		return &AttendeeList{Object: object, Items: items, Cursor: cursor}, err
	})
}

// Attendees iterates over a chat's attendees across pages from p.Cursor on. It stops at the
// first error, which it yields.
func (c *Client) Attendees(ctx context.Context, chatID string, p ListAttendeesParams) iter.Seq2[Attendee, error] {
	return pages(p.Cursor, func(cursor string) ([]Attendee, string, error) {
		p.Cursor = cursor
		page, err := c.ListAttendees(ctx, chatID, p)
		if err != nil {
			return nil, "", err
		}
		return page.Items, page.Cursor, nil
	}, c.cursorLoop(OpChatsAttendeesList, escapePath("chats", chatID, "attendees")))
}

func setPage(q url.Values, before, after time.Time, limit int, cursor string) {
	if !before.IsZero() {
		q.Set("before", FormatTime(before))
	}
	if !after.IsZero() {
		q.Set("after", FormatTime(after))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
}

// get runs a read and decodes its answer. A 2xx answer that does not decode is a permanent
// error: the provider changed its contract (or something in front of it answers instead),
// and asking again will not help.
func get[T any](ctx context.Context, c *Client, r *request, decode func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := c.do(ctx, r)
	if err != nil {
		return zero, err
	}
	v, derr := decode(data)
	if derr != nil {
		e := c.newError(r, ClassPermanent, fmt.Errorf("%w: %v", ErrDecode, derr))
		e.Status = http.StatusOK
		return zero, e
	}
	return v, nil
}

// cursorLoop returns the error for a provider that hands back a cursor it already gave:
// following it would never end.
func (c *Client) cursorLoop(op, path string) func() error {
	return func() error {
		r := &request{op: op, method: http.MethodGet, path: path}
		return c.newError(r, ClassPermanent, fmt.Errorf("%w: the provider repeated a page cursor", ErrDecode))
	}
}

// pages iterates over the items of successive pages, starting at cursor, until a page has
// no next cursor.
func pages[T any](cursor string, fetch func(cursor string) ([]T, string, error), loopErr func() error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		seen := map[string]bool{}
		for {
			items, next, err := fetch(cursor)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, item := range items {
				if !yield(item, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if seen[next] || next == cursor {
				yield(zero, loopErr())
				return
			}
			seen[next] = true
			cursor = next
		}
	}
}
