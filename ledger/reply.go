package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/sendworker/sendworker/internal/luafn"
	"github.com/sendworker/sendworker/tasks"
)

// argv is the common ARGV of every script (see scripts.go) at time now,
// followed by args.
func (l *Ledger) argv(now int64, args []any) []any {
	all := make([]any, 0, 6+len(args))
	all = append(all, l.keys.tag, now, isoMs(now), l.opts.Retention.Milliseconds(), l.opts.ResultsMaxLen, auditMaxLen)
	return append(all, args...)
}

// run executes a script with the common ARGV at time now.
func (l *Ledger) run(ctx context.Context, s *luafn.Script, now int64, keys []string, args ...any) (any, error) {
	v, err := l.lua.Run(ctx, s, keys, l.argv(now, args)...).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return v, nil
}

// recordReply is the answer of a transition of one send (runRecord).
type recordReply struct {
	code string
	st   stored // zero when the send does not exist (or the code is "conflict")
	raw  []any  // the script's whole reply, for replies with other payloads
}

// runRecord runs a script that moves (or answers for) one send and reads that
// send's record and history right after it, in the same MULTI/EXEC: nothing
// runs between the script and the reads, so the record is exactly the one
// the script left. The script replies {code[, payload]}; reading the record
// with plain commands costs Redis far less than returning it from Lua.
func (l *Ledger) runRecord(ctx context.Context, s *luafn.Script, sendID string, keys []string, args ...any) (recordReply, error) {
	all := l.argv(l.nowMs(), args)
	call := l.lua.Call(s)
	for try := 0; ; try++ {
		pipe := l.rdb.TxPipeline()
		ev := call.Queue(ctx, pipe, keys, all...)
		hcmd := pipe.HGetAll(ctx, l.keys.Send(sendID))
		lcmd := pipe.LRange(ctx, l.keys.History(sendID), 0, -1)
		_, err := pipe.Exec(ctx)
		if err != nil && try < luafn.MaxRecover {
			// A script not found (or FCALL refused) did nothing: load it (or
			// fall back to EVALSHA) and run it all again.
			again, err := call.Recover(ctx, l.rdb, ev)
			if err != nil {
				return recordReply{}, fmt.Errorf("ledger: %w", err)
			}
			if again {
				continue
			}
		}
		if err != nil {
			return recordReply{}, fmt.Errorf("ledger: %w", err)
		}
		return parseRecordReply(ev.Val(), hcmd.Val(), lcmd.Val())
	}
}

// parseRecordReply decodes a script's {code[, payload]} with the record hash
// and history read after it.
func parseRecordReply(v any, h map[string]string, hist []string) (recordReply, error) {
	items, ok := v.([]any)
	if !ok || len(items) == 0 {
		return recordReply{}, fmt.Errorf("ledger: unexpected script reply %T", v)
	}
	code, ok := items[0].(string)
	if !ok {
		return recordReply{}, fmt.Errorf("ledger: unexpected script reply code %T", items[0])
	}
	r := recordReply{code: code, raw: items}
	if len(h) == 0 || code == "conflict" || code == "not_found" {
		return r, nil
	}
	st, err := decodeRecord(h)
	if err != nil {
		return recordReply{}, err
	}
	if st.rec.History, err = historyOf(h, st.rec, hist); err != nil {
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
	case "stop_pending":
		return stateErr(ErrStopPending)
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
func recordOrError(r recordReply, err error, sendID string) (*tasks.Record, error) {
	if err != nil {
		return nil, err
	}
	if r.code == "ok" {
		return r.st.rec, nil
	}
	return nil, refusal(r.code, sendID, r.st.rec)
}
