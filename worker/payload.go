package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/sendworker/sendworker/tasks"
)

// maxPayloadBytes bounds a task payload: it carries three identifiers, a few hundred bytes.
const maxPayloadBytes = 4 << 10

var (
	payloadSendID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	payloadDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// errBadPayload marks a payload the worker cannot act on. Such a task is archived (never
// retried): it names no send the worker could look up, so it cannot be a legitimate release.
var errBadPayload = errors.New("invalid task payload")

// DecodePayload strictly decodes a task payload: one JSON object with exactly send_id, digest
// and gen, no unknown fields, no trailing data, a send_id of the SendRequest grammar, a digest of
// 64 lowercase hex characters and a positive gen. The payload is never trusted beyond naming a
// send: everything sent comes from the ledger record.
func DecodePayload(data []byte) (tasks.TaskPayload, error) {
	var p tasks.TaskPayload
	if len(data) > maxPayloadBytes {
		return p, fmt.Errorf("%w: %d bytes", errBadPayload, len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var raw struct {
		SendID *string `json:"send_id"`
		Digest *string `json:"digest"`
		Gen    *int64  `json:"gen"`
	}
	if err := dec.Decode(&raw); err != nil {
		return p, fmt.Errorf("%w: %v", errBadPayload, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return p, fmt.Errorf("%w: trailing data", errBadPayload)
	}
	switch {
	case raw.SendID == nil || !payloadSendID.MatchString(*raw.SendID):
		return p, fmt.Errorf("%w: send_id", errBadPayload)
	case raw.Digest == nil || !payloadDigest.MatchString(*raw.Digest):
		return p, fmt.Errorf("%w: digest", errBadPayload)
	case raw.Gen == nil || *raw.Gen <= 0:
		return p, fmt.Errorf("%w: gen", errBadPayload)
	}
	return tasks.TaskPayload{SendID: *raw.SendID, Digest: *raw.Digest, Gen: *raw.Gen}, nil
}
