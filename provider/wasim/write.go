package wasim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

const maxJSONBodyBytes = 64 << 10

// jsonBody is the body of messages_reaction and messages_edit. Unknown keys are ignored.
type jsonBody struct {
	Reaction *string `json:"reaction"`
	Text     *string `json:"text"`
}

// sendingResult is what applying a sending call produced.
type sendingResult struct {
	status int
	body   any
}

// serveSending handles the five calls a contact can see. Each is recorded as a Delivery whatever
// happens to it, and the whole check-and-apply runs under one lock so that concurrent calls
// cannot interleave halfway.
func (s *Sim) serveSending(w http.ResponseWriter, r *http.Request, op, pathID string, d draw) {
	del := Delivery{Operation: op}
	var form sendForm
	var body jsonBody
	var parseErr *problem
	switch op {
	case opChatsMessagesSend, opChatsCreate:
		// The body is read even when a fault will answer, so the Delivery shows what was sent.
		form, parseErr = readSendForm(w, r)
		del.Text, del.AccountID, del.Attachments = form.text, form.accountID, form.files
		del.AttendeeIDs = form.attendeeIDs
		if op == opChatsMessagesSend {
			del.ChatID = pathID
		}
	case opMessagesReaction, opMessagesEdit:
		body, parseErr = readJSONBody(r)
		if body.Reaction != nil {
			del.Reaction = *body.Reaction
		}
		if body.Text != nil {
			del.Text = *body.Text
		}
		del.MessageID = pathID
	case opMessagesDelete:
		del.MessageID = pathID
	}

	if d.kind == faultLate && parseErr == nil {
		s.serveLate(w, r, op, pathID, form, body, del)
		return
	}

	s.mu.Lock()
	var res sendingResult
	var p *problem
	switch {
	case d.kind.beforeState():
		p = d.problem()
	case parseErr != nil:
		p = parseErr
	default:
		res, p = s.apply(op, pathID, form, body, &del)
	}
	switch {
	case d.kind.beforeState():
		del.Outcome = fmt.Sprintf("error_%d", p.status)
	case p != nil:
		del.Outcome = "rejected_" + p.slug
	case d.kind == fault504:
		del.Outcome = "504"
	case d.kind == faultDrop:
		del.Outcome = "dropped"
	default:
		del.Outcome = "ok"
	}
	s.appendDelivery(del)
	s.mu.Unlock()

	switch {
	case d.kind.beforeState():
		writeFault(w, r, d)
	case p != nil:
		writeProblem(w, r, p)
	case d.kind == fault504:
		writeFault(w, r, d)
	case d.kind == faultDrop:
		dropConnection(w)
	default:
		writeJSON(w, res.status, res.body)
	}
}

// apply performs a parsed sending call. Callers hold s.mu.
func (s *Sim) apply(op, pathID string, form sendForm, body jsonBody, del *Delivery) (sendingResult, *problem) {
	switch op {
	case opChatsMessagesSend:
		return s.applySend(pathID, form, del)
	case opChatsCreate:
		return s.applyCreate(form, del)
	case opMessagesReaction:
		return s.applyReaction(pathID, body, del)
	case opMessagesEdit:
		return s.applyEdit(pathID, body, del)
	case opMessagesDelete:
		return s.applyDelete(pathID, del)
	}
	return sendingResult{}, newProblem(http.StatusNotFound, "resource_not_found", "no sending operation %s", op)
}

// serveLate is the late-store fault: the call is recorded now (outcome "late", not applied),
// applied Faults.LateStoreDelay later whatever the client does, and never answered: the
// connection is held until the store happened or the client gave up, then closed. The
// delivery then shows the store: outcome "late_stored" (or "late_rejected_<slug>" when the
// provider's rules refused it by then) and Applied.
func (s *Sim) serveLate(w http.ResponseWriter, r *http.Request, op, pathID string, form sendForm, body jsonBody, del Delivery) {
	s.mu.Lock()
	del.Outcome = "late"
	s.appendDelivery(del)
	seq := len(s.deliveries)
	delay := s.faults.LateStoreDelay
	s.mu.Unlock()

	stored := make(chan struct{})
	time.AfterFunc(delay, func() {
		defer close(stored)
		s.mu.Lock()
		defer s.mu.Unlock()
		late := s.deliveries[seq-1]
		_, p := s.apply(op, pathID, form, body, &late)
		late.Outcome = "late_stored"
		if p != nil {
			late.Outcome = "late_rejected_" + p.slug
		}
		s.deliveries[seq-1] = late
		s.count(op, late.Outcome)
	})
	select {
	case <-stored:
	case <-r.Context().Done():
	}
	dropConnection(w)
}

