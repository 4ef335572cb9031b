package worker

import (
	"fmt"

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

// addPerson makes the opt-out check see the recipient under every form known for them, and
// fail closed where it cannot: person's ids go with the contact ids, and person goes to
// BeginAttempt as an identity (ledger.Identity), which, atomically with the opt-out check:
//
//   - both forms known from the provider's data: records the link, so that an opt-out added
//     with either form covers both, now and later;
//   - one form known, and the ledger knows its other form from an earlier link: checks that id
//     too;
//   - one form known and nothing links it, while some opt-out of the other form is linked to
//     no one: the opt-out check cannot rule the recipient out, so BeginAttempt answers
//     BeginIdentityUnresolved and the send ends in needs_review (identity_unresolved) for a
//     human instead of going out. A recipient opted out under a known form is skipped
//     (opted_out) first.
//
// Done in BeginAttempt rather than here, it costs no round trip of its own, and no opt-out can
// slip in between the check and the attempt's start.
func (x *execution) addPerson(person tasks.Person) {
	for _, id := range person.IDs {
		x.contacts = addContact(x.contacts, id)
	}
	if person.Missing() == tasks.FormOther && !person.Linked() {
		return // no WhatsApp person (a group, another provider's ids)
	}
	x.identities = append(x.identities, ledger.Identity{Phone: person.ID(tasks.FormPhone), LID: person.ID(tasks.FormLID)})
}

// unresolved is the outcome of a send whose recipient BeginAttempt could not tell apart from an
// opt-out linked to no one.
func (x *execution) unresolved(res ledger.BeginResult) outcome {
	x.logger().Warn("recipient known under one id form only; an opt-out of the other form cannot be ruled out",
		zap.String("known_form", res.Unresolved.Other().String()), zap.Int64("unlinked_opt_outs", res.UnlinkedOptOuts))
	return needsReview(tasks.ReasonIdentityUnresolved, fmt.Sprintf(
		"the recipient is known only by its %s id and %d opt-out(s) by %s id are linked to no one: a human must decide",
		res.Unresolved.Other(), res.UnlinkedOptOuts, res.Unresolved))
}
