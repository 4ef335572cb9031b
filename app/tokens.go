package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/adminapi"
	"github.com/sendworker/sendworker/config"
)

// tokensFilePoll is how often the tokens file is checked for a change. Polling the content
// (not the mtime, not inotify) also sees a Kubernetes Secret update, which swaps a symlink.
const tokensFilePoll = 2 * time.Second

// tokenState is the admin tokens in force: the store the API authenticates against, and the
// entries it was built from (to say which identities a reload added or removed).
type tokenState struct {
	store *adminapi.TokenStore

	mu      sync.Mutex
	current []config.AdminToken
	sum     [sha256.Size]byte // of the file content last loaded (zero: from the environment)
}

func apiTokens(tokens []config.AdminToken) []adminapi.Token {
	out := make([]adminapi.Token, 0, len(tokens))
	for _, t := range tokens {
		out = append(out, adminapi.Token{Identity: t.Identity, Roles: t.Roles, Token: t.Token.Reveal(), Accounts: t.Accounts})
	}
	return out
}

// ReloadTokens reads SENDWORKER_ADMIN_TOKENS_FILE again and, if it is valid, swaps the admin
// API's tokens at once (requests in flight finish with the set they started with). It logs the
// identities added, removed and whose tokens or roles changed, never a token. An invalid or
// unreadable file changes nothing: the tokens in force stay, and the error says why. Tokens
// given in SENDWORKER_ADMIN_TOKENS (not a file) cannot be reloaded.
func (a *App) ReloadTokens() error {
	path := a.cfg.Admin.TokensFile
	if path == "" {
		return errors.New("admin tokens come from SENDWORKER_ADMIN_TOKENS, not a file: nothing to reload")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		a.log.Error("admin tokens not reloaded: the tokens in force stay", zap.String("file", path), zap.Error(err))
		return err
	}
	return a.reloadTokens(path, sha256.Sum256(data))
}

func (a *App) reloadTokens(path string, sum [sha256.Size]byte) error {
	tokens, err := config.ReadAdminTokensFile(path)
	if err != nil {
		a.log.Error("admin tokens not reloaded: the tokens in force stay", zap.String("file", path), zap.Error(err))
		return err
	}
	s := &a.tokens
	s.mu.Lock()
	defer s.mu.Unlock()
	added, removed, changed := diffIdentities(s.current, tokens)
	s.store.Set(apiTokens(tokens))
	s.current, s.sum = tokens, sum
	a.log.Info("admin tokens reloaded", zap.String("file", path), zap.Int("tokens", len(tokens)),
		zap.Strings("identities_added", added), zap.Strings("identities_removed", removed),
		zap.Strings("identities_changed", changed))
	return nil
}

// watchTokensFile reloads the tokens when the file's content changes.
func (a *App) watchTokensFile(ctx context.Context, every time.Duration) error {
	path := a.cfg.Admin.TokensFile
	if data, err := os.ReadFile(path); err == nil {
		a.tokens.mu.Lock()
		a.tokens.sum = sha256.Sum256(data)
		a.tokens.mu.Unlock()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		if err != nil {
			a.logs.Warn(a.log, "admin tokens file unreadable: the tokens in force stay", zap.String("file", path), zap.Error(err))
			continue
		}
		sum := sha256.Sum256(data)
		a.tokens.mu.Lock()
		same := bytes.Equal(sum[:], a.tokens.sum[:])
		a.tokens.mu.Unlock()
		if same {
			continue
		}
		if err := a.reloadTokens(path, sum); err != nil {
			// Do not retry a bad content every tick: wait for the next change.
			a.tokens.mu.Lock()
			a.tokens.sum = sum
			a.tokens.mu.Unlock()
		}
	}
}

// diffIdentities compares two token sets by identity: identities only in next (added), only in
// prev (removed), and in both with other tokens or roles (changed). Sorted; never tokens.
func diffIdentities(prev, next []config.AdminToken) (added, removed, changed []string) {
	group := func(ts []config.AdminToken) map[string][]string {
		m := map[string][]string{}
		for _, t := range ts {
			m[t.Identity] = append(m[t.Identity], t.Token.Reveal()+"\x00"+string(rolesKey(t.Roles))+"\x00"+strings.Join(t.Accounts, "|"))
		}
		for _, v := range m {
			slices.Sort(v)
		}
		return m
	}
	p, n := group(prev), group(next)
	for id, v := range n {
		old, ok := p[id]
		switch {
		case !ok:
			added = append(added, id)
		case !slices.Equal(old, v):
			changed = append(changed, id)
		}
	}
	for id := range p {
		if _, ok := n[id]; !ok {
			removed = append(removed, id)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	slices.Sort(changed)
	return added, removed, changed
}

func rolesKey(roles []string) []byte {
	r := slices.Clone(roles)
	slices.Sort(r)
	var b []byte
	for _, s := range r {
		b = append(b, s...)
		b = append(b, '+')
	}
	return b
}
