package inbound

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
)

// Kind is what an inbound provider event is about.
type Kind string

// The kinds sendworker acts on. The messaging webhook names its events in the "event" field;
// an account status event is an object with an "AccountStatus" member (docs/PROVIDER-EVENTS.md).
const (
	KindMessage       Kind = "message_received"
	KindReaction      Kind = "message_reaction"
	KindRead          Kind = "message_read"
	KindDelivered     Kind = "message_delivered"
	KindEdited        Kind = "message_edited"
	KindDeleted       Kind = "message_deleted"
	KindAccountStatus Kind = "account_status"
)

// Kinds lists every kind, for metrics and docs.
var Kinds = []Kind{KindMessage, KindReaction, KindRead, KindDelivered, KindEdited, KindDeleted, KindAccountStatus}

// Decoding errors (errors.Is). The receiver answers each with its own 4xx.
var (
	ErrMalformed   = errors.New("malformed event")
	ErrUnknownKind = errors.New("unknown event type")
)

// Limits of an event's fields.
const (
	maxIDLen   = 256
	maxTextLen = 64 << 10
)

// Attendee is a participant named by an event.
type Attendee struct {
	ID         string `json:"attendee_id,omitempty"`
	ProviderID string `json:"attendee_provider_id,omitempty"`
}

// Event is one decoded inbound provider event. Text is the message's text: it is used to match
// opt-out keywords and never logged or written anywhere else.
type Event struct {
	Kind        Kind
	ID          string // an explicit event id, when the provider gives one
	AccountID   string
	AccountType string
	// AccountUserID is the account's own provider id when the event carries it (account_info.user_id).
	AccountUserID string
	ChatID        string
	MessageID     string
	At            time.Time // the event's timestamp (zero for account status events)
	Text          string
	Sender        Attendee
	// IsSender is set when the event says whether the account wrote the message.
	IsSender       *bool
	Reaction       string
	ReactionSender Attendee
	Status         string // account status events: OK, CREDENTIALS, ERROR, STOPPED, CONNECTING...
}

// Key is the event's dedupe key: retries of one event have the same key, two events never do.
// Account status events have none: acting on them is idempotent (a breaker already open or
// closed stays so, announced once), and the provider's status payload carries no time or id
// that would tell a retry from a later, identical status.
func (e *Event) Key() string {
	if e.ID != "" {
		return "id:" + e.ID
	}
	switch e.Kind {
	case KindAccountStatus:
		return ""
	case KindReaction:
		return string(e.Kind) + ":" + e.AccountID + ":" + e.MessageID + ":" + e.ReactionSender.ProviderID + ":" + e.Reaction
	case KindRead, KindDelivered:
		return string(e.Kind) + ":" + e.AccountID + ":" + e.MessageID + ":" + e.Sender.ProviderID
	}
	return string(e.Kind) + ":" + e.AccountID + ":" + e.MessageID
}

// wire is the JSON of an event, as the provider posts it. Unknown members are ignored: the
// provider adds fields over time.
type wire struct {
	ID          string `json:"id"`
	Event       string `json:"event"`
	AccountID   string `json:"account_id"`
	AccountType string `json:"account_type"`
	AccountInfo *struct {
		UserID string `json:"user_id"`
	} `json:"account_info"`
	ChatID         string          `json:"chat_id"`
	Timestamp      string          `json:"timestamp"`
	MessageID      string          `json:"message_id"`
	Message        json.RawMessage `json:"message"`
	Sender         *Attendee       `json:"sender"`
	IsSender       *flexBool       `json:"is_sender"`
	Reaction       string          `json:"reaction"`
	ReactionSender *Attendee       `json:"reaction_sender"`
	AccountStatus  *struct {
		AccountID   string `json:"account_id"`
		AccountType string `json:"account_type"`
		Message     string `json:"message"`
	} `json:"AccountStatus"`
}

