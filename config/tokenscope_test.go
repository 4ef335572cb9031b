package config

import (
	"slices"
	"strings"
	"testing"
)

func TestAdminTokenAccounts(t *testing.T) {
	tests := []struct {
		in       string
		accounts []string
		problem  string
	}{
		{in: "bea:approver:bea-token-0123456789", accounts: nil},
		{in: "bea:approver:bea-token-0123456789 accounts=acc-1", accounts: []string{"acc-1"}},
		{in: "bea:approver:bea-token-0123456789   accounts=acc-1|acc:2|acc-1", accounts: []string{"acc-1", "acc:2"}},
		{in: "bea:approver:bea-token-0123456789 accounts=", problem: "each account id"},
		{in: "bea:approver:bea-token-0123456789 accounts=a||b", problem: "each account id"},
		{in: "bea:approver:bea-token-0123456789 accounts=a accounts=b", problem: "given twice"},
		{in: "bea:approver:bea-token-0123456789 scope=a", problem: "unknown option"},
		{in: "bea:approver:bea-token-0123456789 accounts=a;b", problem: "each account id"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			toks, err := parseAdminTokens(tc.in)
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("err = %v, want %q", err, tc.problem)
				}
				if strings.Contains(err.Error(), "bea-token") {
					t.Fatalf("the message quotes the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(toks) != 1 || toks[0].Token != "bea-token-0123456789" || !slices.Equal(toks[0].Accounts, tc.accounts) {
				t.Fatalf("got %+v", toks)
			}
			// The rendering round-trips.
			back, err := parseAdminTokens(formatAdminTokens(toks))
			if err != nil || !slices.Equal(back[0].Accounts, toks[0].Accounts) {
				t.Fatalf("round trip: %+v %v", back, err)
			}
			if s := toks[0].String(); strings.Contains(s, "bea-token") {
				t.Fatalf("String() reveals the token: %s", s)
			}
		})
	}
}

func TestAdminTokensOneIdentityOneScope(t *testing.T) {
	toks, err := parseAdminTokens("bea:approver:bea-token-0123456789 accounts=a,bea:approver:bea-token-9876543210 accounts=b")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkAdminTokens(toks); err == nil || !strings.Contains(err.Error(), "other accounts") {
		t.Fatalf("err = %v, want the other accounts refused", err)
	}
}

func FuzzParseTokenOptions(f *testing.F) {
	for _, s := range []string{"accounts=a|b", "accounts=", "x=y", "accounts=a accounts=b", "accounts=a:b|c@d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		accounts, err := parseTokenOptions(strings.Fields(s))
		if err != nil {
			return
		}
		for _, a := range accounts {
			if a == "" || strings.ContainsAny(a, "| \t,") {
				t.Fatalf("account %q accepted", a)
			}
		}
	})
}
