// Package devenv is the zero-setup environment of `sendworker -dev`: an
// in-process Redis (miniredis: nothing on disk, never for production) and the
// provider simulator seeded with demo accounts and chats, demo admin tokens,
// and a handful of demo sends that show each path of the send lifecycle.
// Nothing here reaches a real provider: every "send" lands in the simulator.
package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

// Demo identities. The requester and the approver differ: nobody approves
// their own send.
const (
	SchedulerIdentity = "sequencer"
	ApproverIdentity  = "alice"
	AdminIdentity     = "ops"
)

// Env is a running dev environment.
type Env struct {
	Redis *miniredis.Miniredis
	Sim   *wasim.Server
	// Tokens of the demo identities, by identity.
	Tokens map[string]string
}

// Start runs miniredis and the simulator and fills in every setting of cfg
// that the environment provides and the user left empty. Close stops both.
func Start(cfg *config.Config) (*Env, error) {
	env := &Env{Tokens: map[string]string{}}
	if cfg.Redis.Mode == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return nil, fmt.Errorf("devenv: in-process redis: %w", err)
		}
		env.Redis = mr
		r, err := config.ParseRedisURL("redis://" + mr.Addr() + "/0")
		if err != nil {
			mr.Close()
			return nil, err
		}
		cfg.Redis = r
	}
	if cfg.Provider.BaseURL == "" {
		key := randomToken("sim-key-")
		srv, err := wasim.Listen("127.0.0.1:0", wasim.Options{APIKey: key, Seed: wasim.DemoSeed()})
		if err != nil {
			env.Close()
			return nil, fmt.Errorf("devenv: simulator: %w", err)
		}
		env.Sim = srv
		if cfg.Inbound.Secret == "" {
			// The simulator posts its webhook events (a contact writes, an account's status
			// changes) to the daemon's receiver: ConnectWebhook, once the daemon listens.
			cfg.Inbound.Secret = config.Secret(randomToken("dev-inbound-"))
		}
		cfg.Provider.BaseURL = srv.URL()
		cfg.Provider.Auth = config.AuthAPIKey
		cfg.Provider.APIKey = config.Secret(key)
	}
	if len(cfg.Admin.Tokens) == 0 {
		for _, id := range []struct{ identity, role string }{
			{SchedulerIdentity, "scheduler"}, {ApproverIdentity, "approver"}, {AdminIdentity, "admin"},
		} {
			tok := randomToken("dev-" + id.identity + "-")
			env.Tokens[id.identity] = tok
			cfg.Admin.Tokens = append(cfg.Admin.Tokens, config.AdminToken{Identity: id.identity, Roles: []string{id.role}, Token: config.Secret(tok)})
		}
	}
	ApplyDefaults(cfg)
	return env, nil
}

// DevAdminAddr is the dev mode's admin listen address when SENDWORKER_ADMIN_ADDR is left at
// its default: this machine only.
const DevAdminAddr = "127.0.0.1:8080"

// ApplyDefaults sets the dev mode's own values of the settings the user left at their
// production defaults: the admin API on DevAdminAddr, short demo spacing, a short reconcile
// delay. It starts nothing, so `sendworker -dev -print-config` can show the values dev mode
// runs with. Start calls it; calling it again changes nothing.
func ApplyDefaults(cfg *config.Config) {
	def := config.Defaults()
	if cfg.Admin.Addr == def.Admin.Addr {
		cfg.Admin.Addr = DevAdminAddr
	}
	// Human-like spacing of 10-20 s makes a demo look stuck; the demo sends
	// go to different accounts and chats, a short spacing shows the limits.
	if cfg.Rate.Limits.MinInterval == def.Rate.Limits.MinInterval && cfg.Rate.Limits.Jitter == def.Rate.Limits.Jitter {
		cfg.Rate.Limits.MinInterval, cfg.Rate.Limits.Jitter = 2*time.Second, time.Second
	}
	if cfg.Worker.ReconcileDelay == def.Worker.ReconcileDelay {
		cfg.Worker.ReconcileDelay = 2 * time.Second
	}
}

