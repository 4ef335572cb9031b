// Package redistest gives tests their own throwaway redis-server, started on a
// free port and removed when the test ends.
package redistest

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/tasks"
)

// Server is a redis-server owned by one test (or one package's tests).
type Server struct {
	*redisproc.Proc
}

// Start runs a fresh redis-server for t and stops it in t.Cleanup. It fails
// the test (it does not skip) when redis-server is missing: .ci/run installs it.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartPersistent is Start with AOF on, for tests that restart Redis.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, aof bool) *Server {
	t.Helper()
	p, err := redisproc.Start(context.Background(), redisproc.Options{Dir: t.TempDir(), AppendOnly: aof})
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	return &Server{Proc: p}
}

// Client returns a go-redis client for the server, closed at cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// StartCluster runs a fresh three-node Redis Cluster (masters only) for t and
// kills it in t.Cleanup.
func StartCluster(t testing.TB) *redisproc.Cluster {
	t.Helper()
	c, err := redisproc.StartCluster(context.Background(), t.TempDir(), 3)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(c.Kill)
	return c
}

// AddResult appends res to stream as the ledger writes a terminal result: its flat fields plus
// the whole tasks.Result JSON in "result". It returns the entry id.
func AddResult(t testing.TB, rdb redis.UniversalClient, stream string, res tasks.Result) string {
	t.Helper()
	body, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: []any{
		"send_id", res.SendID, "operation", string(res.Operation), "account_id", res.AccountID,
		"state", string(res.State), "reason", string(res.Reason), "message_id", res.MessageID,
		"chat_id", res.ChatID, "attempts", res.Attempts, "approved_by", res.ApprovedBy,
		"finished_at", res.FinishedAt.Format(time.RFC3339Nano), "metadata", string(res.Metadata),
		"dry_run", strconv.FormatBool(res.DryRun), "result", string(body),
	}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return id
}
