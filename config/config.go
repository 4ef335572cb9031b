// Package config loads and validates sendworker's configuration: one typed Config read from
// SENDWORKER_* environment variables, optionally merged with an env-style file.
//
// Loading is strict: an unknown SENDWORKER_* name is an error (with a "did you mean"), and every
// problem is reported at once as a *FieldError naming its variable. One table (see Reference)
// drives parsing, defaults and documentation, so the README's table cannot drift from the code.
//
// This package must never print or return a secret: secrets are of type Secret, which formats as
// "<secret>", and neither errors nor Redacted output contain them. It does no I/O beyond reading
// the two files named by SENDWORKER_CONFIG_FILE and SENDWORKER_ADMIN_TOKENS_FILE; it never
// connects to Redis or the provider.
package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Prefix starts every sendworker environment variable.
const Prefix = "SENDWORKER_"

// SendMode says whether sends really go out.
type SendMode string

// Send modes.
const (
	SendLive   SendMode = "live"    // sends go out
	SendDryRun SendMode = "dry_run" // everything but the sending call, and every result says so
)

// AuthMethod is how sendworker authenticates to the provider.
type AuthMethod string

// Provider authentication methods.
const (
	AuthAPIKey AuthMethod = "api_key" // a static API key in a header
	AuthOAuth2 AuthMethod = "oauth2"  // OAuth2 client credentials or a refresh token
)

// Config is sendworker's whole configuration. Each field's comment names its variable and
// default; Reference lists the same in table form.
type Config struct {
	// ConfigFile is SENDWORKER_CONFIG_FILE: an env-style file (KEY=VALUE lines, # comments,
	// optional quotes) merged under the environment, which wins. Default: none.
	ConfigFile string
	// Dev is SENDWORKER_DEV (default false): dev mode, with an embedded Redis and the provider
	// simulator. Redis and provider settings may then be left empty for the caller to fill in.
	Dev bool
	// SendMode is SENDWORKER_SEND_MODE: live (default) or dry_run.
	SendMode SendMode
	// Redis is SENDWORKER_REDIS_URL (default redis://127.0.0.1:6379/0; in dev mode, unset means
	// the embedded Redis and leaves Redis zero).
	Redis Redis
	// Provider is how to reach the messaging provider.
	Provider Provider
	// Worker sizes and times the asynq server.
	Worker Worker
	// Rate holds the sending limits.
	Rate Rate
	// ApprovalDeadline is SENDWORKER_APPROVAL_DEADLINE (default 24h): how long a send waits for
	// approval when its request names no deadline.
	ApprovalDeadline time.Duration
	// MaxDelayAfterApproval is SENDWORKER_MAX_DELAY_AFTER_APPROVAL (default 72h): how long after
	// its approval a send without window.not_after may still go out; past it the send ends
	// expired (max_delay_exceeded) instead of going out long after it made sense.
	MaxDelayAfterApproval time.Duration
	// Admin configures the admin HTTP API.
	Admin Admin
	// Attachments restricts attachment fetching.
	Attachments Attachments
	// Results configures where outcomes are written.
	Results Results
	// Inbound configures the receiver of the provider's webhook events.
	Inbound Inbound
	// Log configures logging.
	Log Log
	// KeyPrefix is SENDWORKER_KEY_PREFIX (default sendworker): the prefix of sendworker's own
	// Redis keys, [a-z0-9_:-]+.
	KeyPrefix string
}

// Provider is how sendworker reaches the provider API.
type Provider struct {
	// BaseURL is SENDWORKER_PROVIDER_BASE_URL: the server root, e.g. https://api1.unipile.com:13111,
	// without /api/v1 (sendworker adds it). Required unless dev mode.
	BaseURL string
	// Auth is SENDWORKER_PROVIDER_AUTH: api_key (default) or oauth2.
	Auth AuthMethod
	// APIKey is SENDWORKER_PROVIDER_API_KEY: required with api_key auth in live mode.
	APIKey Secret
	// OAuth holds the oauth2 settings.
	OAuth OAuth
	// Timeout is SENDWORKER_PROVIDER_TIMEOUT (default 30s): the limit on one provider request.
	Timeout time.Duration
}

