package console_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

func TestNoSessionGoesToSignIn(t *testing.T) {
	d := startDaemon(t, nil)
	d.enqueue(t, sendReq("s-1", "hello"), "sequencer")
	b := d.browser(t)
	for _, path := range []string{"/console/", "/console/sends/s-1", "/console/accounts", "/console/activity"} {
		p := b.get(path)
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/console/login?next=") {
			t.Fatalf("GET %s without a session: %d %s", path, p.status, p.header.Get("Location"))
		}
	}
	wantPage(t, b.post("/console/sends/s-1/approve", form("digest", d.record(t, "s-1").Digest)), http.StatusUnauthorized, "Sign in")
	wantPage(t, b.get("/console/live"), http.StatusUnauthorized)
	if d.record(t, "s-1").State != tasks.StatePendingApproval {
		t.Fatal("a request without a session changed the send")
	}
	// The API next door still answers JSON, the console HTML.
	wantPage(t, b.get("/console/nope"), http.StatusNotFound, "There is no such page")
	if p := b.get("/v1/sends"); p.status != http.StatusUnauthorized || !strings.Contains(p.header.Get("Content-Type"), "json") {
		t.Fatalf("API: %d %s", p.status, p.header.Get("Content-Type"))
	}
}

func TestSignInCookieAndSignOut(t *testing.T) {
	d := startDaemon(t, nil)
	b := d.browser(t)
	// A wrong token, and a sign-in form without its CSRF value, are refused.
	wantPage(t, b.post("/console/login", form("csrf", b.csrf("/console/login"), "token", "not-a-token-0123456789")), http.StatusUnauthorized, "not valid")
	wantPage(t, b.post("/console/login", form("token", tokAppr)), http.StatusForbidden, "CSRF")

	csrf := b.csrf("/console/login")
	p := b.post("/console/login", form("csrf", csrf, "token", tokAppr, "next", "https://evil.example/"))
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/" {
		t.Fatalf("sign-in: %d to %q (an outside next must not be followed)", p.status, p.header.Get("Location"))
	}
	ck := p.header.Values("Set-Cookie")
	var session string
	for _, c := range ck {
		if strings.HasPrefix(c, "sw_session=") {
			session = c
		}
	}
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/console/", "Max-Age=43200"} {
		if !strings.Contains(session, want) {
			t.Fatalf("session cookie %q lacks %s", session, want)
		}
	}
	if strings.Contains(session, "Secure") {
		t.Fatalf("plain HTTP got a Secure cookie: %s", session)
	}
	if strings.Contains(session, tokAppr) {
		t.Fatal("the cookie holds the token")
	}
	wantPage(t, b.get("/console/"), http.StatusOK, "Pending approval", "approver-1")

	// Sign out: the session ends on the server, not only in this browser.
	cookieURL, _ := url.Parse(d.base + "/console/")
	old := b.c.Jar.Cookies(cookieURL)
	p = b.post("/console/logout", form("csrf", b.csrf("/console/")))
	if p.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", p.status)
	}
	b2 := d.browser(t)
	b2.c.Jar.SetCookies(cookieURL, old)
	if p := b2.get("/console/"); p.status != http.StatusSeeOther {
		t.Fatalf("the old session cookie still works after sign-out: %d", p.status)
	}
}

func TestWrongRoleIs403(t *testing.T) {
	d := startDaemon(t, nil)
	sched := d.browser(t)
	sched.signIn(tokSched)
	wantPage(t, sched.get("/console/"), http.StatusForbidden, "needs the role")
	appr := d.browser(t)
	appr.signIn(tokAppr)
	wantPage(t, appr.get("/console/accounts"), http.StatusForbidden, "needs the role admin")
	wantPage(t, appr.post("/console/accounts/acc-paris/pause", form("csrf", appr.csrf("/console/"))), http.StatusForbidden)
	admin := d.browser(t)
	admin.signIn(tokAdmin)
	d.enqueue(t, sendReq("s-1", "hello"), "sequencer")
	// An admin reads the queue but does not approve (separation of duties).
	p := admin.get("/console/sends/s-1")
	wantPage(t, p, http.StatusOK, "hello")
	if strings.Contains(p.body, `id="approve"`) {
		t.Fatal("an admin without the approver role is offered Approve")
	}
	wantPage(t, admin.post("/console/sends/s-1/approve", form("csrf", admin.csrf("/console/"), "digest", d.record(t, "s-1").Digest)), http.StatusForbidden)
	if d.record(t, "s-1").State != tasks.StatePendingApproval {
		t.Fatal("an admin approved")
	}
}