// appendDelivery numbers and stores a delivery. Callers hold s.mu.
func (s *Sim) appendDelivery(d Delivery) {
	d.Seq = len(s.deliveries) + 1
	d.At = s.now().UTC()
	s.deliveries = append(s.deliveries, d)
	s.count(d.Operation, d.Outcome)
}

// recordRejected stores a sending call refused before its body was read (bad auth).
func (s *Sim) recordRejected(op, pathID string, p *problem) {
	d := Delivery{Operation: op, Outcome: "rejected_" + p.slug}
	if op == opChatsMessagesSend {
		d.ChatID = pathID
	} else {
		d.MessageID = pathID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appendDelivery(d)
}

// dropConnection closes the connection without a response: the "accepted but the response was
// lost" case. Hijacking works on HTTP/1; elsewhere aborting the handler resets the stream.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close() // nothing to report: closing is the point
}

func readJSONBody(r *http.Request) (jsonBody, *problem) {
	var b jsonBody
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mediaType, _, err := mime.ParseMediaType(ct)
		if err != nil || mediaType != "application/json" {
			return b, newProblem(http.StatusBadRequest, "invalid_parameters", "the body must be application/json")
		}
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBodyBytes+1))
	if err != nil {
		return b, newProblem(http.StatusBadRequest, "invalid_parameters", "cannot read the body: %v", err)
	}
	if len(raw) > maxJSONBodyBytes {
		return b, newProblem(http.StatusBadRequest, "invalid_parameters", "the body is over %d bytes", maxJSONBodyBytes)
	}
	if err := json.Unmarshal(bytes.TrimSpace(raw), &b); err != nil {
		return b, newProblem(http.StatusBadRequest, "invalid_parameters", "the body is not a valid JSON object: %v", err)
	}
	return b, nil
}

// checkContent applies the provider's content rules to a new message.
func checkContent(f sendForm) *problem {
	if f.text == "" && len(f.files) == 0 {
		return newProblem(http.StatusBadRequest, "invalid_parameters", "text, attachments or voice_message is required")
	}
	if n := utf8.RuneCountInString(f.text); n > maxTextChars {
		return newProblem(http.StatusBadRequest, "too_many_characters", "text has %d characters, the limit is %d", n, maxTextChars)
	}
	return nil
}

// canSend is the provider's rule that only healthy accounts send. Callers hold s.mu.
func canSend(a *account) *problem {
	if p := accountProblem(a.errorType, a.id); p != nil {
		return p
	}
	if healthy(a.status) {
		return nil
	}
	return newProblem(http.StatusUnauthorized, "disconnected_account", "account %q is %s: reconnect it before sending", a.id, a.status)
}

// applySend posts a message into an existing chat. Callers hold s.mu.
func (s *Sim) applySend(chatID string, f sendForm, del *Delivery) (sendingResult, *problem) {
	c, p := s.resolveChat(chatID, f.accountID)
	if p != nil {
		return sendingResult{}, p
	}
	a := s.accounts[c.accountID]
	del.AccountID, del.ChatID = a.id, c.id
	if p := canSend(a); p != nil {
		return sendingResult{}, p
	}
	if c.readOnly != 0 {
		return sendingResult{}, newProblem(http.StatusUnprocessableEntity, "cant_send_message", "chat %q is read-only", c.id)
	}
	if p := checkContent(f); p != nil {
		return sendingResult{}, p
	}
	if f.quoteID != "" {
		if q, ok := s.messages[f.quoteID]; !ok || q.ChatID != c.id {
			return sendingResult{}, newProblem(http.StatusNotFound, "resource_not_found", "quote_id %q is not a message of this chat", f.quoteID)
		}
	}
	m := s.postOwnMessage(a, c, f)
	del.MessageID, del.Applied = m.ID, true
	return sendingResult{status: http.StatusCreated, body: wireMessageSent{Object: "MessageSent", MessageID: &m.ID}}, nil
}

