package ledger

import (
	"fmt"
	"testing"
	"time"
)

// TestConsoleReads: the accounts with sends are listed sorted (a glob
// character in an account id is matched literally), the audit newest first.
func TestConsoleReads(t *testing.T) {
	e := newEnv(t)
	e.create("s1", "acc-b")
	e.create("s2", "acc-a")
	e.create("s3", "acc-*")
	e.create("s4", "acc:c")
	e.create("s5", "acc-b")
	if _, err := e.l.Reject(e.ctx, "s5", "approver", ""); err != nil { // acc-b in two state indexes
		t.Fatal(err)
	}
	accts, err := e.l.KnownAccounts(e.ctx, 10)
	if err != nil || fmt.Sprint(accts) != "[acc-* acc-a acc-b acc:c]" {
		t.Fatalf("accounts %v, %v", accts, err)
	}
	if accts, err := e.l.KnownAccounts(e.ctx, 1); err != nil || len(accts) != 1 {
		t.Fatalf("bounded accounts %v, %v", accts, err)
	}
	latest, err := e.l.LatestAudit(e.ctx, 2)
	if err != nil || len(latest) != 2 || latest[0].SendID != "s5" || latest[1].SendID != "s5" {
		t.Fatalf("latest audit %+v, %v", latest, err)
	}
}

// TestSessionStore: values live under the ledger's prefix for their ttl;
// Take reads once; a missing name reads as nil.
func TestSessionStore(t *testing.T) {
	e := newEnv(t)
	s := e.l.Sessions()
	if err := s.Put(e.ctx, "session:x", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if ttl := e.rdb.TTL(e.ctx, e.l.keys.tag+"console:session:x").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl %v", ttl)
	}
	if v, err := s.Get(e.ctx, "session:x"); err != nil || string(v) != "v" {
		t.Fatalf("get %q, %v", v, err)
	}
	if v, err := s.Take(e.ctx, "session:x"); err != nil || string(v) != "v" {
		t.Fatalf("take %q, %v", v, err)
	}
	if v, err := s.Take(e.ctx, "session:x"); err != nil || v != nil {
		t.Fatalf("second take %q, %v", v, err)
	}
	if err := s.Put(e.ctx, "devcode:y", []byte("w"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(e.ctx, "devcode:y"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(e.ctx, "devcode:y"); err != nil || v != nil {
		t.Fatalf("deleted %q, %v", v, err)
	}
}