func TestMissingCSRFIsRefused(t *testing.T) {
	d := startDaemon(t, nil)
	rec := d.enqueue(t, sendReq("s-1", "hello"), "sequencer")
	b := d.browser(t)
	b.signIn(tokBoss)
	good := b.csrf("/console/")
	for name, f := range map[string]url.Values{
		"no token":    form("digest", rec.Digest),
		"wrong token": form("digest", rec.Digest, "csrf", strings.Repeat("0", 64)),
	} {
		t.Run(name, func(t *testing.T) {
			wantPage(t, b.post("/console/sends/s-1/approve", f), http.StatusForbidden, "CSRF")
		})
	}
	wantPage(t, b.post("/console/bulk", form("action", "approve", "item", "s-1 "+rec.Digest)), http.StatusForbidden, "CSRF")
	wantPage(t, b.post("/console/accounts/acc-paris/pause", nil), http.StatusForbidden, "CSRF")
	// The right token from another site is refused too (Fetch metadata).
	wantPage(t, b.do("POST", "/console/sends/s-1/approve", form("digest", rec.Digest, "csrf", good), map[string]string{"Sec-Fetch-Site": "cross-site"}), http.StatusForbidden)
	if d.record(t, "s-1").State != tasks.StatePendingApproval {
		t.Fatal("a refused form changed the send")
	}
	if paused, _, _ := d.app.Ledger().PauseState(context.Background()); paused {
		t.Fatal("paused")
	}
}

func TestSendPageShowsTheConversationAndApproves(t *testing.T) {
	d := startDaemon(t, nil)
	text := "Bonjour Camille 👋\nجملة بالعربية\nLigne trois"
	rec := d.enqueue(t, sendReq("s-1", text), "sequencer")
	d.enqueue(t, sendReq("s-2", "second"), "sequencer")
	b := d.browser(t)
	b.signIn(tokAppr)
	q := b.get("/console/")
	wantPage(t, q, http.StatusOK, "s-1", "s-2", "seq-1", "<strong id=\"pending-total\">2</strong>")
	if strings.Index(q.body, "s-1") > strings.Index(q.body, "s-2") {
		t.Fatal("queue not oldest deadline first")
	}
	p := b.get("/console/sends/s-1")
	wantPage(t, p, http.StatusOK, html.EscapeString(text), "Camille Martin", "Sales Paris",
		html.EscapeString("Oui, appelons-nous jeudi."), "Merci ! Je la lis ce week-end.", rec.Digest, `id="next-send"`)
	// Conversation newest at the bottom.
	if strings.Index(p.body, "Merci !") > strings.Index(p.body, "appelons-nous") {
		t.Fatal("conversation is not oldest first")
	}
	r := b.post("/console/sends/s-1/approve", form("csrf", b.csrf("/console/sends/s-1"), "digest", rec.Digest))
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/console/sends/s-2") {
		t.Fatalf("approve: %d %s (want the next send)", r.status, r.header.Get("Location"))
	}
	got := d.waitState(t, "s-1", tasks.StateSent)
	if got.Approval == nil || got.Approval.By != "approver-1" || got.Approval.Digest != rec.Digest {
		t.Fatalf("approval = %+v", got.Approval)
	}
	wantPage(t, b.get(r.header.Get("Location")), http.StatusOK, "Approved s-1.")
	// Reject needs a reason; with one it ends the send.
	wantPage(t, b.post("/console/sends/s-2/reject", form("csrf", b.csrf("/console/"))), http.StatusBadRequest, "Say why")
	wantPage(t, b.post("/console/sends/s-2/reject", form("csrf", b.csrf("/console/"), "reason", "wrong tone")), http.StatusSeeOther)
	if got := d.record(t, "s-2"); got.State != tasks.StateRejected || got.Decision.Note != "wrong tone" {
		t.Fatalf("s-2 = %s %+v", got.State, got.Decision)
	}
	// The activity view shows both decisions and who made them.
	wantPage(t, b.get("/console/activity?q=approver-1"), http.StatusOK, "approved", "rejected", "wrong tone")
	wantPage(t, b.get("/console/sends/s-1"), http.StatusOK, "sent", "Approved by approver-1")
}

