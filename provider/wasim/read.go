package wasim

import (
	"net/http"
	"net/url"
	"slices"
)

// serveRead answers the six read operations. Reads work whatever the account status: the
// provider keeps answering them, possibly with stale data, for disconnected accounts.
func (s *Sim) serveRead(op, id string, q url.Values) (any, *problem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch op {
	case opAccountsGet:
		a, ok := s.accounts[id]
		if !ok {
			return nil, newProblem(http.StatusNotFound, "resource_not_found", "account %q not found", id)
		}
		return a.wire(), nil
	case opAccountsSync:
		if _, ok := s.accounts[id]; !ok {
			return nil, newProblem(http.StatusNotFound, "resource_not_found", "account %q not found", id)
		}
		// Every simulated account is a WhatsApp account, and the provider does not resync those.
		return nil, newProblem(http.StatusNotImplemented, "feature_not_implemented", "account resync is not available for WhatsApp accounts")
	case opChatsList:
		return s.chatsList(q)
	case opChatsGet:
		c, p := s.resolveChat(id, q.Get("account_id"))
		if p != nil {
			return nil, p
		}
		out := wireChatDetail{wireChat: c.wire()}
		if n := len(c.messages); n > 0 {
			m := s.wireMessage(c.messages[n-1])
			out.LastMessage = &m
		}
		return out, nil
	case opChatsMessagesList:
		return s.messagesList(id, q)
	case opChatsAttendeesList:
		c, p := s.resolveChat(id, q.Get("account_id"))
		if p != nil {
			return nil, p
		}
		out := wireAttendeeList{Object: "ChatAttendeeList", Items: []wireAttendee{s.accounts[c.accountID].self.wire()}}
		for _, at := range c.contacts {
			out.Items = append(out.Items, at.wire())
		}
		return out, nil
	}
	return nil, newProblem(http.StatusNotFound, "resource_not_found", "unknown operation %q", op)
}

// resolveChat finds a chat by id or, when accountID is given, by its provider id within that
// account (as the provider documents for chats_get). A chat of another account is a mismatch.
// Callers hold s.mu.
func (s *Sim) resolveChat(id, accountID string) (*chat, *problem) {
	c, ok := s.chats[id]
	if !ok && accountID != "" {
		for _, cand := range s.chatList {
			if cand.accountID == accountID && cand.providerID == id {
				c, ok = cand, true
				break
			}
		}
	}
	if !ok {
		return nil, newProblem(http.StatusNotFound, "resource_not_found", "chat %q not found", id)
	}
	if accountID != "" && c.accountID != accountID {
		return nil, newProblem(http.StatusForbidden, "account_mismatch", "chat %q does not belong to account %q", id, accountID)
	}
	return c, nil
}

// chatsList answers GET /chats. An unknown account_id filter matches nothing (an empty list,
// not a 404), as a filter would. Callers hold s.mu.
func (s *Sim) chatsList(q url.Values) (any, *problem) {
	lq, err := parseListQuery(q)
	if err != nil {
		return nil, newProblem(http.StatusBadRequest, "invalid_parameters", "%v", err)
	}
	var unread *bool
	switch v := q.Get("unread"); v {
	case "":
	case "true", "1":
		t := true
		unread = &t
	case "false", "0":
		f := false
		unread = &f
	default:
		return nil, newProblem(http.StatusBadRequest, "invalid_parameters", "unread: want true or false, got %q", v)
	}
	accountType := q.Get("account_type")
	switch accountType {
	case "", "WHATSAPP", "LINKEDIN", "SLACK", "TWITTER", "MESSENGER", "INSTAGRAM", "TELEGRAM":
	default:
		return nil, newProblem(http.StatusBadRequest, "invalid_parameters", "account_type: unknown type %q", accountType)
	}
	accountID := q.Get("account_id")
	var items []keyed[*chat]
	for _, c := range s.chatList {
		at, seq := c.activity()
		switch {
		case accountType != "" && accountType != "WHATSAPP":
			continue
		case accountID != "" && c.accountID != accountID:
			continue
		case unread != nil && (c.unread > 0) != *unread:
			continue
		case !lq.keep(at):
			continue
		}
		items = append(items, keyed[*chat]{item: c, pos: position{at: at, seq: seq}})
	}
	sortNewestFirst(items)
	// Render only the page: a benchmark seed can hold many thousands of chats.
	chats, cursor := page(items, lq)
	out := make([]wireChat, 0, len(chats))
	for _, c := range chats {
		out = append(out, c.wire())
	}
	return wireList{Object: "ChatList", Items: out, Cursor: cursor}, nil
}

// messagesList answers GET /chats/{id}/messages, newest first. sender_id matches the sender's
// provider id or attendee id. Callers hold s.mu.
func (s *Sim) messagesList(id string, q url.Values) (any, *problem) {
	c, p := s.resolveChat(id, q.Get("account_id"))
	if p != nil {
		return nil, p
	}
	lq, err := parseListQuery(q)
	if err != nil {
		return nil, newProblem(http.StatusBadRequest, "invalid_parameters", "%v", err)
	}
	sender := q.Get("sender_id")
	items := make([]keyed[*message], 0, len(c.messages))
	for i := len(c.messages) - 1; i >= 0; i-- {
		m := c.messages[i]
		if sender != "" && m.SenderID != sender && m.SenderAttendeeID != sender {
			continue
		}
		if !lq.keep(m.Timestamp) {
			continue
		}
		items = append(items, keyed[*message]{item: m, pos: position{at: m.Timestamp, seq: m.seq}})
	}
	msgs, cursor := page(items, lq)
	out := make([]wireMessage, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, s.wireMessage(m))
	}
	return wireList{Object: "MessageList", Items: out, Cursor: cursor}, nil
}

func sortNewestFirst[T any](items []keyed[T]) {
	slices.SortFunc(items, func(a, b keyed[T]) int {
		switch {
		case b.pos.older(a.pos):
			return -1
		case a.pos.older(b.pos):
			return 1
		}
		return 0
	})
}
