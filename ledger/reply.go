package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/tasks"
)

// run executes a script with the common ARGV (see scripts.go) at time now.
func (l *Ledger) run(ctx context.Context, s *redis.Script, now int64, keys []string, args ...any) (any, error) {
	all := make([]any, 0, 6+len(args))
	all = append(all, l.keys.tag, now, isoMs(now), l.opts.Retention.Milliseconds(), l.opts.ResultsMaxLen, auditMaxLen)
	all = append(all, args...)
	v, err := s.Run(ctx, l.rdb, keys, all...).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return v, nil
}

// recordReply is the decoded {code, record, history} reply of a script.
type recordReply struct {
	code string
	st   stored // zero when the reply carries no record
	raw  []any  // the whole reply, for replies with other payloads
}

// parseRecordReply decodes {code[, HGETALL, LRANGE]}.
func parseRecordReply(v any) (recordReply, error) {
	items, ok := v.([]any)
	if !ok || len(items) == 0 {
		return recordReply{}, fmt.Errorf("ledger: unexpected script reply %T", v)
	}
	code, ok := items[0].(string)
	if !ok {
		return recordReply{}, fmt.Errorf("ledger: unexpected script reply code %T", items[0])
	}
	r := recordReply{code: code, raw: items}
	if len(items) < 3 || code == "conflict" {
		return r, nil
	}
	h, err := flatMap(items[1])
	if err != nil {
		return recordReply{}, err
	}
	if len(h) == 0 {
		return r, nil
	}
	st, err := decodeRecord(h)
	if err != nil {
		return recordReply{}, err
	}
	hist, err := stringList(items[2])
	if err != nil {
		return recordReply{}, err
	}
	if st.rec.History, err = decodeHistory(hist); err != nil {
		return recordReply{}, err
	}
	r.st = st
	return r, nil
}

func stringList(v any) ([]string, error) {
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("ledger: unexpected script reply %T, want list", v)
	}
	out := make([]string, len(items))
	for i, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, fmt.Errorf("ledger: unexpected script reply item %T, want string", it)
		}
		out[i] = s
	}
	return out, nil
}

func flatMap(v any) (map[string]string, error) {
	list, err := stringList(v)
	if err != nil {
		return nil, err
	}
	if len(list)%2 != 0 {
		return nil, errors.New("ledger: odd HGETALL reply")
	}
	h := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		h[list[i]] = list[i+1]
	}
	return h, nil
}

// refusal turns a script's refusal code into the error of the contract.
func refusal(code, sendID string, rec *tasks.Record) error {
	state := func() tasks.State {
		if rec == nil {
			return ""
		}
		return rec.State
	}
	stateErr := func(err error) error { return &StateError{Err: err, SendID: sendID, Current: state()} }
	switch code {
	case "not_found":
		return fmt.Errorf("send %s: %w", sendID, ErrNotFound)
	case "final":
		return stateErr(ErrFinal)
	case "not_pending", "expired":
		return stateErr(ErrNotPending)
	case "too_late":
		return stateErr(ErrTooLate)
	case "stale_attempt":
		return stateErr(ErrStaleAttempt)
	case "message_claimed":
		return stateErr(ErrMessageClaimed)
	case "digest_mismatch":
		return fmt.Errorf("send %s: %w", sendID, ErrDigestMismatch)
	case "self_approval":
		return fmt.Errorf("send %s: %w", sendID, ErrSelfApproval)
	}
	return fmt.Errorf("ledger: send %s: unexpected script reply %q", sendID, code)
}

// recordOrError is the common end of the transitions that return a record.
func recordOrError(v any, sendID string) (*tasks.Record, error) {
	r, err := parseRecordReply(v)
	if err != nil {
		return nil, err
	}
	if r.code == "ok" {
		return r.st.rec, nil
	}
	return nil, refusal(r.code, sendID, r.st.rec)
}