func TestSelfApprovalAndStaleDigestAreRefused(t *testing.T) {
	d := startDaemon(t, nil)
	mine := d.enqueue(t, sendReq("mine", "from alice"), "alice")
	b := d.browser(t)
	b.signIn(tokBoth)
	p := b.get("/console/sends/mine")
	wantPage(t, p, http.StatusOK, "someone else approves it")
	if strings.Contains(p.body, `id="approve"`) {
		t.Fatal("the requester is offered Approve")
	}
	wantPage(t, b.post("/console/sends/mine/approve", form("csrf", b.csrf("/console/"), "digest", mine.Digest)), http.StatusForbidden, "You requested this send")
	if d.record(t, "mine").State != tasks.StatePendingApproval {
		t.Fatal("self-approved")
	}

	// A digest other than the send's (the page showed other content): nothing approved.
	rec := d.enqueue(t, sendReq("s-1", "current text"), "sequencer")
	stale := sendReq("s-1", "text shown earlier")
	wantPage(t, b.post("/console/sends/s-1/approve", form("csrf", b.csrf("/console/"), "digest", stale.Digest())), http.StatusConflict, "changed since the page was shown", "current text")
	if d.record(t, "s-1").State != tasks.StatePendingApproval {
		t.Fatal("a stale digest approved")
	}
	// Decided meanwhile (another tab rejected it): the page says so.
	if _, err := d.app.Approval().Reject(context.Background(), "s-1", "approver-1", "no"); err != nil {
		t.Fatal(err)
	}
	wantPage(t, b.post("/console/sends/s-1/approve", form("csrf", b.csrf("/console/"), "digest", rec.Digest)), http.StatusConflict, "decided or moved on meanwhile", "rejected")
}

func TestScopedApproverSeesOnlyItsAccounts(t *testing.T) {
	d := startDaemon(t, nil)
	paris := d.enqueue(t, sendReq("p-1", "paris text"), "sequencer")
	lyon := sendReq("l-1", "lyon text")
	lyon.AccountID, lyon.ChatID = "acc-lyon", "chat-lyon-chloe"
	d.enqueue(t, lyon, "sequencer")

	b := d.browser(t)
	b.signIn(tokLyon)
	q := b.get("/console/")
	wantPage(t, q, http.StatusOK, "l-1", "<strong id=\"pending-total\">1</strong>")
	if strings.Contains(q.body, "p-1") || strings.Contains(q.body, "paris text") {
		t.Fatal("the queue shows another account's send")
	}
	wantPage(t, b.get("/console/?account=acc-paris"), http.StatusForbidden)
	wantPage(t, b.get("/console/sends/p-1"), http.StatusNotFound)
	csrf := b.csrf("/console/")
	wantPage(t, b.post("/console/sends/p-1/approve", form("csrf", csrf, "digest", paris.Digest)), http.StatusNotFound)
	wantPage(t, b.post("/console/sends/p-1/reject", form("csrf", csrf, "reason", "x")), http.StatusNotFound)
	wantPage(t, b.post("/console/bulk", form("csrf", csrf, "action", "approve", "item", "p-1 "+paris.Digest)), http.StatusOK, "0 of 1 sends approved", "no such send")
	wantPage(t, b.post("/console/accounts/acc-paris/pause", form("csrf", csrf)), http.StatusForbidden)
	acc := b.get("/console/accounts")
	wantPage(t, acc, http.StatusOK, "acc-lyon")
	if strings.Contains(acc.body, "acc-paris") {
		t.Fatal("the accounts page shows another account")
	}
	if act := b.get("/console/activity"); strings.Contains(act.body, "p-1") {
		t.Fatal("the activity shows another account's send")
	}
	if d.record(t, "p-1").State != tasks.StatePendingApproval {
		t.Fatal("a scoped approver decided another account's send")
	}
	// Its own account works.
	wantPage(t, b.get("/console/sends/l-1"), http.StatusOK, "lyon text")
}