// OAuth holds the provider's OAuth2 settings, used when Provider.Auth is oauth2: a token URL and
// either a client id and secret (client credentials) or a refresh token.
type OAuth struct {
	// TokenURL is SENDWORKER_PROVIDER_OAUTH_TOKEN_URL.
	TokenURL string
	// ClientID is SENDWORKER_PROVIDER_OAUTH_CLIENT_ID.
	ClientID string
	// ClientSecret is SENDWORKER_PROVIDER_OAUTH_CLIENT_SECRET.
	ClientSecret Secret
	// RefreshToken is SENDWORKER_PROVIDER_OAUTH_REFRESH_TOKEN.
	RefreshToken Secret
	// Scopes is SENDWORKER_PROVIDER_OAUTH_SCOPES, a comma list (default none).
	Scopes []string
}

// Worker sizes and times the asynq server.
type Worker struct {
	// Concurrency is SENDWORKER_CONCURRENCY (default 20, 1..1000): tasks run at once per process.
	Concurrency int
	// Queue is SENDWORKER_QUEUE (default sendworker): the asynq queue of send tasks, used by
	// nothing else.
	Queue string
	// ShutdownTimeout is SENDWORKER_SHUTDOWN_TIMEOUT (default 25s): how long a stopping worker
	// lets running sends finish.
	ShutdownTimeout time.Duration
	// ReconcileDelay is SENDWORKER_RECONCILE_DELAY (default 15s): the wait before reading the
	// chat to decide the outcome of a send whose result was lost.
	ReconcileDelay time.Duration
	// LateCompletion is SENDWORKER_LATE_COMPLETION (default 10m): how long after its sending
	// call the provider may still store a message whose answer was lost. Until the attempt's
	// start + lease + this, a chat without the message proves nothing and the send is not
	// resent.
	LateCompletion time.Duration
	// ResendPolicy is SENDWORKER_RESEND_POLICY (default after_proof): after_proof resends a
	// send whose message the chat proved absent after an unknown outcome; never ends it
	// needs_review for a person to decide.
	ResendPolicy string
	// AccountHealthTTL is SENDWORKER_ACCOUNT_HEALTH_TTL (default 30s; 0 = no cache): how long a
	// provider account status is cached.
	AccountHealthTTL time.Duration
	// RecoveryGrace is SENDWORKER_RECOVERY_GRACE (default 5m): how long a released send may show
	// no progress (no attempt, no deferral) before the watchdog re-releases it, because its asynq
	// task was lost (archived, deleted). Keep it longer than the worst queue wait.
	RecoveryGrace time.Duration
	// WaitReplicas is SENDWORKER_WAIT_REPLICAS (default 0 = do not wait): how many Redis replicas
	// must hold the start of an attempt (Redis WAIT) before its sending call, so that a failover
	// cannot lose it and let the send go out again. 1 with Sentinel.
	WaitReplicas int
	// WaitTimeout is SENDWORKER_WAIT_TIMEOUT (default 500ms, 1ms..2s): how long the WAIT of
	// WaitReplicas may take; an attempt whose start did not reach the replicas in time is not made (the send
	// waits and tries again).
	WaitTimeout time.Duration
}

