package adminapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"slices"
)

// Identity is a configured identity as other faces of the API (the review
// console) see it: its name, roles and account scope.
type Identity struct {
	Name     string
	Roles    []string
	Accounts Scope
}

func (c *caller) export() Identity {
	return Identity{Name: c.identity, Roles: slices.Clone(c.roles), Accounts: slices.Clone(c.scope)}
}

// Lookup finds the identity of a token in the set in force, comparing its
// hash in constant time with every token's (as the API's authentication does).
func (s *TokenStore) Lookup(token string) (Identity, bool) {
	sum := sha256.Sum256([]byte(token))
	tt := s.table.Load()
	found, idx := 0, 0
	for i := range tt.hashes {
		eq := subtle.ConstantTimeCompare(sum[:], tt.hashes[i][:])
		first := eq &^ found
		idx = subtle.ConstantTimeSelect(first, i, idx)
		found |= eq
	}
	if found == 0 {
		return Identity{}, false
	}
	return tt.callers[idx].export(), true
}

// ByName returns the identity called name in the set in force (a session
// holds a name: a reload that removes the identity ends its sessions, one
// that changes its roles or accounts applies at once).
func (s *TokenStore) ByName(name string) (Identity, bool) {
	tt := s.table.Load()
	for i := range tt.callers {
		if tt.callers[i].identity == name {
			return tt.callers[i].export(), true
		}
	}
	return Identity{}, false
}
