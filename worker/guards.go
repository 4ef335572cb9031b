package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// WhatsApp's windows for changing a sent message, with the safety margins we keep: an edit or
// delete that might land just after the window would be answered "success" without effect.
const (
	EditWindow         = 15 * time.Minute
	EditWindowMargin   = 30 * time.Second
	DeleteWindow       = 60 * time.Hour
	DeleteWindowMargin = 30 * time.Minute
	// maxScan bounds the messages read to find one message in a chat.
	maxScan = 5000
)

// window is the send window check, before any provider read or rate-limit slot: outside the
// window the send waits; after not_after it expires.
func (x *execution) window() (outcome, bool) {
	now := x.w.opts.Now()
	if open, exp := x.rec.Request.Window.NextOpen(now); exp {
		return expired(tasks.ReasonWindowExpired, "window.not_after has passed"), true
	} else if open.After(now) {
		return wait(open, tasks.ReasonWaitWindow, ""), true
	}
	return outcome{}, false
}

// guards runs the checks that end or delay a send before any attempt, each with its reason
// code. They run once the send's rate-limit slot has come, right before sending, and read the
// provider (never a sending call); the attachments are fetched last.
func (x *execution) guards(ctx context.Context) (outcome, bool) {
	req := &x.rec.Request
	now := x.w.opts.Now()

	// Account health: an unhealthy account trips its breaker and the send waits; it does not
	// fail. Only a status read just now trips it: a cached one may predate a recovery that
	// another replica's probe saw.
	acct, fresh, err := x.w.health.get(ctx, x.w.p, req.AccountID)
	if err == nil && !acct.Healthy() && !fresh {
		acct, err = x.w.health.refresh(ctx, x.w.p, req.AccountID)
	}
	if err != nil {
		return x.failedRead(ctx, phaseAccount, err), true
	}
	if !acct.Healthy() {
		if err := x.w.breaker.open(ctx, req.AccountID, acct.Status()); err != nil {
			x.logger().Warn("account breaker not opened", zap.Error(err))
		}
		return x.accountDown(acct.Status()), true
	}

	// Warm recipient.
	var o outcome
	var stop bool
	switch x.op {
	case tasks.OpSendMessage:
		o, stop = x.guardChat(ctx)
	case tasks.OpCreateChat:
		o, stop = x.guardAttendees(ctx)
	case tasks.OpReaction, tasks.OpEdit, tasks.OpDelete:
		o, stop = x.guardMessage(ctx, now)
	}
	if stop {
		return o, true
	}

	// The contact's will: no send after they wrote.
	if o, stop := x.guardReplied(ctx); stop {
		return o, true
	}

	// Attachments, last: a fetch problem is decided here, never as an unknown outcome.
	if len(req.Attachments) > 0 {
		files, err := x.w.fetcher.FetchAll(ctx, req.Attachments)
		if err != nil {
			return x.failedRead(ctx, phaseAttachments, err), true
		}
		x.files = files
	}
	return outcome{}, false
}

// guardChat: chats_messages_send only into an existing chat of the account.
func (x *execution) guardChat(ctx context.Context) (outcome, bool) {
	req := &x.rec.Request
	chat, err := x.w.p.GetChat(ctx, req.ChatID, req.AccountID)
	if err != nil {
		return x.failedRead(ctx, phaseChat, err), true
	}
	if chat.AccountID != "" && chat.AccountID != req.AccountID {
		return skipped(tasks.ReasonAccountMismatch, "the chat belongs to another account"), true
	}
	if o, stop := x.guardCapabilities(chat); stop {
		return o, true
	}
	x.chat = chat
	x.contacts = contactIDs(req.ChatID, chat)
	x.watermark = watermarkOf(chat)
	x.addPerson(personOfChat(chat))
	return outcome{}, false
}

// guardCapabilities refuses, before any sending call, what the chat says it does not allow: a
// read-only chat (read_only 1 or 2) takes no message, reaction, edit or delete, and a chat whose
// disabledFeatures lists "reactions" takes no reaction.
func (x *execution) guardCapabilities(chat *provider.Chat) (outcome, bool) {
	if chat.ReadOnly {
		return skipped(tasks.ReasonChatReadOnly, "the chat is read-only"), true
	}
	if x.op == tasks.OpReaction && slices.Contains(chat.DisabledFeatures, provider.FeatureReactions) {
		return skipped(tasks.ReasonFeatureDisabled, "the chat disables reactions"), true
	}
	return outcome{}, false
}

// guardAttendees: chats_create only to attendees the account already has a chat with. Raw
// numbers and unknown ids are cold: refused before any sending call.
func (x *execution) guardAttendees(ctx context.Context) (outcome, bool) {
	req := &x.rec.Request
	x.contacts, x.identities = nil, nil
	for i, id := range req.AttendeeIDs {
		if tasks.LooksLikePhone(id) {
			return skipped(tasks.ReasonColdRecipient, fmt.Sprintf("attendees_ids[%d] is a raw phone number", i)), true
		}
		chat, ok, err := x.w.known.lookup(ctx, x.w.p, req.AccountID, id, false)
		if err != nil {
			return x.failedRead(ctx, phaseChats, err), true
		}
		if !ok {
			return skipped(tasks.ReasonColdRecipient, fmt.Sprintf("attendees_ids[%d] has no chat with the account", i)), true
		}
		if o, stop := x.guardCapabilities(&chat); stop {
			return o, true
		}
		if x.chat == nil {
			c := chat
			x.chat = &c
			x.watermark = watermarkOf(&c)
		}
		x.contacts = addContact(x.contacts, id)
		for _, c := range contactIDs("", &chat) {
			x.contacts = addContact(x.contacts, c)
		}
		x.addPerson(personOfChat(&chat, id))
	}
	return outcome{}, false
}

