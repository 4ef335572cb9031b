package provider

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// The sending calls. Each makes exactly one HTTP request, whatever happens: a failure comes
// back classified, and only the caller decides (after reconciling an unknown outcome) whether
// to try again.

// SendMessageParams is the content of a message to send into an existing chat.
type SendMessageParams struct {
	AccountID      string // optional: the chat already belongs to an account
	Text           string
	QuoteID        string // id of a message to quote
	Attachments    []Attachment
	VoiceMessage   *Attachment
	TypingDuration time.Duration // sent in whole milliseconds; 0 for none
}

// SendMessage sends a message into a chat (chats_messages_send), streaming any attachments
// as multipart/form-data. A nil MessageID in the answer means the provider accepted the
// message without naming it.
func (c *Client) SendMessage(ctx context.Context, chatID string, p SendMessageParams) (*MessageSent, error) {
	f := &form{}
	r := &request{op: OpChatsMessagesSend, method: http.MethodPost, path: escapePath("chats", chatID, "messages"), form: f}
	if err := checkID("chat id", chatID); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	if p.Text == "" && len(p.Attachments) == 0 && p.VoiceMessage == nil {
		return nil, c.newError(r, ClassPermanent, fmt.Errorf("%w: a message needs text, attachments or a voice message", ErrInvalidArgument))
	}
	if p.TypingDuration < 0 {
		return nil, c.newError(r, ClassPermanent, fmt.Errorf("%w: typing duration must not be negative", ErrInvalidArgument))
	}
	if err := checkAttachments(p.Attachments, p.VoiceMessage); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	if p.AccountID != "" {
		f.add("account_id", p.AccountID)
	}
	if p.Text != "" {
		f.add("text", p.Text)
	}
	if p.QuoteID != "" {
		f.add("quote_id", p.QuoteID)
	}
	if ms := p.TypingDuration.Milliseconds(); ms > 0 {
		f.add("typing_duration", strconv.FormatInt(ms, 10))
	}
	addFiles(f, p.Attachments, p.VoiceMessage)
	data, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	sent, _ := decodeSent(data)
	return sent, nil
}

// StartChatParams is the first message to one or more attendees.
type StartChatParams struct {
	AccountID    string
	AttendeeIDs  []string // provider attendee ids, e.g. "33600000000@s.whatsapp.net"
	Text         string
	Attachments  []Attachment
	VoiceMessage *Attachment
}

// StartChat starts a chat (chats_create). WhatsApp keeps one chat per person: starting a
// chat with someone who already has one posts into it.
func (c *Client) StartChat(ctx context.Context, p StartChatParams) (*ChatStarted, error) {
	f := &form{}
	r := &request{op: OpChatsCreate, method: http.MethodPost, path: "/chats", form: f}
	if err := checkID("account id", p.AccountID); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	if len(p.AttendeeIDs) == 0 {
		return nil, c.newError(r, ClassPermanent, fmt.Errorf("%w: at least one attendee id is required", ErrInvalidArgument))
	}
	for _, id := range p.AttendeeIDs {
		if id == "" {
			return nil, c.newError(r, ClassPermanent, fmt.Errorf("%w: attendee ids must not be empty", ErrInvalidArgument))
		}
	}
	if p.Text == "" && len(p.Attachments) == 0 && p.VoiceMessage == nil {
		return nil, c.newError(r, ClassPermanent, fmt.Errorf("%w: a message needs text, attachments or a voice message", ErrInvalidArgument))
	}
	if err := checkAttachments(p.Attachments, p.VoiceMessage); err != nil {
		return nil, c.newError(r, ClassPermanent, err)
	}
	f.add("account_id", p.AccountID)
	for _, id := range p.AttendeeIDs {
		f.add("attendees_ids", id)
	}
	if p.Text != "" {
		f.add("text", p.Text)
	}
	addFiles(f, p.Attachments, p.VoiceMessage)
	data, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	_, started := decodeSent(data)
	return started, nil
}

// AddReaction sets our reaction on a message (messages_reaction). WhatsApp keeps one
// reaction per user: a new one replaces the old.
func (c *Client) AddReaction(ctx context.Context, messageID, reaction string) error {
	r := &request{op: OpMessagesReaction, method: http.MethodPost, path: escapePath("messages", messageID, "reaction"),
		json: map[string]string{"reaction": reaction}}
	if err := checkID("message id", messageID); err != nil {
		return c.newError(r, ClassPermanent, err)
	}
	if reaction == "" {
		return c.newError(r, ClassPermanent, fmt.Errorf("%w: reaction is required", ErrInvalidArgument))
	}
	_, err := c.do(ctx, r)
	return err
}

// EditMessage replaces the text of one of our messages (messages_edit). The provider may
// answer success without editing once WhatsApp's window (about 15 minutes) has passed: the
// caller refuses late edits itself and can verify that the edit landed.
func (c *Client) EditMessage(ctx context.Context, messageID, text string) error {
	r := &request{op: OpMessagesEdit, method: http.MethodPatch, path: escapePath("messages", messageID),
		json: map[string]string{"text": text}}
	if err := checkID("message id", messageID); err != nil {
		return c.newError(r, ClassPermanent, err)
	}
	if text == "" {
		return c.newError(r, ClassPermanent, fmt.Errorf("%w: text is required", ErrInvalidArgument))
	}
	_, err := c.do(ctx, r)
	return err
}

// DeleteMessage deletes one of our messages for everyone (messages_delete). Past WhatsApp's
// window (about 60 hours) the provider may answer success without effect.
func (c *Client) DeleteMessage(ctx context.Context, messageID string) error {
	r := &request{op: OpMessagesDelete, method: http.MethodDelete, path: escapePath("messages", messageID)}
	if err := checkID("message id", messageID); err != nil {
		return c.newError(r, ClassPermanent, err)
	}
	_, err := c.do(ctx, r)
	return err
}

func checkAttachments(files []Attachment, voice *Attachment) error {
	for i := range files {
		if err := files[i].check(fmt.Sprintf("attachment %d", i)); err != nil {
			return err
		}
	}
	if voice != nil {
		return voice.check("voice message")
	}
	return nil
}

func addFiles(f *form, files []Attachment, voice *Attachment) {
	for _, a := range files {
		f.addFile("attachments", a)
	}
	if voice != nil {
		f.addFile("voice_message", *voice)
	}
}
