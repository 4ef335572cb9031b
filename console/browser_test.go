package console_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sendworker/sendworker/tasks"
)

// Real-browser tests: headless Chromium driven by chromedp over the whole
// daemon. One browser serves every test of the binary (started on first
// use); each test gets its own tab and signs in afresh. Where no browser is
// installed they skip, except in CI (CI=true), where a missing browser fails
// the run: the suite must not pass without having driven one.

var updateScreenshots = flag.Bool("update-screenshots", false, "write the console screenshots under docs/console/")

var shared struct {
	once   sync.Once
	ctx    context.Context // the browser's first tab: parent of every test's tab
	cancel func()
	dir    string
	err    error
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if shared.cancel != nil {
		shared.cancel()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// tab opens a new tab of the shared browser for the test.
func tab(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium found (apt-get install -y chromium): the browser tests cannot run in CI without it")
		}
		t.Skip("no Chromium installed (apt-get install -y chromium); CI=true makes this a failure")
	}
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "sendworker-chromium-")
		if shared.err != nil {
			return
		}
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
			chromedp.ExecPath(path),
			chromedp.Headless,
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.UserDataDir(shared.dir),
		)
		ctx, cancelCtx := chromedp.NewContext(alloc)
		shared.ctx, shared.cancel = ctx, func() { cancelCtx(); cancelAlloc() }
		shared.err = chromedp.Do(ctx) // starts the browser
	})
	if shared.err != nil {
		t.Fatalf("start Chromium: %v", shared.err)
	}
	ctx, cancel := chromedp.NewContext(shared.ctx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	return ctx
}

func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// waitText waits until the element's text contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	js := fmt.Sprintf(`(function(){var e=document.querySelector(%q);return !!e && e.textContent.indexOf(%q)>=0})()`, sel, want)
	deadline := time.Now().Add(20 * time.Second)
	for {
		// A navigation under way makes an evaluation fail: ask again.
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("waiting for %q in %s: %v; the page says:\n%s", want, sel, err, body)
		}
		time.Sleep(50 * time.Millisecond) // polling the page with a deadline
	}
}