// Limits are the sending limits of one account. A cap of 0 means "no cap"; a zero duration means
// "no spacing" (or, for RecipientCooldown and WarmupStart, "off").
type Limits struct {
	// MinInterval is SENDWORKER_RATE_MIN_INTERVAL (default 10s).
	MinInterval time.Duration
	// Jitter is SENDWORKER_RATE_JITTER (default 10s): sends are MinInterval..MinInterval+Jitter apart.
	Jitter time.Duration
	// HourlyCap is SENDWORKER_RATE_HOURLY_CAP (default 60).
	HourlyCap int
	// DailyCap is SENDWORKER_RATE_DAILY_CAP (default 300).
	DailyCap int
	// NewChatsHourlyCap is SENDWORKER_RATE_NEW_CHATS_HOURLY_CAP (default 5).
	NewChatsHourlyCap int
	// NewChatsDailyCap is SENDWORKER_RATE_NEW_CHATS_DAILY_CAP (default 20).
	NewChatsDailyCap int
	// RecipientCooldown is SENDWORKER_RATE_RECIPIENT_COOLDOWN (default 0 = off).
	RecipientCooldown time.Duration
	// WarmupStart is SENDWORKER_RATE_WARMUP_START (default 0 = off): the daily cap on day 1 of a
	// young account.
	WarmupStart int
	// WarmupStep is SENDWORKER_RATE_WARMUP_STEP (default 10): the daily cap increase per day of
	// warm-up, until DailyCap.
	WarmupStep int
}

// Rate holds the sending limits, enforced across all replicas together.
type Rate struct {
	// Limits are the limits of every account without an override.
	Limits Limits
	// GlobalRPS is SENDWORKER_RATE_GLOBAL_RPS (default 10; 0 = no limit): provider requests per
	// second, cluster-wide.
	GlobalRPS float64
	// AccountOverrides is SENDWORKER_RATE_ACCOUNT_OVERRIDES (default none), e.g.
	// "acc-1:min_interval=5s,daily_cap=50;acc-2:hourly_cap=10": the full limits of the accounts
	// listed, each equal to Limits except for the keys it names (snake_case limit names).
	AccountOverrides map[string]Limits
}

// Admin configures the admin HTTP API.
type Admin struct {
	// Addr is SENDWORKER_ADMIN_ADDR (default :8080): the listen address of the admin API,
	// health and metrics.
	Addr string
	// Tokens is SENDWORKER_ADMIN_TOKENS: "identity:role[+role]:token" entries separated by
	// commas; roles are scheduler, approver, admin; tokens at least 16 characters; identities and
	// tokens unique. Required unless dev mode.
	Tokens []AdminToken
	// TokensFile is SENDWORKER_ADMIN_TOKENS_FILE: the same entries, one per line, read from a
	// file instead (not both).
	TokensFile string
	// MaxBodyBytes is SENDWORKER_MAX_BODY_BYTES (default 1 MiB = 1048576): the largest request body.
	MaxBodyBytes int64
	// ConsoleSessionTTL is SENDWORKER_CONSOLE_SESSION_TTL (default 12h): how long a review console
	// session lasts.
	ConsoleSessionTTL time.Duration
	// ConsoleTrustedHeader is SENDWORKER_CONSOLE_TRUSTED_HEADER (default off): a header an SSO
	// proxy sets to the caller's identity, which then signs in without a token.
	ConsoleTrustedHeader string
}

// Attachments restricts attachment fetching.
type Attachments struct {
	// Origins is SENDWORKER_ATTACHMENT_ORIGINS (default none: no attachments): comma list of
	// https://host[:port] origins attachments may be fetched from; http only for localhost.
	Origins []string
	// MaxBytes is SENDWORKER_ATTACHMENT_MAX_BYTES (default 15 MiB = 15728640, at most 100 MiB).
	MaxBytes int64
}

// Results configures where terminal outcomes are written.
type Results struct {
	// Stream is SENDWORKER_RESULTS_STREAM (default sendworker:results): the Redis stream of results.
	Stream string
	// StreamMaxLen is SENDWORKER_RESULTS_STREAM_MAXLEN (default 1000000; 0 = never trimmed):
	// approximate length the stream is trimmed to.
	StreamMaxLen int
	// Retention is SENDWORKER_RESULT_RETENTION (default 720h): how long terminal send records are kept.
	Retention time.Duration
	// Webhook is the optional results webhook.
	Webhook Webhook
}