// flexBool accepts true/false and 1/0 (the provider's message objects use both).
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	switch string(data) {
	case "true", "1":
		*b = true
	case "false", "0", "null":
		*b = false
	default:
		return fmt.Errorf("want a boolean, got %s", data)
	}
	return nil
}

// Decode decodes one event body. Every error wraps ErrMalformed or ErrUnknownKind and names the
// field; no error quotes the message text.
func Decode(body []byte) (*Event, error) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, jsonProblem(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrMalformed)
	}
	if w.AccountStatus != nil {
		ev := &Event{Kind: KindAccountStatus, ID: w.ID, AccountID: w.AccountStatus.AccountID,
			AccountType: w.AccountStatus.AccountType, Status: strings.ToUpper(strings.TrimSpace(w.AccountStatus.Message))}
		var errs []error
		errs = append(errs, checkID("AccountStatus.account_id", ev.AccountID, true))
		if ev.Status == "" || len(ev.Status) > 64 || strings.IndexFunc(ev.Status, notStatusRune) >= 0 {
			errs = append(errs, errors.New("AccountStatus.message: want a status such as OK or CREDENTIALS"))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return ev, nil
	}
	kind := Kind(w.Event)
	switch kind {
	case KindMessage, KindReaction, KindRead, KindDelivered, KindEdited, KindDeleted:
	case "":
		return nil, fmt.Errorf("%w: event: missing (and no AccountStatus object)", ErrMalformed)
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, truncate(w.Event, 64))
	}
	ev := &Event{Kind: kind, ID: w.ID, AccountID: w.AccountID, AccountType: w.AccountType, ChatID: w.ChatID,
		MessageID: w.MessageID, Reaction: w.Reaction}
	if w.AccountInfo != nil {
		ev.AccountUserID = w.AccountInfo.UserID
	}
	if w.Sender != nil {
		ev.Sender = *w.Sender
	}
	if w.ReactionSender != nil {
		ev.ReactionSender = *w.ReactionSender
	}
	if w.IsSender != nil {
		b := bool(*w.IsSender)
		ev.IsSender = &b
	}
	var errs []error
	errs = append(errs,
		checkID("id", ev.ID, false),
		checkID("account_id", ev.AccountID, true),
		checkID("chat_id", ev.ChatID, kind == KindMessage),
		checkID("message_id", ev.MessageID, true),
		checkID("account_info.user_id", ev.AccountUserID, false),
		checkID("sender.attendee_id", ev.Sender.ID, false),
		checkID("sender.attendee_provider_id", ev.Sender.ProviderID, false),
		checkID("reaction_sender.attendee_provider_id", ev.ReactionSender.ProviderID, false))
	if len(ev.Reaction) > 64 {
		errs = append(errs, errors.New("reaction: longer than 64 bytes"))
	}
	if w.Timestamp == "" {
		errs = append(errs, errors.New("timestamp: missing"))
	} else if t, err := time.Parse(time.RFC3339Nano, w.Timestamp); err != nil {
		errs = append(errs, errors.New("timestamp: want RFC 3339"))
	} else {
		ev.At = t.UTC()
	}
	if len(w.Message) > 0 && string(w.Message) != "null" {
		if err := json.Unmarshal(w.Message, &ev.Text); err != nil {
			errs = append(errs, errors.New("message: want a string"))
		} else if len(ev.Text) > maxTextLen {
			errs = append(errs, fmt.Errorf("message: longer than %d bytes", maxTextLen))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return ev, nil
}

// checkID checks one id field: at most maxIDLen bytes, no control characters, present if required.
func checkID(name, v string, required bool) error {
	switch {
	case v == "" && required:
		return fmt.Errorf("%s: missing", name)
	case len(v) > maxIDLen:
		return fmt.Errorf("%s: longer than %d bytes", name, maxIDLen)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return fmt.Errorf("%s: control characters", name)
	}
	return nil
}

func notStatusRune(r rune) bool { return !(r >= 'A' && r <= 'Z' || r == '_') }

// jsonProblem describes a JSON error without quoting the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("%s: want %s", typ.Field, typ.Type)
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	return "invalid JSON"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
