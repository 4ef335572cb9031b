package ledger

import (
	"slices"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

const (
	idPhone = "33611111111@s.whatsapp.net"
	idLID   = "1111222233334444@lid"
)

// An opt-out added under one form before the two forms are known to be one person is kept as
// unlinked; the link carries it to the other form and clears it; BeginAttempt's re-check then
// finds it under the other form.
func TestOptOutFollowsIdentityLink(t *testing.T) {
	t.Parallel()
	// Both ways onto and off the list file the contact under every known form: the plain
	// one (AddOptOut, RemoveOptOut) and the one with details that also ends pending sends
	// (PutOptOut, DeleteOptOut: the admin API and inbound STOP messages).
	type way struct {
		add    func(e *env, id string) error
		remove func(e *env, id string) error
	}
	ways := map[string]way{
		"plain": {
			add:    func(e *env, id string) error { return e.l.AddOptOut(e.ctx, id, "admin") },
			remove: func(e *env, id string) error { return e.l.RemoveOptOut(e.ctx, id, "admin") },
		},
		"with details": {
			add: func(e *env, id string) error {
				_, err := e.l.PutOptOut(e.ctx, OptOutRequest{Entry: OptOutEntry{ContactID: id, By: "admin", Reason: "request", Source: "api"}})
				return err
			},
			remove: func(e *env, id string) error { _, err := e.l.DeleteOptOut(e.ctx, id, "admin", "test"); return err },
		},
	}
	for name, w := range ways {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if err := w.add(e, " 33611111111@S.WhatsApp.net"); err != nil {
				t.Fatal(err)
			}
			if n, _ := e.l.UnlinkedOptOuts(e.ctx, tasks.FormPhone); n != 1 {
				t.Fatalf("unlinked phone opt-outs: %d", n)
			}
			if yes, _ := e.l.IsOptedOut(e.ctx, idLID); yes {
				t.Fatal("the lid form is opted out before anything links it")
			}
			if err := e.l.LinkIdentity(e.ctx, idLID, idPhone); err != nil {
				t.Fatal(err)
			}
			if yes, _ := e.l.IsOptedOut(e.ctx, idLID); !yes {
				t.Fatal("the link did not carry the opt-out to the lid form")
			}
			if n, _ := e.l.UnlinkedOptOuts(e.ctx, tasks.FormPhone); n != 0 {
				t.Fatalf("unlinked phone opt-outs after the link: %d", n)
			}
			if got, _ := e.l.LinkedID(e.ctx, idPhone); got != idLID {
				t.Fatalf("linked id %q", got)
			}
			rec, gen := e.approved("s1", "acct")
			res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "t", Lease: time.Minute,
				ContactIDs: []string{"chat-s1", idLID}})
			if err != nil || res.Outcome != BeginOptedOut {
				t.Fatalf("begin %v %v", res.Outcome, err)
			}
			// Removing it under either form removes both.
			if err := w.remove(e, idLID); err != nil {
				t.Fatal(err)
			}
			if yes, _ := e.l.IsOptedOut(e.ctx, idPhone, idLID); yes {
				t.Fatal("still opted out after removal")
			}
			if ev := e.auditEvents(); !slices.Equal(ev, []string{"optout_added", "optout_linked", "enqueued", "approved", "optout_removed"}) {
				t.Fatalf("audit %v", ev)
			}
		})
	}
}