// Webhook is the optional HTTP callback made for every terminal outcome.
type Webhook struct {
	// URL is SENDWORKER_WEBHOOK_URL (default none: no webhook). It is a Secret because webhook
	// URLs often carry their credentials in the path or query; it prints as scheme://host/<secret>
	// in Redacted.
	URL Secret
	// Secret is SENDWORKER_WEBHOOK_SECRET: the HMAC-SHA256 key, at least 16 characters; required
	// when URL is set.
	Secret Secret
	// Timeout is SENDWORKER_WEBHOOK_TIMEOUT (default 10s) per attempt.
	Timeout time.Duration
	// MaxAttempts is SENDWORKER_WEBHOOK_MAX_ATTEMPTS (default 10, 1..100).
	MaxAttempts int
}

// Inbound configures the receiver of the provider's webhook events (POST /v1/provider/events on
// the admin listener).
type Inbound struct {
	// Secret is SENDWORKER_INBOUND_SECRET: the shared secret the provider sends in Header (set as
	// a custom header when the webhook is created), ≥ 16 characters. Empty: the receiver is off.
	Secret Secret
	// PreviousSecret is SENDWORKER_INBOUND_SECRET_PREVIOUS: also accepted, during a rotation.
	PreviousSecret Secret
	// Header is SENDWORKER_INBOUND_HEADER (default X-Sendworker-Inbound-Secret).
	Header string
	// MaxBodyBytes is SENDWORKER_INBOUND_MAX_BODY_BYTES (default 262144): larger events get 413.
	MaxBodyBytes int64
	// OptOutKeywords is SENDWORKER_INBOUND_OPTOUT_KEYWORDS (default: the built-in list of
	// inbound.DefaultOptOutKeywords): whole messages that opt the contact out.
	OptOutKeywords []string
}

// Log configures logging.
type Log struct {
	// Level is SENDWORKER_LOG_LEVEL: debug, info (default), warn or error.
	Level string
	// Format is SENDWORKER_LOG_FORMAT: json (default) or console (default in dev mode).
	Format string
}

// LimitsFor returns the limits that apply to accountID: its override if it has one, else the
// global limits.
func (c *Config) LimitsFor(accountID string) Limits {
	if l, ok := c.Rate.AccountOverrides[accountID]; ok {
		return l
	}
	return c.Rate.Limits
}

// Defaults returns the configuration used when no variable is set. It is not valid outside dev
// mode (the provider and admin tokens have no defaults).
func Defaults() *Config {
	c := &Config{}
	for _, v := range vars() {
		if v.def != "" {
			// Every default parses: TestDefaultsRoundTrip checks it.
			_ = v.parse(c, v.def)
		}
	}
	return c
}

