package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// The fields of a results stream entry, as the ledger writes them. FieldResult
// holds the whole tasks.Result as JSON and is authoritative; the flat fields
// are there for tools (redis-cli, asynqmon-like browsers) and are decoded only
// when FieldResult is absent.
const (
	FieldResult     = "result"
	FieldSendID     = "send_id"
	FieldOperation  = "operation"
	FieldAccountID  = "account_id"
	FieldState      = "state"
	FieldReason     = "reason"
	FieldMessageID  = "message_id"
	FieldChatID     = "chat_id"
	FieldAttempts   = "attempts"
	FieldApprovedBy = "approved_by"
	FieldFinishedAt = "finished_at"
	FieldMetadata   = "metadata"
	FieldDryRun     = "dry_run"
)

// The fields of an event entry. An entry with FieldEvent is an event, never
// a result.
const (
	FieldEvent     = "event"
	FieldStatus    = "status"
	FieldAt        = "at"
	FieldContactID = "contact_id"
	FieldSendIDs   = "send_ids" // comma-separated
	FieldDetail    = "detail"
)

// Event types.
const (
	// EventAccountBreakerOpen: the account turned unhealthy (provider status
	// CREDENTIALS, ERROR, STOPPED..., or repeated 401 disconnected_account on
	// sending calls); its sends wait (reason account_unhealthy) until it is
	// healthy again. Status is what was seen.
	EventAccountBreakerOpen = "account_breaker_open"
	// EventAccountBreakerClosed: the account is healthy again (Status is its
	// provider status, e.g. OK); its waiting sends go on.
	EventAccountBreakerClosed = "account_breaker_closed"
	// EventContactReplied: a provider event said the contact wrote in a chat
	// (ChatID, MessageID, ContactID = the sender, At = when). SendIDs are the
	// sends it ended skipped/contact_replied (each also has its result).
	EventContactReplied = "contact_replied"
	// EventContactOptedOut: the contact is on the opt-out list (Status = the
	// keyword matched, Detail = the source); SendIDs were ended opted_out.
	EventContactOptedOut = "contact_opted_out"
	// EventMessageDelivered, EventMessageRead, EventMessageReaction (Status =
	// the reaction), EventMessageEdited, EventMessageDeleted: the provider
	// reported it on the message of send SendID. The send's state is unchanged.
	EventMessageDelivered = "message_delivered"
	EventMessageRead      = "message_read"
	EventMessageReaction  = "message_reaction"
	EventMessageEdited    = "message_edited"
	EventMessageDeleted   = "message_deleted"
)

// Event is an operational event of the results stream. Each one is appended
// once per transition across all replicas.
type Event struct {
	// Type is one of the Event* constants (other types may be added later;
	// decode them without failing).
	Type      string    `json:"type"`
	AccountID string    `json:"account_id,omitempty"`
	Status    string    `json:"status,omitempty"`
	At        time.Time `json:"at"`
	// Set by the events of inbound provider events (contact_*, message_*).
	SendID    string   `json:"send_id,omitempty"`
	SendIDs   []string `json:"send_ids,omitempty"`
	ChatID    string   `json:"chat_id,omitempty"`
	MessageID string   `json:"message_id,omitempty"`
	ContactID string   `json:"contact_id,omitempty"`
	Detail    string   `json:"detail,omitempty"`
}

// ErrMalformed is wrapped by every decoding error: the entry is not a result
// this package can read. Retrying will not help; the caller acks the entry (or
// dead-letters it) after reporting it.
var ErrMalformed = errors.New("malformed results entry")

// DecodeError says which entry could not be decoded and why.
type DecodeError struct {
	ID  string // stream entry id
	Err error  // what is wrong; wraps ErrMalformed
}

