package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// DefaultQueue is the asynq queue released sends go to when none is configured. The releaser
// and the worker must agree on it, so it is defined here, once.
const DefaultQueue = "sendworker"

// maxPayloadBytes bounds a task payload: it carries three identifiers, a few hundred bytes.
const maxPayloadBytes = 4 << 10

// ValidSendID reports whether id is of the send_id grammar: 1 to MaxSendIDLen letters, digits
// and . _ : -, not only dots ("." and ".." are path segments: no URL could name the send).
func ValidSendID(id string) bool {
	return id != "" && len(id) <= MaxSendIDLen && sendIDChars(id) && strings.Trim(id, ".") != ""
}

// sendIDChars reports whether every byte of id is a letter, a digit or one of . _ : -. Checked
// byte by byte: the worker checks a send_id at every task (payload and record), and a regexp
// match costs several times more.
func sendIDChars(id string) bool {
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidDigest reports whether d is of the digest grammar: 64 lowercase hex characters (see
// Digest).
func ValidDigest(d string) bool {
	if len(d) != 64 {
		return false
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Payload is the asynq task payload of a released send. It carries only identifiers: the
// worker always reads the send record, so a payload edited in Redis or replayed from asynqmon
// cannot change what is sent.
type Payload struct {
	SendID string `json:"send_id"`
	Digest string `json:"digest"`
	// Gen is the release generation: the worker drops a task whose Gen is
	// not the record's current one (a stale re-run).
	Gen int64 `json:"gen"`
	// AccountID is the send's account, a hint only: with it the worker reads the
	// account's breaker in the same round trip as the record, and it uses the
	// record's account whatever the hint says. Optional (tasks released by
	// earlier versions have none).
	AccountID string `json:"account_id,omitempty"`
}

// TaskID is the asynq task id of one release of a send: send_id + "/r" + gen. asynq refuses a
// second task with the same id while the first exists (and for its retention after it
// completed), so releasing one outbox entry twice (a crash before it is marked released, two
// replicas at once) makes one task.
func TaskID(sendID string, gen int64) string {
	return sendID + "/r" + strconv.FormatInt(gen, 10)
}

// TaskID is the asynq task id of this release (see TaskID).
func (p Payload) TaskID() string { return TaskID(p.SendID, p.Gen) }

// Encode returns the payload's JSON.
func (p Payload) Encode() ([]byte, error) {
	return json.Marshal(p)
}

// ErrBadPayload marks a payload the worker cannot act on. Such a task is archived (never
// retried): it names no send the worker could look up, so it cannot be a legitimate release.
var ErrBadPayload = errors.New("invalid task payload")

// DecodePayload strictly decodes a task payload: one JSON object with exactly send_id, digest
// and gen, and optionally account_id, no unknown fields, no trailing data, a send_id of the
// SendRequest grammar, a digest of 64 lowercase hex characters, a positive gen and an account id
// of the provider id grammar. The payload is never trusted beyond naming a send: everything sent
// comes from the ledger record.
func DecodePayload(data []byte) (Payload, error) {
	var p Payload
	if len(data) > maxPayloadBytes {
		return p, fmt.Errorf("%w: %d bytes", ErrBadPayload, len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var raw struct {
		SendID    *string `json:"send_id"`
		Digest    *string `json:"digest"`
		Gen       *int64  `json:"gen"`
		AccountID *string `json:"account_id"`
	}
	if err := dec.Decode(&raw); err != nil {
		return p, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return p, fmt.Errorf("%w: trailing data", ErrBadPayload)
	}
	switch {
	case raw.SendID == nil || !ValidSendID(*raw.SendID):
		return p, fmt.Errorf("%w: send_id", ErrBadPayload)
	case raw.Digest == nil || !ValidDigest(*raw.Digest):
		return p, fmt.Errorf("%w: digest", ErrBadPayload)
	case raw.Gen == nil || *raw.Gen <= 0:
		return p, fmt.Errorf("%w: gen", ErrBadPayload)
	case raw.AccountID != nil && !validProviderID(*raw.AccountID, MaxAccountIDLen):
		return p, fmt.Errorf("%w: account_id", ErrBadPayload)
	}
	p = Payload{SendID: *raw.SendID, Digest: *raw.Digest, Gen: *raw.Gen}
	if raw.AccountID != nil {
		p.AccountID = *raw.AccountID
	}
	return p, nil
}
