package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Account scopes of admin tokens.
//
// An admin token entry may end with options after white space:
//
//	identity:role[+role]:token accounts=acc_1|acc_2
//
// accounts= limits the identity to those provider account ids, for reads and decisions alike
// (the admin API and the review console). Without it the identity sees every account. The
// separators '|' and white space never occur in a provider account id (nor in a token), so an
// account id containing ':' stays unambiguous.

// tokenOptionAccounts is the option naming the accounts an identity is limited to.
const tokenOptionAccounts = "accounts"

// maxScopeAccounts bounds the accounts of one scope.
const maxScopeAccounts = 1000

// parseTokenOptions reads the options after an entry's identity:roles:token. It returns the
// accounts of the scope (nil: every account). Messages never quote the entry (it holds a token).
func parseTokenOptions(opts []string) ([]string, error) {
	var accounts []string
	seen := false
	for _, o := range opts {
		key, value, ok := strings.Cut(o, "=")
		switch {
		case !ok || key != tokenOptionAccounts:
			return nil, fmt.Errorf("unknown option (want %s=acc_1|acc_2)", tokenOptionAccounts)
		case seen:
			return nil, fmt.Errorf("%s= given twice", tokenOptionAccounts)
		}
		seen = true
		for a := range strings.SplitSeq(value, "|") {
			if !validName(a, "._:@=+/-") || len(a) > 256 {
				return nil, fmt.Errorf("%s=: each account id is 1 to 256 letters, digits and ._:@=+/-", tokenOptionAccounts)
			}
			if !slices.Contains(accounts, a) {
				accounts = append(accounts, a)
			}
		}
		if len(accounts) > maxScopeAccounts {
			return nil, fmt.Errorf("%s=: at most %d accounts", tokenOptionAccounts, maxScopeAccounts)
		}
	}
	return accounts, nil
}

// formatTokenOptions renders the options parseTokenOptions reads ("" when there are none).
func formatTokenOptions(t AdminToken) string {
	if len(t.Accounts) == 0 {
		return ""
	}
	return " " + tokenOptionAccounts + "=" + strings.Join(t.Accounts, "|")
}

// durationRange accepts durations in [lo, hi].
func durationRange(lo, hi time.Duration) func(time.Duration) error {
	return func(d time.Duration) error {
		if d < lo || d > hi {
			return fmt.Errorf("must be between %s and %s", lo, hi)
		}
		return nil
	}
}

// checkTrustedHeader accepts "" (off) or an HTTP header name that is not one the browser controls.
func checkTrustedHeader(s string) error {
	if s == "" {
		return nil
	}
	if !validName(s, "-") || len(s) > 64 {
		return errors.New("an HTTP header name: letters, digits and '-'")
	}
	switch strings.ToLower(s) {
	case "cookie", "authorization", "host", "origin", "referer", "user-agent", "content-type":
		return errors.New("a header the browser sets cannot carry a trusted identity")
	}
	return nil
}
