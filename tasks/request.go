package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sendworker/sendworker/internal/suggest"
)

// SendRequest is what the Sequencer submits: one send of one operation for
// one account. Which of ChatID, AttendeeIDs, MessageID, Text, Reaction and
// Attachments are required or allowed depends on Operation (see Validate).
type SendRequest struct {
	// SendID is the Sequencer's idempotency key: ≤128 chars of [A-Za-z0-9._:-].
	SendID    string    `json:"send_id"`
	Operation Operation `json:"operation"`
	AccountID string    `json:"account_id"`
	// RequestedBy is the identity that submitted the send. Through the admin
	// API it is taken from the caller's token, never from the body.
	RequestedBy string `json:"requested_by,omitempty"`
	// Metadata is opaque to sendworker (sequence, step, contact ids) and
	// echoed in every result. It must be a JSON object.
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// ApprovalDeadline: an unapproved send expires after it. Zero means the
	// configured default.
	ApprovalDeadline *time.Time `json:"approval_deadline,omitempty"`
	// StopIfRepliedSince: skip the send if the contact wrote in the chat
	// after this moment.
	StopIfRepliedSince *time.Time `json:"stop_if_replied_since,omitempty"`
	Window             *Window    `json:"window,omitempty"`

	ChatID      string       `json:"chat_id,omitempty"`
	AttendeeIDs []string     `json:"attendees_ids,omitempty"`
	MessageID   string       `json:"message_id,omitempty"`
	Text        string       `json:"text,omitempty"`
	Reaction    string       `json:"reaction,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Attachment is a reference to a file fetched at send time. The bytes are
// accepted only from allow-listed origins, within the size cap, and only if
// their SHA-256 matches.
type Attachment struct {
	URL         string `json:"url"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"` // lowercase hex
}

