package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// TimeLayout is the provider's time stamp format: ISO 8601 in UTC with milliseconds. The
// before/after query parameters must have exactly this form.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime formats t as the provider expects it in queries and bodies.
func FormatTime(t time.Time) string {
	return t.UTC().Format(TimeLayout)
}

// Time is a provider time stamp. It decodes tolerantly (RFC 3339 with or without fractional
// seconds or offset, epoch milliseconds as a number, null or "" as the zero time) and encodes
// as TimeLayout, or null when zero.
type Time struct {
	time.Time
}

func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + FormatTime(t.Time) + `"`), nil
}

func (t *Time) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	if len(data) > 0 && data[0] != '"' {
		ms, err := strconv.ParseFloat(string(data), 64)
		if err != nil {
			return fmt.Errorf("time stamp: not a string nor a number: %.40q", data)
		}
		t.Time = time.UnixMilli(int64(ms)).UTC()
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("time stamp: %w", err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	parsed, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time stamp: %.40q is not RFC 3339", s)
	}
	t.Time = parsed.UTC()
	return nil
}

// Flag is one of the provider's 0/1 number flags (is_sender, seen, deleted...). It decodes 0
// and 1 (any non-zero number is true), also true/false, "0"/"1" and null (false), and encodes
// as 0 or 1.
type Flag bool

func (f Flag) MarshalJSON() ([]byte, error) {
	if f {
		return []byte("1"), nil
	}
	return []byte("0"), nil
}

func (f *Flag) UnmarshalJSON(data []byte) error {
	s := string(bytes.TrimSpace(data))
	switch s {
	case "null", "false", `"false"`, `"0"`, `""`:
		*f = false
		return nil
	case "true", `"true"`, `"1"`:
		*f = true
		return nil
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("flag: %.40q is not 0/1 nor a boolean", s)
	}
	*f = n != 0
	return nil
}

// Account is a connected WhatsApp account (accounts_get).
type Account struct {
	Object           string                  `json:"object"`
	Type             string                  `json:"type"`
	ID               string                  `json:"id"`
	Name             string                  `json:"name"`
	CreatedAt        Time                    `json:"created_at"`
	ConnectionParams AccountConnectionParams `json:"connection_params"`
	Sources          []AccountSource         `json:"sources"`
}

// AccountConnectionParams holds the parts of connection_params we read.
type AccountConnectionParams struct {
	IM struct {
		PhoneNumber string `json:"phone_number"`
	} `json:"im"`
}

// AccountSource is one source of an account with its connection status.
type AccountSource struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// Account source statuses. The provider's reference lists OK, STOPPED, ERROR, CREDENTIALS,
// PERMISSIONS and CONNECTING; its integration catalog also says CONNECTED.
const (
	StatusOK          = "OK"
	StatusConnected   = "CONNECTED"
	StatusStopped     = "STOPPED"
	StatusError       = "ERROR"
	StatusCredentials = "CREDENTIALS"
	StatusPermissions = "PERMISSIONS"
	StatusConnecting  = "CONNECTING"
)

// Status returns the status of the account's first source, or "" when it has none.
func (a *Account) Status() string {
	if a == nil || len(a.Sources) == 0 {
		return ""
	}
	return a.Sources[0].Status
}

// Healthy reports whether the account can send: its status is OK or CONNECTED. An account
// in any other state may still answer reads, with stale data.
func (a *Account) Healthy() bool {
	s := a.Status()
	return s == StatusOK || s == StatusConnected
}

// AccountResync is the answer of accounts_sync (status SYNC_STARTED, SYNC_RUNNING, SYNC_DONE,
// SYNC_ERROR or CHUNK_DONE).
type AccountResync struct {
	Object string `json:"object"`
	Status string `json:"status"`
}

// Chat types.
const (
	ChatSingle  = 0
	ChatGroup   = 1
	ChatChannel = 2
)

// Features a chat's disabledFeatures may list (the reference's example also shows "reply").
const (
	FeatureReactions = "reactions"
	FeatureReply     = "reply"
)