func (e *DecodeError) Error() string { return fmt.Sprintf("results entry %s: %v", e.ID, e.Err) }
func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeEntry decodes one stream entry (its id and field map, as go-redis
// returns them) into an Entry. An entry with an "event" field is an event
// (Entry.Event set, Result zero). Otherwise the "result" field, when present,
// is the result; else the flat fields are read. It never panics on any input and
// every error is a *DecodeError wrapping ErrMalformed.
func DecodeEntry(id string, values map[string]any) (Entry, error) {
	if _, isEvent := values[FieldEvent]; isEvent {
		ev, err := decodeEvent(values)
		if err != nil {
			return Entry{ID: id}, &DecodeError{ID: id, Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
		}
		return Entry{ID: id, Event: ev}, nil
	}
	res, err := decodeValues(values)
	if err != nil {
		return Entry{ID: id}, &DecodeError{ID: id, Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	}
	return Entry{ID: id, Result: res}, nil
}

func decodeValues(values map[string]any) (tasks.Result, error) {
	var res tasks.Result
	if len(values) == 0 {
		// XREADGROUP returns a nil field map for a pending entry that was
		// deleted or trimmed away since it was delivered.
		return res, errors.New("entry has no fields (deleted or trimmed from the stream)")
	}
	raw, ok, err := field(values, FieldResult)
	if err != nil {
		return res, err
	}
	if ok {
		if err := json.Unmarshal([]byte(raw), &res); err != nil {
			return tasks.Result{}, fmt.Errorf("field %s: %w", FieldResult, err)
		}
	} else if res, err = decodeFlat(values); err != nil {
		return tasks.Result{}, err
	}
	if res.SendID == "" {
		return tasks.Result{}, fmt.Errorf("field %s: missing", FieldSendID)
	}
	if res.State == "" {
		return tasks.Result{}, fmt.Errorf("field %s: missing", FieldState)
	}
	return res, nil
}

// decodeEvent reads an event entry: a non-empty type, and the optional
// account_id, status and at (RFC 3339 or Unix ms).
func decodeEvent(values map[string]any) (*Event, error) {
	var ev Event
	var errs []error
	var err error
	if ev.Type, _, err = field(values, FieldEvent); err != nil {
		errs = append(errs, err)
	} else if ev.Type == "" {
		errs = append(errs, fmt.Errorf("field %s: empty", FieldEvent))
	}
	if ev.AccountID, _, err = field(values, FieldAccountID); err != nil {
		errs = append(errs, err)
	}
	if ev.Status, _, err = field(values, FieldStatus); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{FieldSendID, &ev.SendID}, {FieldChatID, &ev.ChatID}, {FieldMessageID, &ev.MessageID},
		{FieldContactID, &ev.ContactID}, {FieldDetail, &ev.Detail}} {
		if *f.dst, _, err = field(values, f.name); err != nil {
			errs = append(errs, err)
		}
	}
	if v, _, err := field(values, FieldSendIDs); err != nil {
		errs = append(errs, err)
	} else if v != "" {
		ev.SendIDs = strings.Split(v, ",")
	}
	if v, ok, err := field(values, FieldAt); err != nil {
		errs = append(errs, err)
	} else if ok && v != "" {
		if ev.At, err = parseTime(v); err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", FieldAt, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &ev, nil
}

// decodeFlat reads a result from the flat fields.
func decodeFlat(values map[string]any) (tasks.Result, error) {
	var res tasks.Result
	strs := []struct {
		name string
		dst  *string
	}{
		{FieldSendID, &res.SendID},
		{FieldAccountID, &res.AccountID},
		{FieldMessageID, &res.MessageID},
		{FieldChatID, &res.ChatID},
		{FieldApprovedBy, &res.ApprovedBy},
	}
	for _, s := range strs {
		v, _, err := field(values, s.name)
		if err != nil {
			return res, err
		}
		*s.dst = v
	}
	var errs []error
	op, _, err := field(values, FieldOperation)
	errs = append(errs, err)
	state, _, err := field(values, FieldState)
	errs = append(errs, err)
	reason, _, err := field(values, FieldReason)
	errs = append(errs, err)
	res.Operation, res.State, res.Reason = tasks.Operation(op), tasks.State(state), tasks.Reason(reason)

	if v, ok, err := field(values, FieldAttempts); err != nil {
		errs = append(errs, err)
	} else if ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("field %s: %q is not a non-negative integer", FieldAttempts, v))
		}
		res.Attempts = n
	}
	if v, ok, err := field(values, FieldFinishedAt); err != nil {
		errs = append(errs, err)
	} else if ok && v != "" {
		t, err := parseTime(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", FieldFinishedAt, err))
		}
		res.FinishedAt = t
	}
	if v, ok, err := field(values, FieldMetadata); err != nil {
		errs = append(errs, err)
	} else if ok && v != "" {
		if !json.Valid([]byte(v)) {
			errs = append(errs, fmt.Errorf("field %s: not valid JSON", FieldMetadata))
		} else {
			res.Metadata = json.RawMessage(v)
		}
	}
	if v, ok, err := field(values, FieldDryRun); err != nil {
		errs = append(errs, err)
	} else if ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %q is not a boolean", FieldDryRun, v))
		}
		res.DryRun = b
	}
	if err := errors.Join(errs...); err != nil {
		return tasks.Result{}, err
	}
	return res, nil
}

// field returns a field as a string. go-redis gives strings; []byte is
// accepted too, anything else is an error naming the field.
func field(values map[string]any, name string) (string, bool, error) {
	v, ok := values[name]
	if !ok {
		return "", false, nil
	}
	switch v := v.(type) {
	case string:
		return v, true, nil
	case []byte:
		return string(v), true, nil
	default:
		return "", true, fmt.Errorf("field %s: unexpected type %T", name, v)
	}
}

// parseTime accepts RFC 3339 (what encoding/json writes) or Unix milliseconds
// (what the ledger's scripts store as *_ms).
func parseTime(v string) (time.Time, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor Unix milliseconds", v)
	}
	return t, nil
}
