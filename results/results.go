// Package results reads the results stream that the ledger appends to on
// every terminal transition of a send (default "sendworker:results"). It is
// the Go client of that stream for the Sequencer, Unibox, the webhook
// dispatcher and tests: a thin layer over a Redis consumer group that decodes
// entries into tasks.Result.
//
// The stream also carries a few operational events that concern every
// consumer, such as an account turning unhealthy (its sends wait) and healthy
// again: entries with an "event" field, decoded into Entry.Event (see Event).
// A consumer interested only in results skips entries whose Event is set.
//
// Delivery is at least once. An entry stays pending in its group until it is
// acked, so a consumer that crashes between Read and Ack gets it again: from
// Read when it restarts under the same consumer name, or from Claim (run by
// any consumer of the group) once the entry has been idle long enough.
// Consumers therefore dedupe by send_id (a send has exactly one result) or by
// entry id.
//
// The package only reads and acks; it never writes results (the ledger does,
// atomically with the send record).
package results

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/tasks"
)

// DefaultStream is the ledger's default results stream.
const DefaultStream = "sendworker:results"

// Entry is one result (or event) read from the stream.
type Entry struct {
	// ID is the stream entry id ("1700000000000-0"): what Ack takes, and a
	// unique key of the delivery.
	ID string
	// Result is the decoded result; zero when Err or Event is set.
	Result tasks.Result
	// Event is set for an event entry (an entry with an "event" field), which
	// is not a result: Result is then zero.
	Event *Event
	// Err is set (a *DecodeError wrapping ErrMalformed) when the entry could
	// not be decoded. Such an entry is still returned, so the caller can
	// report and ack it instead of seeing it again forever.
	Err error
}

// Reader consumes the results stream as one consumer of one consumer group.
// Each group gets every entry; within a group each entry goes to one
// consumer. A Reader is safe for concurrent use, but Read is meant to be
// called from one goroutine.
type Reader struct {
	rdb      redis.UniversalClient
	stream   string
	group    string
	consumer string

	mu sync.Mutex
	// pendingFrom is where Read continues re-delivering this consumer's own
	// pending entries (those read before a restart and never acked); empty
	// once they have all been returned, then Read only returns new entries.
	pendingFrom string
	// claimFrom is the XAUTOCLAIM cursor, so successive Claims walk the
	// whole pending list instead of rescanning its head.
	claimFrom string

	touch *redis.Script // touchLua
}

// NewReader returns a Reader of stream as consumer of group. Call EnsureGroup
// once before reading.
func NewReader(rdb redis.UniversalClient, stream, group, consumer string) *Reader {
	return &Reader{
		rdb:         rdb,
		stream:      stream,
		group:       group,
		consumer:    consumer,
		pendingFrom: "0",
		claimFrom:   "0-0",
		touch:       redis.NewScript(touchLua),
	}
}

// Stream returns the name of the stream read.
func (r *Reader) Stream() string { return r.stream }

// Group returns the consumer group.
func (r *Reader) Group() string { return r.group }

// Consumer returns the consumer name.
func (r *Reader) Consumer() string { return r.consumer }

// EnsureGroup creates the consumer group (and the stream if it does not
// exist yet). startID is where a new group starts: "0" for every entry in the
// stream, "$" for entries added from now on. An existing group is left as it
// is.
func (r *Reader) EnsureGroup(ctx context.Context, startID string) error {
	err := r.rdb.XGroupCreateMkStream(ctx, r.stream, r.group, startID).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("results: create group %s on %s: %w", r.group, r.stream, err)
	}
	return nil
}

// Read returns up to count entries. After NewReader it first returns the
// entries this consumer read earlier and never acked (a crash between Read
// and Ack), then new entries, waiting up to block for them (block <= 0 does
// not wait). It returns no entries and no error when nothing arrived in time.
func (r *Reader) Read(ctx context.Context, count int, block time.Duration) ([]Entry, error) {
	if count <= 0 {
		count = 1
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	if r.pendingFrom != "" {
		msgs, err := r.readGroup(ctx, r.pendingFrom, count, -1)
		if err != nil {
			return nil, err
		}
		if len(msgs) > 0 {
			r.pendingFrom = msgs[len(msgs)-1].ID
			return decodeAll(msgs), nil
		}
		r.pendingFrom = ""
	}
	if block <= 0 {
		block = -1 // go-redis: a negative Block omits BLOCK
	}
	msgs, err := r.readGroup(ctx, ">", count, block)
	if err != nil {
		return nil, err
	}
	return decodeAll(msgs), nil
}

func (r *Reader) readGroup(ctx context.Context, id string, count int, block time.Duration) ([]redis.XMessage, error) {
	streams, err := r.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    r.group,
		Consumer: r.consumer,
		Streams:  []string{r.stream, id},
		Count:    int64(count),
		Block:    block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil // BLOCK timed out
	}
	if err != nil {
		return nil, fmt.Errorf("results: read %s as %s/%s: %w", r.stream, r.group, r.consumer, err)
	}
	var msgs []redis.XMessage
	for _, s := range streams {
		msgs = append(msgs, s.Messages...)
	}
	return msgs, nil
}

// Ack marks entries as processed by the group: they will not be delivered to
// it again.
func (r *Reader) Ack(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := r.rdb.XAck(ctx, r.stream, r.group, ids...).Err(); err != nil {
		return fmt.Errorf("results: ack %d entries on %s/%s: %w", len(ids), r.stream, r.group, err)
	}
	return nil
}

// Claim takes over up to count entries of the group that were delivered to
// some consumer (typically one that died) and not acked for at least
// minIdle, and returns them; they now belong to this consumer. Successive
// calls walk the whole pending list. Entries deleted from the stream while
// pending are dropped from the pending list by Redis and not returned.
func (r *Reader) Claim(ctx context.Context, minIdle time.Duration, count int) ([]Entry, error) {
	if count <= 0 {
		count = 1
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	msgs, next, err := r.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream:   r.stream,
		Group:    r.group,
		Consumer: r.consumer,
		MinIdle:  minIdle,
		Start:    r.claimFrom,
		Count:    int64(count),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("results: claim on %s/%s: %w", r.stream, r.group, err)
	}
	r.claimFrom = next
	return decodeAll(msgs), nil
}

// touchLua resets the idle time of the entries still pending for this
// consumer, without counting a delivery, and returns their ids. Checking the
// owner first means a consumer that stalled and was taken over does not
// claim its entries back: it learns it lost them.
//
// KEYS[1] the stream
// ARGV[1] the group, ARGV[2] the consumer, ARGV[3..] entry ids
const touchLua = `
local kept = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #p == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    kept[#kept + 1] = id
  end
end
return kept
`

// Touch tells the group this consumer is still working on ids: it resets
// their idle time (without counting a delivery) so that other consumers'
// Claim does not take them over. It returns the ids this consumer still
// owns; an id missing from the answer was acked, deleted, or claimed by
// another consumer, and should be abandoned.
func (r *Reader) Touch(ctx context.Context, ids ...string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, 0, 2+len(ids))
	args = append(args, r.group, r.consumer)
	for _, id := range ids {
		args = append(args, id)
	}
	kept, err := r.touch.Run(ctx, r.rdb, []string{r.stream}, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("results: touch %d entries on %s/%s: %w", len(ids), r.stream, r.group, err)
	}
	return kept, nil
}

func decodeAll(msgs []redis.XMessage) []Entry {
	entries := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		e, err := DecodeEntry(m.ID, m.Values)
		e.Err = err
		entries = append(entries, e)
	}
	return entries
}