// Chat is a conversation of an account. ReadOnly is true for read_only 1 and 2 (the reference
// lists 0, 1 and 2 without saying what 2 means beyond "not 0"). MutedUntil -1 (muted for
// good) decodes as the instant before the epoch. LastMessage is set by GetChat only (and may be nil).
type Chat struct {
	Object             string   `json:"object,omitempty"`
	ID                 string   `json:"id"`
	AccountID          string   `json:"account_id"`
	AccountType        string   `json:"account_type"`
	ProviderID         string   `json:"provider_id"`
	AttendeeProviderID string   `json:"attendee_provider_id"`
	Name               string   `json:"name"`
	Type               int      `json:"type"` // ChatSingle, ChatGroup or ChatChannel
	Timestamp          Time     `json:"timestamp"`
	UnreadCount        int      `json:"unread_count"`
	Archived           Flag     `json:"archived"`
	MutedUntil         Time     `json:"muted_until"`
	ReadOnly           Flag     `json:"read_only"`
	DisabledFeatures   []string `json:"disabledFeatures"`
	LastMessage        *Message `json:"lastMessage,omitempty"`
}

// Message is a message of a chat. Messages are listed newest first.
type Message struct {
	Object           string              `json:"object,omitempty"`
	ID               string              `json:"id"`
	ProviderID       string              `json:"provider_id"`
	ChatID           string              `json:"chat_id"`
	AccountID        string              `json:"account_id"`
	SenderID         string              `json:"sender_id"`
	SenderAttendeeID string              `json:"sender_attendee_id"`
	Text             string              `json:"text"`
	Timestamp        Time                `json:"timestamp"`
	IsSender         Flag                `json:"is_sender"` // 1 when our account sent it
	Attachments      []MessageAttachment `json:"attachments"`
	Reactions        []Reaction          `json:"reactions"`
	Seen             Flag                `json:"seen"`
	Hidden           Flag                `json:"hidden"`
	Deleted          Flag                `json:"deleted"`
	Edited           Flag                `json:"edited"`
	IsEvent          Flag                `json:"is_event"`
	Delivered        Flag                `json:"delivered"`
	// Quoted is the quoted message, kept raw: its shape is not documented.
	Quoted json.RawMessage `json:"quoted,omitempty"`
}

// MessageAttachment is an attachment of a received or sent message, as listed.
type MessageAttachment struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	FileName    string `json:"file_name"`
	MimeType    string `json:"mimetype"`
	Unavailable Flag   `json:"unavailable"`
}

// Reaction is one reaction on a message.
type Reaction struct {
	Value    string `json:"value"`
	SenderID string `json:"sender_id"`
	IsSender Flag   `json:"is_sender"`
}

// Attendee is a member of a chat. WhatsApp provider ids look like
// "33600000000@s.whatsapp.net" or "...@lid".
type Attendee struct {
	Object     string `json:"object,omitempty"`
	ID         string `json:"id"`
	AccountID  string `json:"account_id"`
	ProviderID string `json:"provider_id"`
	Name       string `json:"name"`
	IsSelf     Flag   `json:"is_self"`
}

// ChatList is one page of chats. Cursor is empty on the last page.
type ChatList struct {
	Object string
	Items  []Chat
	Cursor string
}

// MessageList is one page of messages, newest first. Cursor is empty on the last page.
type MessageList struct {
	Object string
	Items  []Message
	Cursor string
}

// AttendeeList is one page of attendees. Cursor is empty on the last page (the provider may
// omit it altogether).
type AttendeeList struct {
	Object string
	Items  []Attendee
	Cursor string
}

// MessageSent is the answer of chats_messages_send. MessageID may be nil: the provider
// accepted the message without saying its id, which reconciliation can find.
type MessageSent struct {
	Object    string  `json:"object"`
	MessageID *string `json:"message_id"`
}

// ChatStarted is the answer of chats_create. Either id may be nil.
type ChatStarted struct {
	Object    string  `json:"object"`
	ChatID    *string `json:"chat_id"`
	MessageID *string `json:"message_id"`
}
