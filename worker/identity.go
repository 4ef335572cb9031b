package worker

import (
	"context"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// personOfChat is the WhatsApp person a single chat is with, from what the provider returned
// about the chat: its attendee_provider_id and its provider_id (a one-to-one chat's WhatsApp id is
// the other person's), plus ids the caller already knows name the same person (the attendee id a
// chats_create asked for, when it found this chat). A group or channel is no one person.
func personOfChat(chat *provider.Chat, also ...string) tasks.Person {
	if chat == nil || chat.Type != provider.ChatSingle {
		return tasks.Person{}
	}
	return tasks.PersonOf(append([]string{chat.AttendeeProviderID, chat.ProviderID}, also...)...)
}

// guardIdentity makes the opt-out check see the recipient under every form known for them, and
// fails closed where it cannot:
//
//   - both forms known from the provider's data: the link is recorded (ledger.LinkIdentity), so
//     that an opt-out added with either form covers both, now and later;
//   - one form known, and the ledger knows its other form from an earlier link: that id is
//     checked too;
//   - one form known and nothing links it, while some opt-out of the other form is not linked
//     to anyone: the opt-out check cannot rule the recipient out, so the send ends in
//     needs_review (identity_unresolved) for a human instead of going out. A recipient already
//     opted out under a known form is left to BeginAttempt's check (skipped opted_out).
//   - one form known, nothing linked and no unlinked opt-out of the other form yet: the marker
//     of that form (ledger.UnlinkedMarker) goes with the contact ids, so that one added between
//     these checks and the attempt's start refuses the send in BeginAttempt.
//
// Every id ends up in x.contacts, which BeginAttempt re-checks atomically.
func (x *execution) guardIdentity(ctx context.Context, person tasks.Person) (outcome, bool) {
	for _, id := range person.IDs {
		x.contacts = addContact(x.contacts, id)
	}
	if person.Linked() {
		if err := x.w.l.LinkIdentity(ctx, person.ID(tasks.FormPhone), person.ID(tasks.FormLID)); err != nil {
			return infraError(err), true
		}
		return outcome{}, false
	}
	missing := person.Missing()
	if missing == tasks.FormOther {
		return outcome{}, false // no WhatsApp person (a group, another provider's ids)
	}
	known := person.ID(missing.Other())
	other, n, err := x.w.l.IdentityOf(ctx, known, missing)
	if err != nil {
		return infraError(err), true
	}
	if other != "" {
		x.contacts = addContact(x.contacts, other)
		return outcome{}, false
	}
	if n == 0 {
		// Nothing to rule out now. BeginAttempt also checks the marker the opt-out set holds
		// while an opt-out of the missing form is unlinked: one added from now on refuses the
		// send there (skipped opted_out), atomically with the attempt's start.
		x.contacts = append(x.contacts, ledger.UnlinkedMarker(missing))
		return outcome{}, false
	}
	ids := slices.DeleteFunc(slices.Clone(x.contacts), func(id string) bool {
		return id == ledger.UnlinkedMarker(tasks.FormPhone) || id == ledger.UnlinkedMarker(tasks.FormLID)
	})
	opted, err := x.w.l.IsOptedOut(ctx, ids...)
	if err != nil {
		return infraError(err), true
	}
	if opted {
		return outcome{}, false // BeginAttempt skips it as opted_out
	}
	x.logger().Warn("recipient known under one id form only; an opt-out of the other form cannot be ruled out",
		zap.String("known_form", missing.Other().String()), zap.Int64("unlinked_opt_outs", n))
	return needsReview(tasks.ReasonIdentityUnresolved, fmt.Sprintf(
		"the recipient is known only by its %s id and %d opt-out(s) by %s id are linked to no one: a human must decide",
		missing.Other(), n, missing)), true
}