// Once the link is known, an opt-out added with either form is stored under both, and is not
// unlinked; linking twice changes nothing; ids of one form or of no WhatsApp form are not linked.
func TestOptOutUnderEveryKnownForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, pair := range [][2]string{{idPhone, idLID}, {idPhone, idLID}, {idPhone, "33622222222@s.whatsapp.net"}, {"chat-1", idLID}} {
		if err := e.l.LinkIdentity(e.ctx, pair[0], pair[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.l.AddOptOut(e.ctx, idLID, "inbound"); err != nil {
		t.Fatal(err)
	}
	list, _ := e.l.OptOuts(e.ctx)
	if !slices.Equal(list, []string{idLID, idPhone}) {
		t.Fatalf("opt-outs %v", list)
	}
	for _, f := range []tasks.IDForm{tasks.FormPhone, tasks.FormLID} {
		if n, _ := e.l.UnlinkedOptOuts(e.ctx, f); n != 0 {
			t.Fatalf("%s unlinked: %d", f, n)
		}
	}
	if got, _ := e.l.LinkedID(e.ctx, "33622222222@s.whatsapp.net"); got != "" {
		t.Fatalf("two phone ids linked: %q", got)
	}
	// A non-WhatsApp id is opted out as it is, never unlinked.
	if err := e.l.AddOptOut(e.ctx, "chat-9", "admin"); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.l.UnlinkedOptOuts(e.ctx, tasks.FormOther); n != 0 {
		t.Fatal("FormOther counted")
	}
}

// A send whose recipient is known without one id form is not begun while an opt-out of that
// form is linked to no one (BeginIdentityUnresolved); once the link is known, or the opt-out
// gone, it is. A marker an older release left in the opt-out set is never listed, refuses
// nothing, and no one can add one.
func TestUnlinkedOptOutHoldsALoneRecipient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const marker = unlinkedMarkerPrefix + "phone"
	if err := e.rdb.SAdd(e.ctx, e.l.keys.OptOut(), marker).Err(); err != nil { // as an older release left it
		t.Fatal(err)
	}
	begin := func(id string) BeginOutcome {
		t.Helper()
		rec, gen := e.approved(id, "acct")
		res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: id, Digest: rec.Digest, Gen: gen, Token: "t-" + id,
			Lease: time.Minute, ContactIDs: []string{"chat-lone", "555@lid"}, Identities: []Identity{{LID: "555@lid"}},
			NoRecord: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome == BeginIdentityUnresolved && (res.Unresolved != tasks.FormPhone || res.UnlinkedOptOuts != 1) {
			t.Fatalf("unresolved %v %d", res.Unresolved, res.UnlinkedOptOuts)
		}
		return res.Outcome
	}
	if got := begin("s0"); got != BeginOK {
		t.Fatalf("an old marker alone: %v", got)
	}
	if err := e.l.AddOptOut(e.ctx, idPhone, "inbound"); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.l.OptOuts(e.ctx); !slices.Equal(list, []string{idPhone}) {
		t.Fatalf("opt-outs %v", list)
	}
	if got := begin("s1"); got != BeginIdentityUnresolved {
		t.Fatalf("an unlinked opt-out of the missing form: %v", got)
	}
	wantState(t, e.get("s1"), tasks.StateApproved, "")
	// The opt-out turns out to be someone else's: linked, it no longer holds the send.
	if err := e.l.LinkIdentity(e.ctx, idPhone, idLID); err != nil {
		t.Fatal(err)
	}
	if got := begin("s2"); got != BeginOK {
		t.Fatalf("after the link: %v", got)
	}
	// An unlinked one added, then removed: nothing holds the send.
	if err := e.l.AddOptOut(e.ctx, "33699999999@s.whatsapp.net", "admin"); err != nil {
		t.Fatal(err)
	}
	if got := begin("s3"); got != BeginIdentityUnresolved {
		t.Fatalf("a new unlinked opt-out: %v", got)
	}
	if err := e.l.RemoveOptOut(e.ctx, "33699999999@s.whatsapp.net", "admin"); err != nil {
		t.Fatal(err)
	}
	if got := begin("s4"); got != BeginOK {
		t.Fatalf("after its removal: %v", got)
	}
	if err := e.l.AddOptOut(e.ctx, marker, "admin"); err == nil {
		t.Fatal("the marker was accepted as a contact id")
	}
}

// An opt-out given as a phone number in international format is filed under the person's
// phone-form id, the one the checks at dispatch compare.
func TestOptOutOfAPhoneNumber(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.l.AddOptOut(e.ctx, "+33 6 11 11 11 11", "admin"); err != nil {
		t.Fatal(err)
	}
	if yes, _ := e.l.IsOptedOut(e.ctx, "33611111111@s.whatsapp.net"); !yes {
		t.Fatal("a +33 number did not opt out its phone-form id")
	}
	if _, err := e.l.PutOptOut(e.ctx, OptOutRequest{Entry: OptOutEntry{ContactID: "+33 6 22 22 22 22", By: "admin"}}); err != nil {
		t.Fatal(err)
	}
	if yes, _ := e.l.IsOptedOut(e.ctx, "33622222222@s.whatsapp.net"); !yes {
		t.Fatal("PutOptOut: a +33 number did not opt out its phone-form id")
	}
}

// BeginAttempt checks the recipients' identities atomically with the opt-out check: a pair seen
// together is linked, an id seen alone is checked with its linked id, and an id with no link is
// not begun while an opt-out of its missing form is linked to no one.
func TestBeginIdentities(t *testing.T) {
	t.Parallel()
	const other = "33699999999@s.whatsapp.net" // someone's opt-out, linked to no @lid
	cases := []struct {
		name     string
		optOut   []string // before the begin ("+marker": an older release's marker of the phone form)
		link     bool     // idPhone and idLID linked before the begin
		ids      []Identity
		contacts []string
		want     BeginOutcome
		linked   bool // idPhone and idLID linked after the begin
	}{
		{"pair: linked by the begin", nil, false, []Identity{{Phone: idPhone, LID: idLID}}, []string{idPhone, idLID}, BeginOK, true},
		{"pair: opted out under one form", []string{idPhone}, false, []Identity{{Phone: idPhone, LID: idLID}},
			[]string{idPhone, idLID}, BeginOptedOut, true},
		{"alone: the linked form opted out", []string{idPhone}, true, []Identity{{LID: idLID}}, []string{idLID}, BeginOptedOut, true},
		{"alone: linked, no opt-out", []string{other}, true, []Identity{{LID: idLID}}, []string{idLID}, BeginOK, true},
		{"alone: no link, no unlinked opt-out", nil, false, []Identity{{LID: idLID}}, []string{idLID}, BeginOK, false},
		{"alone: no link, an unlinked opt-out", []string{other}, false, []Identity{{LID: idLID}}, []string{idLID},
			BeginIdentityUnresolved, false},
		{"alone: no link, opted out itself", []string{other, idLID}, false, []Identity{{LID: idLID}}, []string{idLID},
			BeginOptedOut, false},
		{"alone: no link, only a marker an older release left", []string{"+marker"}, false,
			[]Identity{{LID: idLID}}, []string{idLID}, BeginOK, false},
		{"not a WhatsApp person", []string{other}, false, []Identity{{Phone: "chat-1", LID: "x@g.us"}}, []string{"chat-1"},
			BeginOK, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tc.link {
				if err := e.l.LinkIdentity(e.ctx, idPhone, idLID); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range tc.optOut {
				if id == "+marker" {
					// as an older release left it, with no unlinked opt-out behind it
					if err := e.rdb.SAdd(e.ctx, e.l.keys.OptOut(), unlinkedMarkerPrefix+"phone").Err(); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := e.l.AddOptOut(e.ctx, id, "admin"); err != nil {
					t.Fatal(err)
				}
			}
			rec, gen := e.approved("s1", "acct")
			res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "t",
				Lease: time.Minute, ContactIDs: tc.contacts, Identities: tc.ids, NoRecord: true})
			if err != nil || res.Outcome != tc.want {
				t.Fatalf("begin %v %v, want %v", res.Outcome, err, tc.want)
			}
			want := map[BeginOutcome]tasks.State{BeginOK: tasks.StateSending, BeginOptedOut: tasks.StateSkipped,
				BeginIdentityUnresolved: tasks.StateApproved}[tc.want]
			if got := e.get("s1"); got.State != want || (want == tasks.StateApproved && got.Attempts != 0) {
				t.Fatalf("state %s attempts %d, want %s", got.State, got.Attempts, want)
			}
			if got, _ := e.l.LinkedID(e.ctx, idLID); (got == idPhone) != tc.linked {
				t.Fatalf("linked id of %s: %q, want linked %v", idLID, got, tc.linked)
			}
			if tc.want == BeginIdentityUnresolved && (res.Unresolved != tasks.FormPhone || res.UnlinkedOptOuts != 1) {
				t.Fatalf("unresolved %v %d", res.Unresolved, res.UnlinkedOptOuts)
			}
		})
	}
}