// applyCreate starts a chat, or posts into the existing single chat with that person: WhatsApp
// keeps one chat per person. Only contacts the account already knows are valid attendees.
// Callers hold s.mu.
func (s *Sim) applyCreate(f sendForm, del *Delivery) (sendingResult, *problem) {
	if f.accountID == "" {
		return sendingResult{}, newProblem(http.StatusBadRequest, "invalid_parameters", "account_id is required")
	}
	a, ok := s.accounts[f.accountID]
	if !ok {
		return sendingResult{}, newProblem(http.StatusNotFound, "resource_not_found", "account %q not found", f.accountID)
	}
	if len(f.attendeeIDs) == 0 {
		return sendingResult{}, newProblem(http.StatusBadRequest, "invalid_parameters", "attendees_ids is required")
	}
	if p := canSend(a); p != nil {
		return sendingResult{}, p
	}
	var people []*attendee
	for _, id := range f.attendeeIDs {
		at, ok := a.contacts[id]
		if !ok {
			return sendingResult{}, newProblem(http.StatusUnprocessableEntity, "invalid_recipient",
				"%q is not a WhatsApp user known to account %q (attendees_ids takes provider ids such as 33612345678@s.whatsapp.net)", id, a.id)
		}
		if !slices.Contains(people, at) {
			people = append(people, at)
		}
	}
	if p := checkContent(f); p != nil {
		return sendingResult{}, p
	}
	c := a.singles[people[0].providerID]
	if len(people) > 1 || c == nil {
		c = s.newChat(a, people, f.title)
	}
	m := s.postOwnMessage(a, c, f)
	del.ChatID, del.MessageID, del.Applied = c.id, m.ID, true
	return sendingResult{status: http.StatusCreated, body: wireChatStarted{Object: "ChatStarted", ChatID: &c.id, MessageID: &m.ID}}, nil
}

// newChat creates a single chat for one person, a group for several. Callers hold s.mu.
func (s *Sim) newChat(a *account, people []*attendee, title string) *chat {
	s.seq++
	c := &chat{
		id:         s.newID(),
		accountID:  a.id,
		typ:        chatSingle,
		contacts:   people,
		created:    s.stamp(),
		createdSeq: s.seq,
	}
	if len(people) == 1 {
		c.providerID, c.name = people[0].chatProviderID(), people[0].name
		a.singles[people[0].providerID] = c
	} else {
		c.typ = chatGroup
		c.providerID = fmt.Sprintf("120363%012d@g.us", s.rng.Int64N(1e12))
		c.name = title
		if c.name == "" {
			names := make([]string, 0, len(people))
			for _, p := range people {
				names = append(names, p.name)
			}
			c.name = strings.Join(names, ", ")
		}
	}
	s.chats[c.id] = c
	s.chatList = append(s.chatList, c)
	return c
}

// postOwnMessage stores a message written by the account. Sending marks the chat read, as
// WhatsApp does. Callers hold s.mu.
func (s *Sim) postOwnMessage(a *account, c *chat, f sendForm) *message {
	m := &message{Message: Message{
		ID:               s.newID(),
		ProviderID:       s.newProviderMessageID(),
		ChatID:           c.id,
		AccountID:        a.id,
		SenderID:         a.self.providerID,
		SenderAttendeeID: a.self.id,
		Text:             f.text,
		Timestamp:        s.stamp(),
		IsSender:         true,
		Delivered:        true,
		QuotedID:         f.quoteID,
	}}
	for _, file := range f.files {
		voice := file.Field == "voice_message"
		m.Attachments = append(m.Attachments, Attachment{
			ID:        s.newID(),
			Type:      attachmentType(file.ContentType, voice),
			MimeType:  file.ContentType,
			FileName:  file.Filename,
			Size:      file.Size,
			SHA256:    file.SHA256,
			VoiceNote: voice,
		})
	}
	s.insertMessage(c, m)
	c.unread = 0
	return m
}