// ConfigNotes are the lines `sendworker -dev -print-config` adds after the configuration, as
// env-file comments: what dev mode provides for the settings left empty, started at run time.
func ConfigNotes(cfg *config.Config) []string {
	var notes []string
	if cfg.Redis.Mode == "" {
		notes = append(notes, "SENDWORKER_REDIS_URL is empty: dev mode starts an in-process Redis (miniredis, memory only) on a free port")
	}
	if cfg.Provider.BaseURL == "" {
		notes = append(notes, "SENDWORKER_PROVIDER_BASE_URL is empty: dev mode starts the provider simulator (wasim) on a free port, with its own API key")
	}
	if cfg.Provider.BaseURL == "" && cfg.Inbound.Secret == "" {
		notes = append(notes, "SENDWORKER_INBOUND_SECRET is empty: dev mode makes one and points the simulator's webhook at the receiver of provider events")
	}
	if len(cfg.Admin.Tokens) == 0 {
		notes = append(notes, "SENDWORKER_ADMIN_TOKENS is empty: dev mode makes demo tokens for "+
			SchedulerIdentity+" (scheduler), "+ApproverIdentity+" (approver) and "+AdminIdentity+" (admin), printed at start")
	}
	if cfg.Admin.Addr == DevAdminAddr {
		notes = append(notes, "if "+DevAdminAddr+" is taken, dev mode listens on another free port of 127.0.0.1 and prints it")
	}
	return notes
}

// ConnectWebhook points the simulator's webhook at the daemon's receiver of provider events
// (adminAddr is the daemon's admin listener), with the shared secret of cfg.
func (e *Env) ConnectWebhook(cfg *config.Config, adminAddr string) error {
	if e.Sim == nil || cfg.Inbound.Secret.Reveal() == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(adminAddr)
	if err != nil {
		return fmt.Errorf("devenv: admin address %q: %w", adminAddr, err)
	}
	return e.Sim.Sim().SetWebhook(wasim.WebhookConfig{URL: "http://127.0.0.1:" + port + "/v1/provider/events",
		Header: cfg.Inbound.Header, Secret: cfg.Inbound.Secret.Reveal()})
}

// Close stops the environment's servers.
func (e *Env) Close() {
	if e.Sim != nil {
		_ = e.Sim.Close()
	}
	if e.Redis != nil {
		e.Redis.Close()
	}
}