func TestQueuePagesFiltersAndLiveCount(t *testing.T) {
	d := startDaemon(t, nil)
	for i := range 60 {
		r := sendReq(fmt.Sprintf("s-%02d", i), "text")
		if i%2 == 1 {
			r.Metadata = []byte(`{"sequence":"seq-2","step":3}`)
		}
		d.enqueue(t, r, "sequencer")
	}
	b := d.browser(t)
	b.signIn(tokAppr)
	p := b.get("/console/")
	wantPage(t, p, http.StatusOK, "s-00", "s-49", `id="next-page"`)
	if strings.Contains(p.body, ">s-50<") {
		t.Fatal("more than 50 rows on a page")
	}
	next := html.UnescapeString(regexpFind(t, p.body, `href="(/console/\?[^"]*after=[^"]+)"`))
	wantPage(t, b.get(next), http.StatusOK, "s-50", "s-59")
	f := b.get("/console/?sequence=seq-2&step=3")
	wantPage(t, f, http.StatusOK, "s-01", "s-59")
	if strings.Contains(f.body, ">s-00<") {
		t.Fatal("the filter kept another sequence")
	}
	wantPage(t, b.get("/console/?after=garbage"), http.StatusBadRequest)
	// The live count for the title.
	live := b.get("/console/live")
	wantPage(t, live, http.StatusOK, `{"pending":60}`)
	// The partial refresh is the rows alone.
	part := b.get("/console/?partial=1")
	if strings.Contains(part.body, "<html") || !strings.Contains(part.body, "s-00") {
		t.Fatalf("partial = %.200s", part.body)
	}
}

func TestBulkApproveAndReject(t *testing.T) {
	d := startDaemon(t, nil)
	var items []string
	for i := range 4 {
		rec := d.enqueue(t, sendReq(fmt.Sprintf("b-%d", i), fmt.Sprintf("bulk %d", i)), "sequencer")
		items = append(items, rec.SendID+" "+rec.Digest)
	}
	b := d.browser(t)
	b.signIn(tokAppr)
	csrf := b.csrf("/console/")
	// b-2 is shown with a digest that is no longer its own: only that one is refused.
	older := sendReq("b-2", "older text")
	items[2] = "b-2 " + older.Digest()
	f := form("csrf", csrf, "action", "approve")
	f["item"] = items[:3]
	wantPage(t, b.post("/console/bulk", f), http.StatusOK, "2 of 3 sends approved", "changed since the page was shown")
	for id, want := range map[string]tasks.State{"b-0": tasks.StateSent, "b-1": tasks.StateSent} {
		d.waitState(t, id, want)
	}
	if d.record(t, "b-2").State != tasks.StatePendingApproval || d.record(t, "b-3").State != tasks.StatePendingApproval {
		t.Fatal("bulk approved a send it was not given (or with the wrong digest)")
	}
	wantPage(t, b.post("/console/bulk", form("csrf", csrf, "action", "reject", "item", items[3])), http.StatusBadRequest, "Say why")
	wantPage(t, b.post("/console/bulk", form("csrf", csrf, "action", "reject", "reason", "dup", "item", items[3])), http.StatusOK, "1 of 1 sends rejected")
	wantPage(t, b.post("/console/bulk", form("csrf", csrf, "action", "approve")), http.StatusBadRequest, "No send was selected")
}

