package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/tasks"
)

// The console's reads of the ledger that no other caller needs, and the
// small store of its sign-in sessions: every {prefix}:* key stays the
// ledger's, the console only calls these methods.

// KnownAccounts lists the accounts that have sends (those with a state index
// idx:acct:<account>:<state>), sorted, at most max of them. The ledger keeps
// no list of accounts, so this SCANs: callers cache it.
func (l *Ledger) KnownAccounts(ctx context.Context, max int) ([]string, error) {
	prefix := l.keys.accountPrefix()
	seen := map[string]bool{}
	var out []string
	iter := l.rdb.Scan(ctx, 0, escapeGlob(prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) && len(out) < max {
		// The state is the name's last part (states hold no ':'; account ids may).
		rest := strings.TrimPrefix(iter.Val(), prefix)
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 || !tasks.State(rest[i+1:]).Valid() {
			continue
		}
		if acct := rest[:i]; !seen[acct] {
			seen[acct] = true
			out = append(out, acct)
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("ledger: accounts: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// escapeGlob quotes the glob characters of s for a SCAN MATCH pattern.
func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

// LatestAudit returns the n newest entries of the audit stream, newest first.
func (l *Ledger) LatestAudit(ctx context.Context, n int64) ([]AuditEntry, error) {
	msgs, err := l.rdb.XRevRangeN(ctx, l.keys.Audit(), "+", "-", n).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: audit: %w", err)
	}
	out := make([]AuditEntry, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, auditEntry(m))
	}
	return out, nil
}

// SessionStore keeps short-lived values of the console (its sessions and
// one-time sign-in codes) under {prefix}:console:, so every replica sees
// them. Names are the console's own (it hashes secrets before naming them).
type SessionStore struct {
	rdb    redis.UniversalClient
	prefix string
}

// Sessions returns the console's store.
func (l *Ledger) Sessions() *SessionStore {
	return &SessionStore{rdb: l.rdb, prefix: l.keys.consolePrefix()}
}

// Put stores value under name for ttl.
func (s *SessionStore) Put(ctx context.Context, name string, value []byte, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, s.prefix+name, value, ttl).Err(); err != nil {
		return fmt.Errorf("ledger: session store: %w", err)
	}
	return nil
}

// Get returns the value of name, or nil if there is none.
func (s *SessionStore) Get(ctx context.Context, name string) ([]byte, error) {
	v, err := s.rdb.Get(ctx, s.prefix+name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: session store: %w", err)
	}
	return v, nil
}

// Take returns the value of name and deletes it (nil if there is none).
func (s *SessionStore) Take(ctx context.Context, name string) ([]byte, error) {
	v, err := s.rdb.GetDel(ctx, s.prefix+name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: session store: %w", err)
	}
	return v, nil
}

// Delete removes name.
func (s *SessionStore) Delete(ctx context.Context, name string) error {
	if err := s.rdb.Del(ctx, s.prefix+name).Err(); err != nil {
		return fmt.Errorf("ledger: session store: %w", err)
	}
	return nil
}