// Window limits when a send may go out. Outside it the send waits; after
// NotAfter it expires. The daily window is in the recipient's time zone.
type Window struct {
	NotBefore *time.Time `json:"not_before,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	// Timezone is an IANA zone name such as "Europe/Paris"; required when
	// Days, From or To are set.
	Timezone string `json:"timezone,omitempty"`
	// Days are the allowed weekdays: "mon".."sun". Empty means every day.
	Days []string `json:"days,omitempty"`
	// From and To are local "HH:MM" times; From < To. Empty means all day.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Limits of the send request.
const (
	MaxSendIDLen      = 128
	MaxTextLen        = 4096 // characters (Unicode code points)
	MaxAccountIDLen   = 256
	MaxIDLen          = 256 // chat, message and attendee ids
	MaxAttachments    = 10
	MaxMetadataBytes  = 16 << 10
	MaxReactionLen    = 16 // characters: one emoji with modifiers
	MaxRequestBytes   = 64 << 10
	MaxDeadlineFuture = 30 * 24 * time.Hour
)

// DecodeRequest reads one JSON send request. Unknown fields, trailing data and
// bodies over MaxRequestBytes are errors. It does not validate: call Validate.
func DecodeRequest(r io.Reader) (*SendRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxRequestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read request: %w", err)
	}
	if len(body) > MaxRequestBytes {
		return nil, &ValidationError{Fields: []FieldError{{Field: "body", Code: "too_large", Message: fmt.Sprintf("request body exceeds %d bytes", MaxRequestBytes)}}}
	}
	var req SendRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	return &req, nil
}

// DecodeRequests reads a JSON array of send requests (bulk enqueue), each
// strictly decoded; maxItems bounds the array.
func DecodeRequests(r io.Reader, maxBytes int64, maxItems int) ([]SendRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read request: %w", err)
	}
	if int64(len(body)) > maxBytes {
		return nil, &ValidationError{Fields: []FieldError{{Field: "body", Code: "too_large", Message: fmt.Sprintf("request body exceeds %d bytes", maxBytes)}}}
	}
	var raw []json.RawMessage
	if err := decodeStrict(body, &raw); err != nil {
		return nil, err
	}
	if len(raw) > maxItems {
		return nil, &ValidationError{Fields: []FieldError{{Field: "body", Code: "too_many", Message: fmt.Sprintf("at most %d sends per request", maxItems)}}}
	}
	reqs := make([]SendRequest, len(raw))
	for i, item := range raw {
		if err := decodeStrict(item, &reqs[i]); err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) {
				return nil, ve.Prefix(fmt.Sprintf("[%d].", i))
			}
			return nil, err
		}
	}
	return reqs, nil
}

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonFieldError(body, err)
	}
	if dec.More() {
		return &ValidationError{Fields: []FieldError{{Field: "body", Code: "invalid_json", Message: "unexpected data after the JSON value"}}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &ValidationError{Fields: []FieldError{{Field: "body", Code: "invalid_json", Message: "unexpected data after the JSON value"}}}
	}
	return nil
}

// jsonFieldError turns a decoder error into a field-named validation error.
// body is what was decoded: a bad time is found again in it to name its field
// (encoding/json does not say which field a time.Time failed in).
func jsonFieldError(body []byte, err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var timeErr *time.ParseError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return &ValidationError{Fields: []FieldError{{Field: field, Code: "invalid_type", Message: fmt.Sprintf("expected %s, got JSON %s", typeErr.Type, typeErr.Value)}}}
	case errors.As(err, &syntaxErr):
		return &ValidationError{Fields: []FieldError{{Field: "body", Code: "invalid_json", Message: fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset)}}}
	case errors.As(err, &timeErr):
		return &ValidationError{Fields: []FieldError{{Field: badTimeField(body), Code: "invalid_time",
			Message: fmt.Sprintf("time %q is not RFC 3339, e.g. 2026-03-01T09:30:00+01:00", timeErr.Value)}}}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &ValidationError{Fields: []FieldError{{Field: "body", Code: "invalid_json", Message: "empty or truncated JSON"}}}
	}
	msg := err.Error()
	const unknownPrefix = "json: unknown field "
	if len(msg) > len(unknownPrefix) && msg[:len(unknownPrefix)] == unknownPrefix {
		name := msg[len(unknownPrefix):]
		if len(name) >= 2 && name[0] == '"' {
			name = name[1 : len(name)-1]
		}
		return &ValidationError{Fields: []FieldError{{Field: name, Code: "unknown_field", Message: UnknownFieldMessage(name, requestFields)}}}
	}
	return &ValidationError{Fields: []FieldError{{Field: "body", Code: "invalid_json", Message: "invalid JSON"}}}
}

// requestFields are the JSON field names of a send request, its window and
// its attachments: the candidates of an unknown field's "did you mean".
var requestFields = JSONFieldNames(SendRequest{}, Window{}, Attachment{})

// UnknownFieldMessage is the message of an unknown JSON field: "unknown
// field", with the nearest known name when name looks like a typo of one.
func UnknownFieldMessage(name string, known []string) string {
	if near, ok := suggest.Closest(name, known); ok {
		return fmt.Sprintf("unknown field; did you mean %s?", near)
	}
	return "unknown field"
}

// JSONFieldNames lists the JSON names of the fields of the given structs
// (and of the structs, slices of structs and pointers to structs they hold).
func JSONFieldNames(vs ...any) []string {
	var names []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || t.PkgPath() == "time" {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
			walk(f.Type)
		}
	}
	for _, v := range vs {
		walk(reflect.TypeOf(v))
	}
	return names
}

// badTimeField names the first time field of a send request body that does
// not hold an RFC 3339 time, "body" if none is found.
func badTimeField(body []byte) string {
	var probe struct {
		ApprovalDeadline   json.RawMessage `json:"approval_deadline"`
		StopIfRepliedSince json.RawMessage `json:"stop_if_replied_since"`
		Window             *struct {
			NotBefore json.RawMessage `json:"not_before"`
			NotAfter  json.RawMessage `json:"not_after"`
		} `json:"window"`
	}
	if json.Unmarshal(body, &probe) != nil {
		return "body"
	}
	fields := []struct {
		name string
		raw  json.RawMessage
	}{{"approval_deadline", probe.ApprovalDeadline}, {"stop_if_replied_since", probe.StopIfRepliedSince}}
	if probe.Window != nil {
		fields = append(fields, struct {
			name string
			raw  json.RawMessage
		}{"window.not_before", probe.Window.NotBefore}, struct {
			name string
			raw  json.RawMessage
		}{"window.not_after", probe.Window.NotAfter})
	}
	for _, f := range fields {
		var t *time.Time
		if len(f.raw) > 0 && json.Unmarshal(f.raw, &t) != nil {
			return f.name
		}
	}
	return "body"
}