func randomToken(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// DemoSend is one demo send and what it shows.
type DemoSend struct {
	Request tasks.SendRequest
	Expect  string // the outcome the demo expects, in words
}

// DemoSends are the demo's sends against the simulator's demo seed.
func DemoSends(now time.Time) []DemoSend {
	meta := func(step int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"sequence":"demo-follow-up","step":%d}`, step))
	}
	repliedSince := now.Add(-20 * time.Minute)
	return []DemoSend{
		{Expect: "sent: a warm reply into an existing chat", Request: tasks.SendRequest{
			SendID: "demo-1-reply-lucas", Operation: tasks.OpSendMessage, AccountID: "acc-paris",
			ChatID: "chat-paris-lucas", Metadata: meta(1),
			Text: "Hi Lucas, here is the link for Monday's demo: https://meet.example.com/demo",
		}},
		{Expect: "sent: chats_create to a known contact posts into the existing chat", Request: tasks.SendRequest{
			SendID: "demo-2-create-chloe", Operation: tasks.OpCreateChat, AccountID: "acc-lyon",
			AttendeeIDs: []string{"33656789012@s.whatsapp.net"}, Metadata: meta(1),
			Text: "Bonjour Chloé, je reviens vers vous au sujet du devis.",
		}},
		{Expect: "skipped contact_replied: Camille wrote 4 minutes ago", Request: tasks.SendRequest{
			SendID: "demo-3-camille-replied", Operation: tasks.OpSendMessage, AccountID: "acc-paris",
			ChatID: "chat-paris-camille", StopIfRepliedSince: &repliedSince, Metadata: meta(2),
			Text: "Camille, did you have a chance to read the brochure?",
		}},
		{Expect: "skipped cold_recipient: nobody the account has ever talked to", Request: tasks.SendRequest{
			SendID: "demo-4-cold-number", Operation: tasks.OpCreateChat, AccountID: "acc-lyon",
			AttendeeIDs: []string{"33699999999@s.whatsapp.net"}, Metadata: meta(1),
			Text: "Hello! Special offer just for you.",
		}},
		{Expect: "waiting account_unhealthy: the Marseille account needs re-authentication", Request: tasks.SendRequest{
			SendID: "demo-5-marseille-down", Operation: tasks.OpSendMessage, AccountID: "acc-marseille",
			ChatID: "chat-marseille-sarah", Metadata: meta(3),
			Text: "Sarah, a quick reminder about Thursday.",
		}},
	}
}

// EnqueueDemo submits the demo sends as the demo scheduler. Running it again
// is harmless: enqueue is idempotent.
func EnqueueDemo(ctx context.Context, svc *approval.Service, now time.Time) ([]*tasks.Record, error) {
	var recs []*tasks.Record
	var errs []error
	for _, d := range DemoSends(now) {
		rec, _, err := svc.Enqueue(ctx, d.Request, SchedulerIdentity)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.Request.SendID, err))
			continue
		}
		recs = append(recs, rec)
	}
	return recs, errors.Join(errs...)
}

// PrintBanner tells a newcomer what runs, where, and what to type next. autoApprove: the demo
// approver approves the demo sends itself (-dev-approve), so there is nothing to approve by
// hand; resultsStream is the stream the results are read from; consoleLinks are the review
// console's one-time sign-in links, by identity.
func PrintBanner(w io.Writer, env *Env, adminAddr, resultsStream string, recs []*tasks.Record, autoApprove bool, consoleLinks map[string]string) {
	url := "http://" + adminAddr
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("")
	p("================ sendworker DEV MODE — nothing real is sent ================")
	p("Redis:    in-process miniredis (memory only)%s", map[bool]string{true: "", false: " — not used: SENDWORKER_REDIS_URL is set"}[env.Redis != nil])
	if env.Sim != nil {
		p("Provider: wasim simulator at %s (demo accounts acc-paris, acc-lyon, acc-marseille)", env.Sim.URL())
	}
	p("Admin API: %s", url)
	if l := consoleLinks[ApproverIdentity]; l != "" {
		p("Review console: %s   (signs in %s, the demo approver; one use)", l, ApproverIdentity)
	}
	if l := consoleLinks[AdminIdentity]; l != "" {
		p("                %s   (signs in %s, the demo admin: accounts page)", l, AdminIdentity)
	}
	if len(env.Tokens) > 0 {
		p("Demo tokens (valid for this run only):")
		for _, id := range []string{SchedulerIdentity, ApproverIdentity, AdminIdentity} {
			p("  %-10s %s", id, env.Tokens[id])
		}
	}
	p("")
	if autoApprove {
		p("%d demo sends enqueued; -dev-approve: the demo approver (%s) approves them now, below.", len(recs), ApproverIdentity)
		p("To look at them in another terminal:")
	} else {
		p("%d demo sends are pending approval. In another terminal:", len(recs))
	}
	p("  export SENDCTL_URL=%s SENDCTL_TOKEN=%s", url, env.Tokens[ApproverIdentity])
	if autoApprove {
		p("  go run ./cmd/sendctl list")
	} else {
		p("  go run ./cmd/sendctl list -state pending_approval")
		for _, r := range recs {
			p("  go run ./cmd/sendctl approve %s -digest %s", r.SendID, r.Digest)
		}
	}
	p("  go run ./cmd/sendctl show demo-1-reply-lucas")
	p("  go run ./cmd/sendctl messages chat-paris-lucas     # the conversation, as the simulator holds it")
	p("Results are printed below as the workers write them back (Redis stream %q).", resultsStream)
	p("Stop with Ctrl-C.")
	p("=============================================================================")
	p("")
}