// scriptReady waits until the page's script has set up its handlers (it
// runs deferred, after the HTML the other waits look at).
func scriptReady(t *testing.T, ctx context.Context) {
	t.Helper()
	waitText(t, ctx, "body", "")
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.body && document.body.dataset.ready === "1"`))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page's script did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling the page with a deadline
	}
}

func signInBrowser(t *testing.T, ctx context.Context, d *daemon, token string) {
	t.Helper()
	run(t, ctx,
		chromedp.Navigate(d.base+"/console/login"),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
	)
	waitText(t, ctx, "h1", "Pending approval")
}

// shot takes a screenshot at a width (and height) and, with
// -update-screenshots, writes it under docs/console/.
func shot(t *testing.T, ctx context.Context, name string, width, height int64, scale float64) {
	t.Helper()
	run(t, ctx, chromedp.EmulateViewport(width, height, chromedp.EmulateScale(scale)))
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG (%d bytes)", name, len(png))
	}
	if *updateScreenshots {
		if err := os.WriteFile(filepath.Join("..", "docs", "console", name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Texts as a sales team writes them: emoji, line breaks, right-to-left
// scripts, one very long word.
var (
	textMixed = "Bonjour Camille 👋\nSuite à notre appel : la démo est prête.\nÀ jeudi !"
	textRTL   = "مرحبا سارة، هل وصلك العرض؟ 🙏\nשלום, מה שלומך?"
	textLong  = "Hi Lucas — following up on the pricing sheet: https://example.com/a/very/long/link/that/does/not/break/anywhere/at/all/0123456789abcdefghijklmnopqrstuvwxyz and the onboarding plan for Q3, with the three options we discussed on Monday."
)

func TestBrowserApproveSeeConversationAndSent(t *testing.T) {
	d := startDaemon(t, nil)
	ctx := tab(t)
	d.enqueue(t, sendReq("demo-1-camille", textMixed), "sequencer")
	rtl := sendReq("demo-2-sarah", textRTL)
	rtl.AccountID, rtl.ChatID = "acc-lyon", "chat-lyon-chloe"
	d.enqueue(t, rtl, "sequencer")
	long := sendReq("demo-3-lucas", textLong)
	long.ChatID = "chat-paris-lucas"
	long.Metadata = []byte(`{"sequence":"q3-renewal","step":1}`)
	d.enqueue(t, long, "sequencer")

	signInBrowser(t, ctx, d, tokBoss)
	waitText(t, ctx, "#queue-rows", "demo-3-lucas")
	if title, _ := chromedp.Run(ctx, chromedp.Title()); !strings.HasPrefix(title, "(3) ") {
		t.Fatalf("title %q does not carry the count", title)
	}
	shot(t, ctx, "queue-laptop", 1280, 800, 1)
	shot(t, ctx, "queue-phone", 390, 844, 2)
	run(t, ctx, chromedp.EmulateViewport(1280, 900))

	run(t, ctx, chromedp.Click(chromedp.CSS(`a[href="/console/sends/demo-1-camille"]`)))
	waitText(t, ctx, "#conversation", "Oui, appelons-nous jeudi.")
	if got := text(t, ctx, "#send-text"); got != textMixed {
		t.Fatalf("the send page shows %q, want exactly %q", got, textMixed)
	}
	who, err := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("#conversation li:not(.pending) .who")).pop().textContent`))
	if err != nil || who != "Camille Martin" {
		t.Fatalf("the newest message is by %q (%v), want Camille Martin at the bottom", who, err)
	}
	// Below it, the send as it will go out.
	if pending := text(t, ctx, "#conversation li.pending .text"); pending != textMixed {
		t.Fatalf("the pending bubble shows %q", pending)
	}
	shot(t, ctx, "send-laptop", 1280, 900, 1)
	shot(t, ctx, "send-phone", 390, 844, 2)
	run(t, ctx, chromedp.EmulateViewport(1280, 900))

	run(t, ctx, chromedp.Click(chromedp.CSS("#approve")))
	waitText(t, ctx, ".notice", "Approved demo-1-camille.")
	d.waitState(t, "demo-1-camille", tasks.StateSent)
	run(t, ctx, chromedp.Navigate(d.base+"/console/sends/demo-1-camille"))
	waitText(t, ctx, ".head .state", "sent")

	// The RTL and long sends as they render (for the docs).
	run(t, ctx, chromedp.Navigate(d.base+"/console/sends/demo-2-sarah"))
	waitText(t, ctx, "#send-text", "مرحبا")
	shot(t, ctx, "send-rtl-phone", 390, 844, 2)
	run(t, ctx, chromedp.EmulateViewport(1280, 900))

	// Accounts page as the admin sees it.
	run(t, ctx, chromedp.Navigate(d.base+"/console/accounts"))
	waitText(t, ctx, "main", "Sales Paris")
	shot(t, ctx, "accounts-laptop", 1280, 800, 1)
	shot(t, ctx, "accounts-phone", 390, 844, 2)
}

func TestBrowserReject(t *testing.T) {
	d := startDaemon(t, nil)
	ctx := tab(t)
	d.enqueue(t, sendReq("r-1", "to reject"), "sequencer")
	signInBrowser(t, ctx, d, tokAppr)
	run(t, ctx,
		chromedp.Navigate(d.base+"/console/sends/r-1"),
		chromedp.SendKeys(chromedp.CSS("#reason"), "wrong contact"),
		chromedp.Click(chromedp.CSS("#reject")),
	)
	waitText(t, ctx, ".notice", "Rejected r-1.")
	if rec := d.record(t, "r-1"); rec.State != tasks.StateRejected || rec.Decision.Note != "wrong contact" || rec.Decision.By != "approver-1" {
		t.Fatalf("r-1 = %s %+v", rec.State, rec.Decision)
	}
}

