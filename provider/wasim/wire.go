package wasim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// stampLayout is the provider's only time format: UTC with exactly three fraction digits.
const stampLayout = "2006-01-02T15:04:05.000Z"

func formatStamp(t time.Time) string {
	return t.UTC().Format(stampLayout)
}

// parseStamp accepts exactly stampLayout. time.Parse alone is lenient about fraction digits, so
// the value must also format back to itself.
func parseStamp(v string) (time.Time, error) {
	t, err := time.Parse(stampLayout, v)
	if err != nil || t.Format(stampLayout) != v {
		return time.Time{}, fmt.Errorf("%q is not of the form 2006-01-02T15:04:05.000Z", v)
	}
	return t, nil
}

// flag renders a boolean the provider's way: 0 or 1.
func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

type wireAccount struct {
	Object           string         `json:"object"`
	Type             string         `json:"type"`
	ID               string         `json:"id"`
	Name             string         `json:"name"`
	CreatedAt        string         `json:"created_at"`
	ConnectionParams wireConnection `json:"connection_params"`
	Groups           []string       `json:"groups"`
	Sources          []wireSource   `json:"sources"`
}

type wireConnection struct {
	IM wireIM `json:"im"`
}

type wireIM struct {
	PhoneNumber string `json:"phone_number"`
}

type wireSource struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

type wireChat struct {
	Object             string   `json:"object"`
	ID                 string   `json:"id"`
	AccountID          string   `json:"account_id"`
	AccountType        string   `json:"account_type"`
	ProviderID         string   `json:"provider_id"`
	AttendeeProviderID *string  `json:"attendee_provider_id"`
	Name               string   `json:"name"`
	Type               int      `json:"type"`
	Timestamp          string   `json:"timestamp"`
	UnreadCount        int      `json:"unread_count"`
	Archived           int      `json:"archived"`
	MutedUntil         any      `json:"muted_until"` // null, or -1 (muted for good)
	ReadOnly           int      `json:"read_only"`
	DisabledFeatures   []string `json:"disabledFeatures"`
}

type wireChatDetail struct {
	wireChat
	LastMessage *wireMessage `json:"lastMessage"`
}

type wireMessage struct {
	Object           string           `json:"object"`
	ID               string           `json:"id"`
	ProviderID       string           `json:"provider_id"`
	ChatID           string           `json:"chat_id"`
	AccountID        string           `json:"account_id"`
	SenderID         string           `json:"sender_id"`
	SenderAttendeeID string           `json:"sender_attendee_id"`
	Text             *string          `json:"text"` // null when there is none (deleted, attachment only)
	Timestamp        string           `json:"timestamp"`
	IsSender         int              `json:"is_sender"`
	Attachments      []wireAttachment `json:"attachments"`
	Reactions        []wireReaction   `json:"reactions"`
	Seen             int              `json:"seen"`
	Hidden           int              `json:"hidden"`
	Deleted          int              `json:"deleted"`
	Edited           int              `json:"edited"`
	IsEvent          int              `json:"is_event"`
	Delivered        int              `json:"delivered"`
	Quoted           *wireQuoted      `json:"quoted,omitempty"`
}

type wireAttachment struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	MimeType    string `json:"mimetype"`
	FileName    string `json:"file_name"`
	FileSize    int64  `json:"file_size"`
	Unavailable int    `json:"unavailable"`
	VoiceNote   int    `json:"voice_note"`
}

type wireReaction struct {
	Value    string `json:"value"`
	SenderID string `json:"sender_id"`
	IsSender int    `json:"is_sender"`
}

type wireQuoted struct {
	ID         string  `json:"id"`
	ProviderID string  `json:"provider_id"`
	SenderID   string  `json:"sender_id"`
	Text       *string `json:"text"`
}

type wireAttendee struct {
	Object     string `json:"object"`
	ID         string `json:"id"`
	AccountID  string `json:"account_id"`
	ProviderID string `json:"provider_id"`
	Name       string `json:"name"`
	IsSelf     int    `json:"is_self"`
	Hidden     int    `json:"hidden"`
}

type wireList struct {
	Object string  `json:"object"`
	Items  any     `json:"items"`
	Cursor *string `json:"cursor"`
}

