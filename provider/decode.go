package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// The decoders of provider responses live here, each a plain function of bytes with a fuzz
// target: whatever the provider (or a proxy in front of it) sends, they return a value or an
// error, never panic.

// decodeProblem decodes a problem-details body. It is tolerant field by field: a field of
// the wrong type is ignored rather than losing the others, and status may be a number or a
// numeric string. It returns nil when the body is not a JSON object or has none of the
// fields, so a garbage body still yields a typed *Error, classified by its HTTP status.
func decodeProblem(data []byte) *Problem {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil
	}
	var p Problem
	found := false
	str := func(key string, dst *string) {
		raw, ok := fields[key]
		if !ok {
			return
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			*dst = s
			found = true
		}
	}
	str("type", &p.Type)
	str("title", &p.Title)
	str("detail", &p.Detail)
	str("instance", &p.Instance)
	if raw, ok := fields["status"]; ok {
		if n, ok := decodeInt(raw); ok {
			p.Status = n
			found = true
		}
	}
	if !found {
		return nil
	}
	return &p
}

// decodeInt reads a JSON number or numeric string that fits in an int.
func decodeInt(raw json.RawMessage) (int, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		raw = []byte(s)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
		return 0, false
	}
	return int(f), true
}

// listPage is the wire form of every list: {"object", "items": [...], "cursor": string|null}.
type listPage[T any] struct {
	Object string          `json:"object"`
	Items  []T             `json:"items"`
	Cursor json.RawMessage `json:"cursor"`
}

// decodeList decodes one page of a list. A null, absent or empty cursor means the last page
// (the attendee list may omit it); a cursor that is not a string is an error, because
// guessing at an opaque value could loop forever.
func decodeList[T any](data []byte) (object string, items []T, cursor string, err error) {
	var page listPage[T]
	if err := json.Unmarshal(data, &page); err != nil {
		return "", nil, "", err
	}
	if raw := bytes.TrimSpace(page.Cursor); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &cursor); err != nil {
			return "", nil, "", fmt.Errorf("cursor is not a string nor null")
		}
	}
	return page.Object, page.Items, cursor, nil
}

// decodeObject decodes a single JSON object into T. A body that is null, not an object, or
// empty is an error: a success answer must describe what it returned.
func decodeObject[T any](data []byte) (*T, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	v := new(T)
	if err := json.Unmarshal(data, v); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeAccount decodes an Account (accounts_get).
func decodeAccount(data []byte) (*Account, error) { return decodeObject[Account](data) }

// decodeChat decodes a Chat with its lastMessage (chats_get).
func decodeChat(data []byte) (*Chat, error) { return decodeObject[Chat](data) }

// decodeSent decodes the answer of a sending call that creates a message. The provider
// already accepted the message when this runs, so a body that cannot be read is not an
// error: the ids stay nil and reconciliation finds them.
func decodeSent(data []byte) (*MessageSent, *ChatStarted) {
	var v ChatStarted
	if o, err := decodeObject[ChatStarted](data); err == nil {
		v = *o
	}
	v.ChatID = nonEmpty(v.ChatID)
	v.MessageID = nonEmpty(v.MessageID)
	return &MessageSent{Object: v.Object, MessageID: v.MessageID}, &v
}

// nonEmpty turns a pointer to "" into nil: an empty id is no id.
func nonEmpty(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}