func TestBrowserBulkApproveThree(t *testing.T) {
	d := startDaemon(t, nil)
	ctx := tab(t)
	for i := range 4 {
		d.enqueue(t, sendReq(fmt.Sprintf("b-%d", i), fmt.Sprintf("bulk text %d", i)), "sequencer")
	}
	signInBrowser(t, ctx, d, tokAppr)
	waitText(t, ctx, "#queue-rows", "b-3")
	for i := range 3 {
		run(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[aria-label="select b-%d"]`, i))))
	}
	run(t, ctx, chromedp.Click(chromedp.CSS("#bulk-approve")))
	waitText(t, ctx, ".notice", "3 of 3 sends approved.")
	for i := range 3 {
		d.waitState(t, fmt.Sprintf("b-%d", i), tasks.StateSent)
	}
	if d.record(t, "b-3").State != tasks.StatePendingApproval {
		t.Fatal("bulk approved a send that was not selected")
	}
}

func TestBrowserEditThenApproveDeliversTheEditOnce(t *testing.T) {
	d := startDaemon(t, nil)
	ctx := tab(t)
	d.enqueue(t, sendReq("e-1", "Helo Camille, the demo is on Thursday."), "sequencer")
	signInBrowser(t, ctx, d, tokAppr)
	edited := "Hello Camille 👋\nThe demo is on Thursday at 10:00."
	run(t, ctx,
		chromedp.Navigate(d.base+"/console/sends/e-1"),
		chromedp.Click(chromedp.CSS("#edit summary")),
		chromedp.SetValue(chromedp.CSS("#revise-text"), edited),
		chromedp.Click(chromedp.CSS("#revise")),
	)
	waitText(t, ctx, ".notice", "Saved revision 1")
	if got := text(t, ctx, "#send-text"); got != edited {
		t.Fatalf("the page shows %q after the edit", got)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS("#approve")))
	waitText(t, ctx, ".notice", "Approved e-1.")
	rec := d.waitState(t, "e-1", tasks.StateSent)
	if rec.Result.Revision != 1 || rec.Result.RevisedBy != "approver-1" || rec.Approval.By != "approver-1" {
		t.Fatalf("record = %+v %+v", rec.Result, rec.Approval)
	}
	// The chat holds the edited text once and the original never.
	msgs := d.chatTexts(t, "chat-paris-camille")
	if n := strings.Count(msgs, edited); n != 1 {
		t.Fatalf("the edited text is in the chat %d times", n)
	}
	if strings.Contains(msgs, "Helo Camille") {
		t.Fatal("the original text went out")
	}
}

func TestBrowserKeyboardFlow(t *testing.T) {
	d := startDaemon(t, nil)
	ctx := tab(t)
	d.enqueue(t, sendReq("k-1", "first"), "sequencer")
	d.enqueue(t, sendReq("k-2", "second"), "sequencer")
	d.enqueue(t, sendReq("k-3", "third"), "sequencer")
	signInBrowser(t, ctx, d, tokAppr)
	waitText(t, ctx, "#queue-rows", "k-3")
	scriptReady(t, ctx)
	// j j k: on the first row; Enter opens it.
	run(t, ctx, chromedp.KeyEvent("j"), chromedp.KeyEvent("j"), chromedp.KeyEvent("k"), chromedp.KeyEvent("\r"))
	waitText(t, ctx, "h1", "k-1")
	scriptReady(t, ctx)
	// a approves and moves to the next send.
	run(t, ctx, chromedp.KeyEvent("a"))
	waitText(t, ctx, ".notice", "Approved k-1.")
	waitText(t, ctx, "h1", "k-2")
	scriptReady(t, ctx)
	// r focuses the reason; Enter submits the reject.
	run(t, ctx, chromedp.KeyEvent("r"), chromedp.KeyEvent("not now"), chromedp.KeyEvent("\r"))
	waitText(t, ctx, ".notice", "Rejected k-2.")
	// The next send opened after the reject; u goes back to the queue.
	waitText(t, ctx, "h1", "k-3")
	scriptReady(t, ctx)
	run(t, ctx, chromedp.KeyEvent("u"))
	waitText(t, ctx, "h1", "Pending approval")
	d.waitState(t, "k-1", tasks.StateSent)
	if rec := d.record(t, "k-2"); rec.State != tasks.StateRejected || rec.Decision.Note != "not now" {
		t.Fatalf("k-2 = %s %+v", rec.State, rec.Decision)
	}
	if d.record(t, "k-3").State != tasks.StatePendingApproval {
		t.Fatal("k-3 was decided by the keyboard flow")
	}
}
