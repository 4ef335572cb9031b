package worker

import (
	"context"
	"sync"
	"time"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// healthCache remembers account status for a short while: every send of an account checks it,
// and the provider answers the same for all of them.
type healthCache struct {
	ttl     time.Duration
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]healthEntry
}

type healthEntry struct {
	acct *provider.Account
	at   time.Time
}

// get returns the account, from the cache when it is fresh enough; fresh reports that it was
// read from the provider just now.
func (c *healthCache) get(ctx context.Context, p Provider, accountID string) (acct *provider.Account, fresh bool, err error) {
	if c.ttl > 0 {
		c.mu.Lock()
		e, ok := c.entries[accountID]
		c.mu.Unlock()
		if ok && c.now().Sub(e.at) < c.ttl {
			return e.acct, false, nil
		}
	}
	acct, err = c.refresh(ctx, p, accountID)
	return acct, err == nil, err
}

// refresh reads the account from the provider and caches it.
func (c *healthCache) refresh(ctx context.Context, p Provider, accountID string) (*provider.Account, error) {
	acct, err := p.GetAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if c.ttl > 0 {
		c.mu.Lock()
		c.entries[accountID] = healthEntry{acct: acct, at: c.now()}
		c.mu.Unlock()
	}
	return acct, nil
}

// forget drops an account's cached status, e.g. after the provider said it is disconnected.
func (c *healthCache) forget(accountID string) {
	c.mu.Lock()
	delete(c.entries, accountID)
	c.mu.Unlock()
}

// attendeeCache maps, per account, the attendee provider ids that have a single chat with the
// account to that chat: the "already known" contacts chats_create may write to. Building it
// walks every chat of the account, so it is kept briefly and rebuilt on a miss only when it is
// more than minRebuild old (a contact who just got a chat is found; a storm of cold ids does not
// walk the chat list once each).
type attendeeCache struct {
	ttl      time.Duration
	now      func() time.Time
	mu       sync.Mutex
	accounts map[string]*attendeeEntry
}

const minRebuild = time.Second

type attendeeEntry struct {
	mu    sync.Mutex // one rebuild at a time per account
	at    time.Time
	chats map[string]provider.Chat
}

func (c *attendeeCache) entry(accountID string) *attendeeEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.accounts[accountID]
	if !ok {
		e = &attendeeEntry{}
		c.accounts[accountID] = e
	}
	return e
}

// lookup returns the account's single chat with the attendee (under any id the chat shows for
// the person), and whether there is one.
// fresh forces a rebuild (reconciliation reads the current state, never the cache).
func (c *attendeeCache) lookup(ctx context.Context, p Provider, accountID, attendee string, fresh bool) (provider.Chat, bool, error) {
	attendee = tasks.NormalizeID(attendee)
	e := c.entry(accountID)
	e.mu.Lock()
	defer e.mu.Unlock()
	age := c.now().Sub(e.at)
	if !fresh && e.chats != nil && age < c.ttl {
		if chat, ok := e.chats[attendee]; ok {
			return chat, true, nil
		}
		if age < minRebuild {
			return provider.Chat{}, false, nil
		}
	}
	chats := map[string]provider.Chat{}
	for chat, err := range p.Chats(ctx, provider.ListChatsParams{AccountID: accountID, Limit: 250}) {
		if err != nil {
			return provider.Chat{}, false, err
		}
		if chat.Type != provider.ChatSingle || chat.AttendeeProviderID == "" || (chat.AccountID != "" && chat.AccountID != accountID) {
			continue
		}
		// Under every id the chat shows for the person: a chat listed under @lid is found by
		// the phone form too when the provider names both (see personOfChat).
		for _, id := range append(personOfChat(&chat).IDs, tasks.NormalizeID(chat.AttendeeProviderID)) {
			if _, dup := chats[id]; !dup {
				chats[id] = chat
			}
		}
	}
	e.chats, e.at = chats, c.now()
	chat, ok := chats[attendee]
	return chat, ok, nil
}