// Load builds the configuration from the environment: lookup reads a variable (os.LookupEnv),
// and environ (os.Environ()) is scanned for unknown SENDWORKER_* names. Variables from
// SENDWORKER_CONFIG_FILE apply first and the environment overrides them. An empty value counts as
// unset. The error joins one *FieldError per problem (see FieldErrors); the Config is nil then.
func Load(lookup func(string) (string, bool), environ []string) (*Config, error) {
	table := vars()
	known := make(map[string]bool, len(table))
	var names []string
	for _, v := range table {
		known[v.name] = true
		names = append(names, v.name)
	}
	var errs []error
	for _, name := range unknownNames(environ, known) {
		errs = append(errs, &FieldError{Var: name, Problem: unknownProblem(name, names)})
	}

	values := make(map[string]string)
	if path, _ := lookup(envConfigFile); strings.TrimSpace(path) != "" {
		var fileErrs []error
		values, fileErrs = readConfigFile(strings.TrimSpace(path), known, names)
		errs = append(errs, fileErrs...)
	}
	for _, v := range table {
		if raw, ok := lookup(v.name); ok && strings.TrimSpace(raw) != "" {
			values[v.name] = strings.TrimSpace(raw)
		}
	}

	// Errors about the file and unknown names come first, then one list in table order.
	var fieldErrs []error
	if values[envAdminTokens] != "" && values[envAdminTokensFile] != "" {
		fieldErrs = append(fieldErrs, &FieldError{Var: envAdminTokensFile, Value: values[envAdminTokensFile],
			Problem: "set together with " + envAdminTokens + "; use one or the other"})
		delete(values, envAdminTokensFile)
	}

	c := Defaults()
	failed := make(map[string]bool)
	for _, v := range table {
		raw := values[v.name]
		if raw == "" {
			continue
		}
		if err := v.parse(c, raw); err != nil {
			fieldErrs = append(fieldErrs, &FieldError{Var: v.name, Value: v.redact(raw), Problem: err.Error()})
			failed[v.name] = true
		}
	}
	if c.Dev {
		if values[envRedisURL] == "" {
			c.Redis = Redis{} // the caller runs an embedded Redis
		}
		if values[envLogFormat] == "" {
			c.Log.Format = "console"
		}
	}
	// A value that did not parse keeps its default; do not report it a second time.
	for _, fe := range FieldErrors(c.Validate()) {
		if !failed[fe.Var] {
			fieldErrs = append(fieldErrs, fe)
		}
	}
	errs = append(errs, sortedByVar(fieldErrs, table)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// unknownNames lists, sorted and once each, the SENDWORKER_* names in environ that are not known.
func unknownNames(environ []string, known map[string]bool) []string {
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, Prefix) && !known[name] && !slices.Contains(unknown, name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	return unknown
}

// readConfigFile reads the SENDWORKER_CONFIG_FILE at path: its values by variable name, and its
// problems (unreadable, bad lines, unknown names) as FieldErrors of SENDWORKER_CONFIG_FILE.
func readConfigFile(path string, known map[string]bool, names []string) (map[string]string, []error) {
	var errs []error
	fileErr := func(problem string) {
		errs = append(errs, &FieldError{Var: envConfigFile, Value: path, Problem: problem})
	}
	values := make(map[string]string)
	data, err := os.ReadFile(path)
	if err != nil {
		fileErr(err.Error())
		return values, errs
	}
	entries, err := parseEnvFile(string(data))
	for _, msg := range errorMessages(err) {
		fileErr(path + ": " + msg)
	}
	for _, e := range entries {
		switch {
		case e.Key == envConfigFile:
			fileErr(fmt.Sprintf("%s: line %d: %s cannot be set inside the file", path, e.Line, e.Key))
		case !known[e.Key]:
			fileErr(fmt.Sprintf("%s: line %d: %s", path, e.Line, unknownProblem(e.Key, names)))
		default:
			values[e.Key] = strings.TrimSpace(e.Value)
		}
	}
	return values, errs
}

// errorMessages flattens a joined error into its messages.
func errorMessages(err error) []string {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range joined.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

func unknownProblem(name string, known []string) string {
	msg := "unknown variable"
	if near, ok := closest(name, known); ok {
		msg += " (did you mean " + near + "?)"
	}
	return msg
}

// Validate checks c, whether it came from Load or was built in code, and reports every problem
// at once: errors.Join of *FieldError, in variable order.
func (c *Config) Validate() error {
	table := vars()
	var errs []error
	for _, v := range table {
		if err := v.check(c); err != nil {
			errs = append(errs, &FieldError{Var: v.name, Value: v.show(c), Problem: err.Error()})
		}
	}
	show := func(name string) string {
		for _, v := range table {
			if v.name == name {
				return v.show(c)
			}
		}
		return ""
	}
	add := func(name, problem string) {
		errs = append(errs, &FieldError{Var: name, Value: show(name), Problem: problem})
	}

	// Settings the dev-mode caller fills in itself.
	if !c.Dev {
		const unlessDev = "required (unless " + envDev + "=true)"
		if c.Redis.Mode == "" {
			add(envRedisURL, unlessDev)
		}
		if c.Provider.BaseURL == "" {
			add(envProviderBaseURL, unlessDev)
		}
		if len(c.Admin.Tokens) == 0 && c.Admin.TokensFile == "" {
			add(envAdminTokens, unlessDev+": without tokens nobody can enqueue or approve; or set "+envAdminTokensFile)
		}
		if c.SendMode == SendLive && c.Provider.Auth == AuthAPIKey && c.Provider.APIKey == "" {
			add(envProviderAPIKey, "required when "+envSendMode+"=live and "+envProviderAuth+"=api_key")
		}
	}

	o := c.Provider.OAuth
	switch c.Provider.Auth {
	case AuthAPIKey:
		// OAuth settings with api_key auth are a sign of a half-done switch: say so.
		for name, set := range map[string]bool{
			envOAuthTokenURL: o.TokenURL != "", envOAuthClientID: o.ClientID != "",
			envOAuthClientSecret: o.ClientSecret != "", envOAuthRefreshToken: o.RefreshToken != "",
			envOAuthScopes: len(o.Scopes) > 0,
		} {
			if set {
				add(name, "only used when "+envProviderAuth+"=oauth2")
			}
		}
	case AuthOAuth2:
		if c.Provider.APIKey != "" {
			add(envProviderAPIKey, "not used when "+envProviderAuth+"=oauth2; remove it")
		}
		if !c.Dev && o.TokenURL == "" {
			add(envOAuthTokenURL, "required when "+envProviderAuth+"=oauth2")
		}
		switch {
		case o.ClientID != "" && o.ClientSecret == "" && o.RefreshToken == "":
			add(envOAuthClientSecret, "required with "+envOAuthClientID+" (or set "+envOAuthRefreshToken+")")
		case o.ClientID == "" && o.ClientSecret != "":
			add(envOAuthClientID, "required with "+envOAuthClientSecret)
		case !c.Dev && o.ClientID == "" && o.RefreshToken == "":
			add(envOAuthClientID, "required when "+envProviderAuth+"=oauth2: set "+envOAuthClientID+" and "+
				envOAuthClientSecret+" (client credentials) or "+envOAuthRefreshToken)
		}
	}

	if l := c.Rate.Limits; l.WarmupStart > 0 && l.DailyCap > 0 && l.WarmupStart > l.DailyCap {
		add(envPrefixRate+"WARMUP_START", fmt.Sprintf("%d is above %sDAILY_CAP (%d)", l.WarmupStart, envPrefixRate, l.DailyCap))
	}

	w := c.Results.Webhook
	switch {
	case w.URL != "" && w.Secret == "":
		add(envWebhookSecret, "required when "+envWebhookURL+" is set")
	case w.URL == "" && w.Secret != "":
		add(envWebhookSecret, "set but "+envWebhookURL+" is empty")
	}
	return errors.Join(sortedByVar(errs, table)...)
}

// sortedByVar orders errors by their variable's place in the table (stable), so output reads
// like the documentation.
func sortedByVar(errs []error, table []varSpec) []error {
	rank := make(map[string]int, len(table))
	for i, v := range table {
		rank[v.name] = i
	}
	slices.SortStableFunc(errs, func(a, b error) int {
		return rank[a.(*FieldError).Var] - rank[b.(*FieldError).Var]
	})
	return errs
}

// Redacted returns every variable with its effective value, secrets as "<secret>" (unset
// secrets as ""), credentials removed from URLs. It is safe to log.
func (c *Config) Redacted() map[string]string {
	out := make(map[string]string)
	for _, v := range vars() {
		out[v.name] = v.show(c)
	}
	return out
}

// String prints the configuration as NAME=value lines in documentation order, redacted like
// Redacted.
func (c *Config) String() string {
	var b strings.Builder
	for _, v := range vars() {
		b.WriteString(v.name + "=" + v.show(c) + "\n")
	}
	return b.String()
}