// wireAttendeeList has no cursor: the provider may omit it on this list (docs/PROVIDER-API.md), and the
// simulator does, so that clients prove they tolerate it.
type wireAttendeeList struct {
	Object string         `json:"object"`
	Items  []wireAttendee `json:"items"`
}

type wireObject struct {
	Object string `json:"object"`
}

type wireMessageSent struct {
	Object    string  `json:"object"`
	MessageID *string `json:"message_id"`
}

type wireChatStarted struct {
	Object    string  `json:"object"`
	ChatID    *string `json:"chat_id"`
	MessageID *string `json:"message_id"`
}

type wireProblem struct {
	Title    string `json:"title"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
	Type     string `json:"type"`
	Status   int    `json:"status"`
}

func textOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (a *account) wire() wireAccount {
	return wireAccount{
		Object:           "Account",
		Type:             "WHATSAPP",
		ID:               a.id,
		Name:             a.name,
		CreatedAt:        formatStamp(a.createdAt),
		ConnectionParams: wireConnection{IM: wireIM{PhoneNumber: a.phone}},
		Groups:           []string{},
		Sources:          []wireSource{{ID: a.id + "_MESSAGING", Status: a.status}},
	}
}

func (c *chat) wire() wireChat {
	at, _ := c.activity()
	out := wireChat{
		Object:           "Chat",
		ID:               c.id,
		AccountID:        c.accountID,
		AccountType:      "WHATSAPP",
		ProviderID:       c.providerID,
		Name:             c.name,
		Type:             c.typ,
		Timestamp:        formatStamp(at),
		UnreadCount:      c.unread,
		Archived:         flag(c.archived),
		ReadOnly:         c.readOnly,
		DisabledFeatures: append([]string{}, c.disabledFeatures...),
	}
	if c.mutedForever {
		out.MutedUntil = -1
	}
	if c.typ == chatSingle {
		pid := c.contacts[0].providerID
		out.AttendeeProviderID = &pid
	}
	return out
}

// wireMessage renders m, looking up the message it quotes. Callers hold s.mu.
func (s *Sim) wireMessage(m *message) wireMessage {
	out := wireMessage{
		Object:           "Message",
		ID:               m.ID,
		ProviderID:       m.ProviderID,
		ChatID:           m.ChatID,
		AccountID:        m.AccountID,
		SenderID:         m.SenderID,
		SenderAttendeeID: m.SenderAttendeeID,
		Text:             textOrNull(m.Text),
		Timestamp:        formatStamp(m.Timestamp),
		IsSender:         flag(m.IsSender),
		Attachments:      []wireAttachment{},
		Reactions:        []wireReaction{},
		Seen:             flag(m.Seen),
		Hidden:           flag(m.Hidden),
		Deleted:          flag(m.Deleted),
		Edited:           flag(m.Edited),
		IsEvent:          flag(m.IsEvent),
		Delivered:        flag(m.Delivered),
	}
	for _, a := range m.Attachments {
		out.Attachments = append(out.Attachments, wireAttachment{
			ID: a.ID, Type: a.Type, MimeType: a.MimeType, FileName: a.FileName, FileSize: a.Size, VoiceNote: flag(a.VoiceNote),
		})
	}
	for _, r := range m.Reactions {
		out.Reactions = append(out.Reactions, wireReaction{Value: r.Value, SenderID: r.SenderID, IsSender: flag(r.IsSender)})
	}
	if q, ok := s.messages[m.QuotedID]; ok && m.QuotedID != "" {
		out.Quoted = &wireQuoted{ID: q.ID, ProviderID: q.ProviderID, SenderID: q.SenderID, Text: textOrNull(q.Text)}
	}
	return out
}

func (at *attendee) wire() wireAttendee {
	return wireAttendee{
		Object:     "ChatAttendee",
		ID:         at.id,
		AccountID:  at.accountID,
		ProviderID: at.providerID,
		Name:       at.name,
		IsSelf:     flag(at.isSelf),
	}
}

// writeJSON writes v with the provider's content type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	// An encoding error here means the client went away; there is nobody left to tell.
	_ = enc.Encode(v)
}
