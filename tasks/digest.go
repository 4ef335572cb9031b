package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// DigestVersion is part of the canonical form, so a future change of what the
// digest covers can never make an old approval match new content.
const DigestVersion = 1

// canonical is everything that decides what is sent and to whom, in a fixed
// field order. Scheduling fields (deadline, window, stop_if_replied_since)
// and metadata are not part of it: they change when or whether, not what.
type canonical struct {
	Version     int                   `json:"v"`
	Operation   Operation             `json:"operation"`
	AccountID   string                `json:"account_id"`
	ChatID      string                `json:"chat_id"`
	AttendeeIDs []string              `json:"attendees_ids"`
	MessageID   string                `json:"message_id"`
	Text        string                `json:"text"`
	Reaction    string                `json:"reaction"`
	Attachments []canonicalAttachment `json:"attachments"`
}

type canonicalAttachment struct {
	URL         string `json:"url"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

// Canonical returns the canonical JSON form the digest is computed over.
// Attendee and attachment order is kept: it is part of what is sent.
func (r *SendRequest) Canonical() []byte {
	c := canonical{
		Version:     DigestVersion,
		Operation:   r.Operation,
		AccountID:   r.AccountID,
		ChatID:      r.ChatID,
		AttendeeIDs: append([]string{}, r.AttendeeIDs...),
		MessageID:   r.MessageID,
		Text:        r.Text,
		Reaction:    r.Reaction,
		Attachments: make([]canonicalAttachment, 0, len(r.Attachments)),
	}
	for _, a := range r.Attachments {
		c.Attachments = append(c.Attachments, canonicalAttachment(a))
	}
	// Marshal of this struct cannot fail: only strings, ints and slices.
	b, _ := json.Marshal(c)
	return b
}

// Digest is the lowercase hex SHA-256 of Canonical. Approvers are shown it and
// an approval names the digest it approves.
func (r *SendRequest) Digest() string {
	sum := sha256.Sum256(r.Canonical())
	return hex.EncodeToString(sum[:])
}