// guardMessage: reactions, edits and deletes only on a message of the account that can be
// found, edits and deletes only of our own messages and within WhatsApp's windows.
func (x *execution) guardMessage(ctx context.Context, now time.Time) (outcome, bool) {
	req := &x.rec.Request
	chat, msg, o, stop := x.locateMessage(ctx)
	if stop {
		return o, true
	}
	if msg.AccountID != "" && msg.AccountID != req.AccountID {
		return skipped(tasks.ReasonAccountMismatch, "the message belongs to another account"), true
	}
	if msg.Deleted {
		return skipped(tasks.ReasonMessageNotFound, "the message was deleted"), true
	}
	if o, stop := x.guardCapabilities(chat); stop {
		return o, true
	}
	switch x.op {
	case tasks.OpEdit:
		if !msg.IsSender {
			return skipped(tasks.ReasonNotOwnMessage, "only our own messages can be edited"), true
		}
		if !editable(msg, now) {
			return skipped(tasks.ReasonEditWindowClosed, "more than 15 minutes after the message"), true
		}
	case tasks.OpDelete:
		if !msg.IsSender {
			return skipped(tasks.ReasonNotOwnMessage, "only our own messages can be deleted"), true
		}
		if now.Sub(msg.Timestamp.Time) > DeleteWindow-DeleteWindowMargin {
			return skipped(tasks.ReasonDeleteWindowClosed, "past the delete-for-everyone window"), true
		}
	}
	x.chat, x.msg = chat, msg
	x.contacts = contactIDs(req.ChatID, chat)
	x.addPerson(personOfChat(chat))
	return outcome{}, false
}

func editable(msg *provider.Message, now time.Time) bool {
	return now.Sub(msg.Timestamp.Time) <= EditWindow-EditWindowMargin
}

// locateMessage finds the target message of a reaction, edit or delete: in chat_id when given,
// else in the chat of the send that created it (the ledger's message index).
func (x *execution) locateMessage(ctx context.Context) (*provider.Chat, *provider.Message, outcome, bool) {
	req := &x.rec.Request
	chatID := req.ChatID
	if chatID == "" {
		sendID, err := x.w.l.SendByMessage(ctx, req.MessageID)
		if errors.Is(err, ledger.ErrNotFound) {
			return nil, nil, skipped(tasks.ReasonMessageNotFound, "no chat_id given and the message is not one sendworker sent"), true
		}
		if err != nil {
			return nil, nil, infraError(err), true
		}
		other, err := x.w.l.Get(ctx, sendID)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return nil, nil, infraError(err), true
		}
		if other == nil || other.Result == nil || other.Result.ChatID == "" {
			return nil, nil, skipped(tasks.ReasonMessageNotFound, "the chat of the message is unknown"), true
		}
		chatID = other.Result.ChatID
	}
	chat, err := x.w.p.GetChat(ctx, chatID, req.AccountID)
	if err != nil {
		return nil, nil, x.failedRead(ctx, phaseChat, err), true
	}
	if chat.AccountID != "" && chat.AccountID != req.AccountID {
		return nil, nil, skipped(tasks.ReasonAccountMismatch, "the chat belongs to another account"), true
	}
	msg, found, err := x.findMessage(ctx, chat.ID, req.MessageID)
	if err != nil {
		return nil, nil, x.failedRead(ctx, phaseMessages, err), true
	}
	if !found {
		return nil, nil, skipped(tasks.ReasonMessageNotFound, "the message is not in the chat"), true
	}
	return chat, msg, outcome{}, false
}

// findMessage pages a chat's messages (newest first) for one id.
func (x *execution) findMessage(ctx context.Context, chatID, messageID string) (*provider.Message, bool, error) {
	n := 0
	for m, err := range x.w.p.Messages(ctx, chatID, provider.ListMessagesParams{Limit: 250}) {
		if err != nil {
			return nil, false, err
		}
		if m.ID == messageID || (m.ProviderID != "" && m.ProviderID == messageID) {
			return &m, true, nil
		}
		if n++; n >= maxScan {
			break
		}
	}
	return nil, false, nil
}

// guardReplied: skip when the contact wrote in the chat after stop_if_replied_since.
func (x *execution) guardReplied(ctx context.Context) (outcome, bool) {
	since := x.rec.Request.StopIfRepliedSince
	if since == nil || x.chat == nil {
		return outcome{}, false
	}
	for m, err := range x.w.p.Messages(ctx, x.chat.ID, provider.ListMessagesParams{After: *since, Limit: 250}) {
		if err != nil {
			return x.failedRead(ctx, phaseMessages, err), true
		}
		if !m.Timestamp.After(*since) {
			break // newest first: the rest is older
		}
		if !bool(m.IsSender) && !bool(m.IsEvent) {
			return skipped(tasks.ReasonContactReplied, "the contact wrote after stop_if_replied_since"), true
		}
	}
	return outcome{}, false
}

// contactIDs are the ids of a chat checked against the opt-out list, normalized: the chat id as
// asked and as the provider names it, and the provider ids of the person (or group).
func contactIDs(asked string, chat *provider.Chat) []string {
	var out []string
	for _, id := range []string{asked, chat.ID, chat.ProviderID, chat.AttendeeProviderID} {
		out = addContact(out, id)
	}
	return out
}

// addContact appends id, normalized, unless it is empty or already there.
func addContact(ids []string, id string) []string {
	id = tasks.NormalizeID(id)
	if id == "" || slices.Contains(ids, id) {
		return ids
	}
	return append(ids, id)
}