// targetMessage finds the message of a reaction, edit or delete, and checks its account can
// send. Callers hold s.mu.
func (s *Sim) targetMessage(id string, del *Delivery) (*message, *account, *problem) {
	m, ok := s.messages[id]
	if !ok {
		return nil, nil, newProblem(http.StatusNotFound, "resource_not_found", "message %q not found", id)
	}
	a := s.accounts[m.AccountID]
	del.AccountID, del.ChatID = a.id, m.ChatID
	if p := canSend(a); p != nil {
		return nil, nil, p
	}
	return m, a, nil
}

// applyReaction sets the account's reaction, replacing its previous one. Callers hold s.mu.
func (s *Sim) applyReaction(id string, b jsonBody, del *Delivery) (sendingResult, *problem) {
	m, a, p := s.targetMessage(id, del)
	if p != nil {
		return sendingResult{}, p
	}
	if c := s.chats[m.ChatID]; c != nil && c.readOnly != 0 {
		return sendingResult{}, newProblem(http.StatusUnprocessableEntity, "cant_send_message", "chat %q is read-only", c.id)
	}
	if c := s.chats[m.ChatID]; c != nil && slices.Contains(c.disabledFeatures, "reactions") {
		return sendingResult{}, newProblem(http.StatusBadRequest, "invalid_action", "chat %q disables reactions", c.id)
	}
	if b.Reaction == nil || *b.Reaction == "" {
		return sendingResult{}, newProblem(http.StatusBadRequest, "invalid_parameters", "reaction is required")
	}
	if len(*b.Reaction) > maxReactionLen || !utf8.ValidString(*b.Reaction) {
		return sendingResult{}, newProblem(http.StatusBadRequest, "invalid_parameters", "reaction must be one emoji")
	}
	m.Reactions = slices.DeleteFunc(m.Reactions, func(r Reaction) bool { return r.SenderID == a.self.providerID })
	m.Reactions = append(m.Reactions, Reaction{Value: *b.Reaction, SenderID: a.self.providerID, IsSender: true})
	del.Applied = true
	return sendingResult{status: http.StatusOK, body: wireObject{Object: "MessageReactionAdded"}}, nil
}

// applyEdit edits the account's own message within WhatsApp's window. Past the window, or on a
// deleted message, it answers success and changes nothing: the provider's dangerous behaviour
// that clients must guard against. Callers hold s.mu.
func (s *Sim) applyEdit(id string, b jsonBody, del *Delivery) (sendingResult, *problem) {
	m, _, p := s.targetMessage(id, del)
	if p != nil {
		return sendingResult{}, p
	}
	if !m.IsSender {
		return sendingResult{}, newProblem(http.StatusForbidden, "account_mismatch", "message %q was not sent by the account: only its own messages can be edited", id)
	}
	if b.Text == nil || *b.Text == "" {
		return sendingResult{}, newProblem(http.StatusBadRequest, "invalid_parameters", "text is required")
	}
	if n := utf8.RuneCountInString(*b.Text); n > maxTextChars {
		return sendingResult{}, newProblem(http.StatusBadRequest, "too_many_characters", "text has %d characters, the limit is %d", n, maxTextChars)
	}
	ok := sendingResult{status: http.StatusOK, body: wireObject{Object: "MessageEdited"}}
	if m.Deleted || s.stamp().Sub(m.Timestamp) > editWindow {
		return ok, nil
	}
	m.Text, m.Edited = *b.Text, true
	del.Applied = true
	return ok, nil
}

// applyDelete deletes the account's own message for everyone within WhatsApp's window; past it
// the provider answers success without effect. Callers hold s.mu.
func (s *Sim) applyDelete(id string, del *Delivery) (sendingResult, *problem) {
	m, _, p := s.targetMessage(id, del)
	if p != nil {
		return sendingResult{}, p
	}
	if !m.IsSender {
		return sendingResult{}, newProblem(http.StatusForbidden, "account_mismatch", "message %q was not sent by the account: only its own messages can be deleted", id)
	}
	ok := sendingResult{status: http.StatusOK, body: wireObject{Object: "MessageDeleted"}}
	if m.Deleted || s.stamp().Sub(m.Timestamp) > deleteWindow {
		return ok, nil
	}
	m.Deleted, m.Text, m.Attachments, m.Reactions = true, "", nil, nil
	del.Applied = true
	return ok, nil
}