// A send whose text the queue cuts short was never on screen in full: the queue marks it and a
// bulk approval refuses it (it is approved from its own page), while the rest of the batch goes.
func TestBulkApproveRefusesWhatTheQueueCutShort(t *testing.T) {
	d := startDaemon(t, nil)
	long := d.enqueue(t, sendReq("long", strings.Repeat("A long follow-up. ", 20)+"The last line matters."), "sequencer")
	short := d.enqueue(t, sendReq("short", "Short and whole."), "sequencer")
	b := d.browser(t)
	b.signIn(tokAppr)
	wantPage(t, b.get("/console/"), http.StatusOK, "open to approve")
	f := form("csrf", b.csrf("/console/"), "action", "approve")
	f["item"] = []string{long.SendID + " " + long.Digest, short.SendID + " " + short.Digest}
	wantPage(t, b.post("/console/bulk", f), http.StatusOK, "1 of 2 sends approved", "open it to read it in full")
	d.waitState(t, "short", tasks.StateSent)
	if st := d.record(t, "long").State; st != tasks.StatePendingApproval {
		t.Fatalf("the cut-short send is %s, want pending_approval", st)
	}
}

func TestAccountsPagePauseResume(t *testing.T) {
	d := startDaemon(t, nil)
	d.enqueue(t, sendReq("s-1", "x"), "sequencer")
	b := d.browser(t)
	b.signIn(tokAdmin)
	wantPage(t, b.get("/console/accounts"), http.StatusOK, "acc-paris", "Sales Paris", "breaker closed", "Pause sends")
	r := b.post("/console/accounts/acc-paris/pause", form("csrf", b.csrf("/console/accounts")))
	if r.status != http.StatusSeeOther {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	if _, accts, _ := d.app.Ledger().PauseState(context.Background()); len(accts) != 1 || accts[0] != "acc-paris" {
		t.Fatalf("paused accounts = %v", accts)
	}
	wantPage(t, b.get("/console/accounts"), http.StatusOK, "Resume sends", "paused")
	b.post("/console/accounts/acc-paris/resume", form("csrf", b.csrf("/console/accounts")))
	if _, accts, _ := d.app.Ledger().PauseState(context.Background()); len(accts) != 0 {
		t.Fatalf("still paused: %v", accts)
	}
	wantPage(t, b.get("/console/activity?q=paused"), http.StatusOK, "ops", "acc-paris")
}

func TestTrustedHeaderMode(t *testing.T) {
	d := startDaemon(t, map[string]string{"SENDWORKER_CONSOLE_TRUSTED_HEADER": "X-Forwarded-Email"})
	rec := d.enqueue(t, sendReq("s-1", "x"), "sequencer")
	b := d.browser(t)
	hdr := map[string]string{"X-Forwarded-Email": "approver-1"}
	wantPage(t, b.do("GET", "/console/", nil, hdr), http.StatusOK, "approver-1")
	// Without the header (or with an unknown identity): no session.
	if p := d.browser(t).do("GET", "/console/", nil, map[string]string{"X-Forwarded-Email": "mallory"}); p.status != http.StatusSeeOther {
		t.Fatalf("unknown identity: %d", p.status)
	}
	// A form still needs its CSRF token.
	wantPage(t, b.do("POST", "/console/sends/s-1/approve", form("digest", rec.Digest), hdr), http.StatusForbidden)
	p := b.do("GET", "/console/sends/s-1", nil, hdr)
	csrf := regexpFind(t, p.body, `name="csrf" value="([^"]+)"`)
	wantPage(t, b.do("POST", "/console/sends/s-1/approve", form("csrf", csrf, "digest", rec.Digest), hdr), http.StatusSeeOther)
	// The session follows the header: another identity behind the same cookie is not the first.
	wantPage(t, b.do("GET", "/console/accounts", nil, map[string]string{"X-Forwarded-Email": "ops"}), http.StatusOK, "ops")
}

func TestDevLinkSignsInOnce(t *testing.T) {
	d := startDaemon(t, nil)
	code, err := d.app.Console().NewDevCode(context.Background(), "approver-1")
	if err != nil {
		t.Fatal(err)
	}
	b := d.browser(t)
	if p := b.get("/console/dev-login?code=" + code); p.status != http.StatusSeeOther {
		t.Fatalf("dev link: %d", p.status)
	}
	wantPage(t, b.get("/console/"), http.StatusOK, "approver-1")
	wantPage(t, d.browser(t).get("/console/dev-login?code="+code), http.StatusUnauthorized, "used up")
}

func TestReviseThenApprove(t *testing.T) {
	d := startDaemon(t, nil)
	orig := d.enqueue(t, sendReq("s-1", "Helo Camille"), "alice")
	b := d.browser(t)
	b.signIn(tokAppr)
	csrf := b.csrf("/console/sends/s-1")
	// A correction from a page showing an older text is refused.
	older := sendReq("s-1", "older")
	wantPage(t, b.post("/console/sends/s-1/revise", form("csrf", csrf, "digest", older.Digest(), "text", "x")), http.StatusConflict, "your correction was not saved")
	r := b.post("/console/sends/s-1/revise", form("csrf", csrf, "digest", orig.Digest, "text", "Hello Camille,\r\nsee you Thursday"))
	if r.status != http.StatusSeeOther {
		t.Fatalf("revise: %d %s", r.status, r.body)
	}
	rec := d.record(t, "s-1")
	if rec.Revision != 1 || rec.RevisedBy != "approver-1" || rec.Request.Text != "Hello Camille,\nsee you Thursday" {
		t.Fatalf("revised = %+v", rec)
	}
	wantPage(t, b.get(r.header.Get("Location")), http.StatusOK, "Saved revision 1", "revision 1 by approver-1", "see you Thursday")
	// The old digest (an open tab) cannot be approved.
	wantPage(t, b.post("/console/sends/s-1/approve", form("csrf", csrf, "digest", orig.Digest)), http.StatusConflict, "changed since the page was shown")
	// The requester cannot approve the revision; the editor can.
	alice := d.browser(t)
	alice.signIn(tokBoth)
	wantPage(t, alice.post("/console/sends/s-1/approve", form("csrf", alice.csrf("/console/"), "digest", rec.Digest)), http.StatusForbidden, "You requested this send")
	wantPage(t, b.post("/console/sends/s-1/approve", form("csrf", csrf, "digest", rec.Digest)), http.StatusSeeOther)
	sent := d.waitState(t, "s-1", tasks.StateSent)
	if sent.Result == nil || sent.Result.Revision != 1 || sent.Result.RevisedBy != "approver-1" {
		t.Fatalf("result = %+v", sent.Result)
	}
	wantPage(t, b.get("/console/activity?q=revised"), http.StatusOK, "revised", "approver-1")
}

func TestNeedsReviewPageAndResolutions(t *testing.T) {
	d := startDaemon(t, nil)
	ctx := context.Background()
	// Held by a pause so the worker leaves them alone, then ended as the
	// worker ends a send whose outcome it cannot tell.
	if err := d.app.Approval().Pause(ctx, "acc-paris", "ops"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"u-1", "u-2", "u-3"} {
		rec := d.enqueue(t, sendReq(id, "unknown fate "+id), "sequencer")
		if _, err := d.app.Approval().Approve(ctx, id, rec.Digest, "approver-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.app.Ledger().End(ctx, id, "", ledger.Outcome{State: tasks.StateNeedsReview, Reason: tasks.ReasonUnknownOutcome}); err != nil {
			t.Fatal(err)
		}
	}
	b := d.browser(t)
	b.signIn(tokAdmin)
	wantPage(t, b.get("/console/review"), http.StatusOK, "u-1", "u-2", "u-3", "unknown_outcome")
	p := b.get("/console/sends/u-1")
	wantPage(t, p, http.StatusOK, "Whether this send went out is unknown", "unknown fate", `value="msg-paris-camille-3"`, "Mark sent")
	csrf := regexpFind(t, p.body, `name="csrf" value="([^"]+)"`)

	// An approver reads but does not resolve; a scoped identity does not see them.
	appr := d.browser(t)
	appr.signIn(tokAppr)
	wantPage(t, appr.post("/console/sends/u-1/resolve", form("csrf", appr.csrf("/console/"), "resolution", "cancel")), http.StatusForbidden)
	lyon := d.browser(t)
	lyon.signIn(tokLyon)
	if p := lyon.get("/console/review"); p.status != http.StatusOK || strings.Contains(p.body, "u-1") {
		t.Fatalf("a scoped identity sees another account's send to review: %d", p.status)
	}

	// Mark sent, picking our message in the chat.
	wantPage(t, b.post("/console/sends/u-1/resolve", form("csrf", csrf, "resolution", "sent", "message_id", "msg-paris-camille-3")), http.StatusSeeOther)
	if rec := d.record(t, "u-1"); rec.State != tasks.StateSent || rec.Result.MessageID != "msg-paris-camille-3" || rec.Reason != tasks.ReasonMarkedSent {
		t.Fatalf("u-1 = %s %s %+v", rec.State, rec.Reason, rec.Result)
	}
	// The same message cannot be another send's.
	wantPage(t, b.post("/console/sends/u-2/resolve", form("csrf", csrf, "resolution", "sent", "message_id", "msg-paris-camille-3")), http.StatusConflict, "already another send")
	// Not sent needs the confirmation; then it is approved again and goes out after the resume.
	wantPage(t, b.post("/console/sends/u-2/resolve", form("csrf", csrf, "resolution", "not_sent")), http.StatusConflict, "Tick the box")
	wantPage(t, b.post("/console/sends/u-2/resolve", form("csrf", csrf, "resolution", "not_sent", "confirm", "yes")), http.StatusSeeOther)
	// Cancel.
	wantPage(t, b.post("/console/sends/u-3/resolve", form("csrf", csrf, "resolution", "cancel", "note", "too old")), http.StatusSeeOther)
	if rec := d.record(t, "u-3"); rec.State != tasks.StateCanceled || rec.Decision.Note != "too old" {
		t.Fatalf("u-3 = %s %+v", rec.State, rec.Decision)
	}
	if err := d.app.Approval().Resume(ctx, "acc-paris", "ops"); err != nil {
		t.Fatal(err)
	}
	d.waitState(t, "u-2", tasks.StateSent)
	if n := strings.Count(d.chatTexts(t, "chat-paris-camille"), "unknown fate u-2"); n != 1 {
		t.Fatalf("u-2 went out %d times", n)
	}
	wantPage(t, b.get("/console/activity?q=marked"), http.StatusOK, "marked_sent", "marked_not_sent")
}

// TestReloadedTokensApplyToSessions: sessions follow the tokens in force;
// an identity removed by a reload is signed out at its next request.
func TestReloadedTokensApplyToSessions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(testTokens, ",", "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, map[string]string{"SENDWORKER_ADMIN_TOKENS": "", "SENDWORKER_ADMIN_TOKENS_FILE": file})
	b := d.browser(t)
	b.signIn(tokAppr)
	wantPage(t, b.get("/console/"), http.StatusOK, "approver-1")
	if err := os.WriteFile(file, []byte("ops:admin:"+tokAdmin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.app.ReloadTokens(); err != nil {
		t.Fatal(err)
	}
	if p := b.get("/console/"); p.status != http.StatusSeeOther {
		t.Fatalf("a removed identity still has its session: %d", p.status)
	}
}
