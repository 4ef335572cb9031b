package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// Variable names that validation refers to across fields.
const (
	envConfigFile        = "SENDWORKER_CONFIG_FILE"
	envDev               = "SENDWORKER_DEV"
	envSendMode          = "SENDWORKER_SEND_MODE"
	envRedisURL          = "SENDWORKER_REDIS_URL"
	envProviderBaseURL   = "SENDWORKER_PROVIDER_BASE_URL"
	envProviderAuth      = "SENDWORKER_PROVIDER_AUTH"
	envProviderAPIKey    = "SENDWORKER_PROVIDER_API_KEY"
	envOAuthTokenURL     = "SENDWORKER_PROVIDER_OAUTH_TOKEN_URL"
	envOAuthClientID     = "SENDWORKER_PROVIDER_OAUTH_CLIENT_ID"
	envOAuthClientSecret = "SENDWORKER_PROVIDER_OAUTH_CLIENT_SECRET"
	envOAuthRefreshToken = "SENDWORKER_PROVIDER_OAUTH_REFRESH_TOKEN"
	envOAuthScopes       = "SENDWORKER_PROVIDER_OAUTH_SCOPES"
	envPrefixRate        = "SENDWORKER_RATE_"
	envAdminTokens       = "SENDWORKER_ADMIN_TOKENS"
	envAdminTokensFile   = "SENDWORKER_ADMIN_TOKENS_FILE"
	envWebhookURL        = "SENDWORKER_WEBHOOK_URL"
	envWebhookSecret     = "SENDWORKER_WEBHOOK_SECRET"
	envLogFormat         = "SENDWORKER_LOG_FORMAT"
)

// varSpec is one environment variable: its name, default (in the variable's own syntax; "" for
// none), documentation, and how it binds to a Config field.
type varSpec struct {
	name string
	def  string
	doc  string
	// secret hides the whole raw value in errors and output.
	secret bool
	// redactRaw, when set, removes credentials from a raw value that failed to parse.
	redactRaw func(string) string
	binding
}

// binding ties a variable to one field of Config.
type binding struct {
	// ptr returns the address of the field (tests use it to prove every field has a variable).
	ptr func(c *Config) any
	// parse reads a raw, non-empty value into the field; its error is the problem text.
	parse func(c *Config, raw string) error
	// show prints the field's current value in the variable's syntax, secrets redacted.
	show func(c *Config) string
	// check validates the field on its own; cross-field rules live in Config.Validate.
	check func(c *Config) error
}

// redact returns raw as it may appear in a FieldError.
func (v varSpec) redact(raw string) string {
	switch {
	case v.secret:
		return redactedText
	case v.redactRaw != nil:
		return v.redactRaw(raw)
	}
	return raw
}

// bind builds a binding from a field accessor and the field type's parser, printer and check.
func bind[T any](get func(*Config) *T, parse func(string) (T, error), show func(T) string, check func(T) error) binding {
	return binding{
		ptr: func(c *Config) any { return get(c) },
		parse: func(c *Config, raw string) error {
			v, err := parse(raw)
			if err != nil {
				return err
			}
			*get(c) = v
			return nil
		},
		show: func(c *Config) string { return show(*get(c)) },
		check: func(c *Config) error {
			if check == nil {
				return nil
			}
			return check(*get(c))
		},
	}
}

func boolVar(get func(*Config) *bool) binding {
	return bind(get, parseBool, strconv.FormatBool, nil)
}

func intVar(get func(*Config) *int, check func(int) error) binding {
	return bind(get, parseInt, strconv.Itoa, check)
}

func bytesVar(get func(*Config) *int64, check func(int64) error) binding {
	return bind(get, parseBytes, func(n int64) string { return strconv.FormatInt(n, 10) }, check)
}

func floatVar(get func(*Config) *float64, check func(float64) error) binding {
	return bind(get, parseFloat, func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }, check)
}

func durationVar(get func(*Config) *time.Duration, check func(time.Duration) error) binding {
	return bind(get, parseDuration, formatDuration, check)
}

func stringVar(get func(*Config) *string, check func(string) error) binding {
	return bind(get, func(s string) (string, error) { return s, nil }, func(s string) string { return s }, check)
}

// urlVar is an optional http(s) URL, printed without credentials or query values.
func urlVar(get func(*Config) *string, check func(string) error) binding {
	return bind(get, func(s string) (string, error) { return s, nil }, redactURL, check)
}

func secretVar(get func(*Config) *Secret, check func(Secret) error) binding {
	show := func(s Secret) string {
		if s == "" {
			return ""
		}
		return redactedText
	}
	return bind(get, func(s string) (Secret, error) { return Secret(s), nil }, show, check)
}

func listVar(get func(*Config) *[]string, parse func(string) ([]string, error), check func([]string) error) binding {
	if parse == nil {
		parse = func(s string) ([]string, error) { return parseList(s), nil }
	}
	return bind(get, parse, func(l []string) string { return strings.Join(l, ",") }, check)
}

// enumVar accepts one of values (case-insensitive on input).
func enumVar[T ~string](get func(*Config) *T, values ...T) binding {
	var names []string
	for _, v := range values {
		names = append(names, string(v))
	}
	list := strings.Join(names, ", ")
	parse := func(s string) (T, error) {
		v := T(strings.ToLower(s))
		if !slices.Contains(values, v) {
			return "", fmt.Errorf("%q is not one of %s", s, list)
		}
		return v, nil
	}
	check := func(v T) error {
		if !slices.Contains(values, v) {
			return fmt.Errorf("must be one of %s, got %q", list, string(v))
		}
		return nil
	}
	return bind(get, parse, func(v T) string { return string(v) }, check)
}

func checkAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err == nil && strings.ContainsAny(host, " /") {
		err = errors.New("bad host")
	}
	if err == nil {
		if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
			err = errors.New("bad port")
		}
	}
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. :8080 or 127.0.0.1:8080)", s)
	}
	return nil
}

func checkWebhookSecret(s Secret) error {
	if s != "" && len(s.Reveal()) < minTokenLen {
		return fmt.Errorf("must be at least %d characters", minTokenLen)
	}
	return nil
}

// checkHeaderName accepts an HTTP header name (token characters).
func checkHeaderName(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return fmt.Errorf("%q is not a valid header name", s)
		}
	}
	return nil
}

func checkScopes(scopes []string) error {
	var problems []string
	for _, s := range scopes {
		if strings.ContainsAny(s, " \t\r\n\"") {
			problems = append(problems, fmt.Sprintf("scope %q contains white space or quotes", s))
		}
	}
	return joinProblems(problems)
}

// vars is the one table of sendworker's environment variables, in documentation order. It drives
// Load, Defaults, Validate, Redacted and Reference. Order matters once: the per-account overrides
// follow the global limits they start from.
func vars() []varSpec {
	table := []varSpec{
		{name: envConfigFile, doc: "Env-style file (KEY=VALUE lines, # comments, optional quotes) read before the environment, which overrides it.",
			binding: stringVar(func(c *Config) *string { return &c.ConfigFile }, nil)},
		{name: envDev, def: "false", doc: "Dev mode: embedded Redis and the provider simulator; Redis, provider and admin token settings may be left empty.",
			binding: boolVar(func(c *Config) *bool { return &c.Dev })},
		{name: envSendMode, def: "live", doc: "live, or dry_run: everything but the sending call, and every result says so.",
			binding: enumVar(func(c *Config) *SendMode { return &c.SendMode }, SendLive, SendDryRun)},
		{name: envRedisURL, def: "redis://127.0.0.1:6379/0", redactRaw: redactRedisURL,
			doc:     "Redis: redis://[user:pass@]host:port[/db], rediss:// (TLS), redis-sentinel://[:pass@]h1:26379,h2:26379/<master>[?db=N&sentinel_password=...], redis-cluster://[:pass@]h1:7000,h2:7001. Unset in dev mode: embedded Redis.",
			binding: bind(func(c *Config) *Redis { return &c.Redis }, ParseRedisURL, Redis.String, Redis.validate)},

		{name: envProviderBaseURL, redactRaw: redactURL, doc: "Provider server root (http or https), without /api/v1. Required unless dev mode.",
			binding: bind(func(c *Config) *string { return &c.Provider.BaseURL },
				func(s string) (string, error) { return strings.TrimRight(s, "/"), nil }, redactURL, checkBaseURL)},
		{name: envProviderAuth, def: "api_key", doc: "Provider authentication: api_key or oauth2. The provider's v1 API takes only `X-API-KEY`: oauth2 is for a gateway in front of it that accepts bearer tokens. A refusal of the credentials at start makes `/readyz` not ready, with one error log line.",
			binding: enumVar(func(c *Config) *AuthMethod { return &c.Provider.Auth }, AuthAPIKey, AuthOAuth2)},
		{name: envProviderAPIKey, secret: true, doc: "Provider API key (secret). Required with api_key auth in live mode, unless dev mode.",
			binding: secretVar(func(c *Config) *Secret { return &c.Provider.APIKey }, nil)},
		{name: envOAuthTokenURL, redactRaw: redactURL, doc: "OAuth2 token endpoint. Required with oauth2 auth.",
			binding: urlVar(func(c *Config) *string { return &c.Provider.OAuth.TokenURL }, checkHTTPURL)},
		{name: envOAuthClientID, doc: "OAuth2 client id (client credentials, with the client secret).",
			binding: stringVar(func(c *Config) *string { return &c.Provider.OAuth.ClientID }, nil)},
		{name: envOAuthClientSecret, secret: true, doc: "OAuth2 client secret (secret).",
			binding: secretVar(func(c *Config) *Secret { return &c.Provider.OAuth.ClientSecret }, nil)},
		{name: envOAuthRefreshToken, secret: true, doc: "OAuth2 refresh token (secret): the alternative to client credentials.",
			binding: secretVar(func(c *Config) *Secret { return &c.Provider.OAuth.RefreshToken }, nil)},
		{name: envOAuthScopes, doc: "OAuth2 scopes, comma-separated.",
			binding: listVar(func(c *Config) *[]string { return &c.Provider.OAuth.Scopes }, nil, checkScopes)},
		{name: "SENDWORKER_PROVIDER_TIMEOUT", def: "30s", doc: "Time limit of one provider request.",
			binding: durationVar(func(c *Config) *time.Duration { return &c.Provider.Timeout }, positiveDuration)},

		{name: "SENDWORKER_CONCURRENCY", def: "20", doc: "Tasks run at once per worker process (1..1000).",
			binding: intVar(func(c *Config) *int { return &c.Worker.Concurrency }, intRange(1, 1000))},
		{name: "SENDWORKER_QUEUE", def: tasks.DefaultQueue, doc: "asynq queue of send tasks (used by nothing else).",
			binding: stringVar(func(c *Config) *string { return &c.Worker.Queue }, nameCheck("._:-", false))},
		{name: "SENDWORKER_SHUTDOWN_TIMEOUT", def: "25s", doc: "How long a stopping worker lets running sends finish.",
			binding: durationVar(func(c *Config) *time.Duration { return &c.Worker.ShutdownTimeout }, positiveDuration)},
		{name: "SENDWORKER_RECONCILE_DELAY", def: "15s", doc: "Wait before reading the chat to decide the outcome of a send whose result was lost.",
			binding: durationVar(func(c *Config) *time.Duration { return &c.Worker.ReconcileDelay }, nonNegativeDuration)},
		{name: "SENDWORKER_LATE_COMPLETION", def: "10m", doc: "How long after its sending call the provider may still store a message whose answer was lost; until the attempt's start + lease + this, a chat without the message proves nothing and the send is not resent.",
			binding: durationVar(func(c *Config) *time.Duration { return &c.Worker.LateCompletion }, positiveDuration)},
		{name: "SENDWORKER_RESEND_POLICY", def: "after_proof", doc: "A send whose outcome was unknown and whose message the chat then proved absent: after_proof sends it again, never ends it needs_review with the evidence.",
			binding: enumVar(func(c *Config) *string { return &c.Worker.ResendPolicy }, "after_proof", "never")},
		{name: "SENDWORKER_ACCOUNT_HEALTH_TTL", def: "30s", doc: "How long a provider account status is cached; 0 = not cached.",
			binding: durationVar(func(c *Config) *time.Duration { return &c.Worker.AccountHealthTTL }, nonNegativeDuration)},
		{name: "SENDWORKER_RECOVERY_GRACE", def: "5m", doc: "How long a released send may show no progress before the watchdog re-releases it (its asynq task was lost); longer than the worst queue wait.",
			binding: durationVar(func(c *Config) *time.Duration { return &c.Worker.RecoveryGrace }, positiveDuration)},
		{name: "SENDWORKER_WAIT_REPLICAS", def: "0", doc: "Redis replicas that must hold the start of an attempt (WAIT) before its sending call, so a failover cannot lose it and send again; 1 with Sentinel. 0 = no wait (0..16).",
			binding: intVar(func(c *Config) *int { return &c.Worker.WaitReplicas }, intRange(0, 16))},
		{name: "SENDWORKER_WAIT_TIMEOUT", def: "500ms", doc: "How long that WAIT may take; an attempt whose start did not reach the replicas in time is not made (the send waits and tries again).",
			binding: durationVar(func(c *Config) *time.Duration { return &c.Worker.WaitTimeout }, func(d time.Duration) error {
				// Below Redis clients' 3 s read timeout, which a longer WAIT would hit.
				if d < time.Millisecond || d > 2*time.Second {
					return errors.New("must be between 1ms and 2s")
				}
				return nil
			})},
	}

	for _, f := range limitFields() {
		b := binding{
			ptr:   func(c *Config) any { return f.num(&c.Rate.Limits) },
			parse: func(c *Config, raw string) error { return f.parse(&c.Rate.Limits, raw) },
			show:  func(c *Config) string { return f.show(c.Rate.Limits) },
			check: func(c *Config) error { return f.check(c.Rate.Limits) },
		}
		if f.dur != nil {
			b.ptr = func(c *Config) any { return f.dur(&c.Rate.Limits) }
		}
		table = append(table, varSpec{name: envPrefixRate + strings.ToUpper(f.key), def: f.def, doc: f.doc, binding: b})
	}

	table = append(table, []varSpec{
		{name: envPrefixRate + "GLOBAL_RPS", def: "10", doc: "Provider requests per second, all replicas together; 0 = no limit.",
			binding: floatVar(func(c *Config) *float64 { return &c.Rate.GlobalRPS }, nonNegativeFloat)},
		{name: envPrefixRate + "ACCOUNT_OVERRIDES", doc: "Per-account limits, e.g. acc-1:min_interval=5s,daily_cap=50;acc-2:hourly_cap=10 (keys: the limit names above in snake_case; the rest inherit).",
			binding: binding{
				ptr: func(c *Config) any { return &c.Rate.AccountOverrides },
				parse: func(c *Config, raw string) error {
					m, err := parseOverrides(raw, c.Rate.Limits)
					if err != nil {
						return err
					}
					c.Rate.AccountOverrides = m
					return nil
				},
				show:  func(c *Config) string { return formatOverrides(c.Rate.AccountOverrides, c.Rate.Limits) },
				check: func(c *Config) error { return checkOverrides(c.Rate.AccountOverrides) },
			}},

		{name: "SENDWORKER_APPROVAL_DEADLINE", def: "24h", doc: "Default approval deadline of a send; an unapproved send expires after it.",
			binding: durationVar(func(c *Config) *time.Duration { return &c.ApprovalDeadline }, positiveDuration)},
		{name: "SENDWORKER_MAX_DELAY_AFTER_APPROVAL", def: "72h", doc: "How long after its approval (or its window.not_before, if later) a send without window.not_after may still go out (paused, breaker open, rate limit); past it the send ends expired (max_delay_exceeded). A send's window.not_after wins.",
			binding: durationVar(func(c *Config) *time.Duration { return &c.MaxDelayAfterApproval }, positiveDuration)},
		{name: "SENDWORKER_ADMIN_ADDR", def: ":8080", doc: "Listen address of the admin API, health and metrics.",
			binding: stringVar(func(c *Config) *string { return &c.Admin.Addr }, checkAddr)},
		{name: envAdminTokens, secret: true, doc: "Admin API tokens (secret): identity:role[+role]:token, comma-separated; roles scheduler, approver, admin; tokens ≥ 16 characters; identities and tokens unique; an entry may end with \" accounts=acc_1|acc_2\" to limit the identity to those accounts. Required unless dev mode (or the file below).",
			binding: binding{
				ptr: func(c *Config) any { return &c.Admin.Tokens },
				parse: func(c *Config, raw string) error {
					tokens, err := parseAdminTokens(raw)
					if err != nil {
						return err
					}
					c.Admin.Tokens = tokens
					return nil
				},
				show: func(c *Config) string { return showAdminTokens(c.Admin.Tokens) },
				check: func(c *Config) error {
					if c.Admin.TokensFile != "" {
						return nil // reported under the file's variable
					}
					return checkAdminTokens(c.Admin.Tokens)
				},
			}},
		{name: envAdminTokensFile, doc: "File of admin tokens, one identity:role[+role]:token per line (# comments); instead of " + envAdminTokens + ". Reloaded without a restart on SIGHUP and when its content changes (an invalid, empty, unreadable or deleted file keeps the tokens in force: revoke a token by removing its line, not the file).",
			binding: binding{
				ptr:   func(c *Config) any { return &c.Admin.TokensFile },
				parse: loadTokensFile,
				show:  func(c *Config) string { return c.Admin.TokensFile },
				check: func(c *Config) error {
					if c.Admin.TokensFile == "" {
						return nil
					}
					return checkAdminTokens(c.Admin.Tokens)
				},
			}},
		{name: "SENDWORKER_CONSOLE_SESSION_TTL", def: "12h", doc: "Lifetime of a review console session (signed in with an admin token); at most 7 days.",
			binding: durationVar(func(c *Config) *time.Duration { return &c.Admin.ConsoleSessionTTL }, durationRange(time.Minute, 7*24*time.Hour))},
		{name: "SENDWORKER_CONSOLE_TRUSTED_HEADER", doc: "Off when empty. The name of a request header set by an authenticating proxy in front of the console (e.g. X-Forwarded-Email): its value is taken as the identity, with that identity's roles and accounts from the admin tokens. Anyone who can reach the admin listener without the proxy can then claim any identity: only set it when the proxy is the only way in.",
			binding: stringVar(func(c *Config) *string { return &c.Admin.ConsoleTrustedHeader }, checkTrustedHeader)},
		{name: "SENDWORKER_MAX_BODY_BYTES", def: "1048576", doc: "Largest admin API request body, in bytes (units such as KiB, MiB accepted); at most 64 MiB.",
			binding: bytesVar(func(c *Config) *int64 { return &c.Admin.MaxBodyBytes }, bytesRange(1, 64<<20))},

		{name: "SENDWORKER_ATTACHMENT_ORIGINS", doc: "Origins attachments may be fetched from: comma-separated https://host[:port] (http only for localhost and 127.0.0.1). Empty: no attachments.",
			binding: listVar(func(c *Config) *[]string { return &c.Attachments.Origins }, parseOrigins, checkOrigins)},
		{name: "SENDWORKER_ATTACHMENT_MAX_BYTES", def: "15728640", doc: "Largest attachment, in bytes (15 MiB; at most 100 MiB).",
			binding: bytesVar(func(c *Config) *int64 { return &c.Attachments.MaxBytes }, bytesRange(1, 100<<20))},

		{name: "SENDWORKER_RESULTS_STREAM", def: "sendworker:results", doc: "Redis stream the results are appended to. On Redis Cluster it must carry the key prefix as hash tag, e.g. {sendworker}:results.",
			binding: stringVar(func(c *Config) *string { return &c.Results.Stream }, nameCheck("._:-{}", false))},
		{name: "SENDWORKER_RESULTS_STREAM_MAXLEN", def: "1000000", doc: "Approximate length the results stream is trimmed to; 0 = never trimmed.",
			binding: intVar(func(c *Config) *int { return &c.Results.StreamMaxLen }, nonNegativeInt)},
		{name: "SENDWORKER_RESULT_RETENTION", def: "720h", doc: "How long terminal send records are kept.",
			binding: durationVar(func(c *Config) *time.Duration { return &c.Results.Retention }, positiveDuration)},
		{name: envWebhookURL, redactRaw: redactSecretURL, doc: "Optional URL POSTed every result, signed with HMAC-SHA256; treated as a secret beyond its host.",
			binding: bind(func(c *Config) *Secret { return &c.Results.Webhook.URL },
				func(s string) (Secret, error) { return Secret(s), nil },
				func(s Secret) string { return redactSecretURL(s.Reveal()) },
				func(s Secret) error { return checkHTTPURL(s.Reveal()) })},
		{name: envWebhookSecret, secret: true, doc: "Webhook HMAC key (secret), ≥ 16 characters; required when the webhook URL is set.",
			binding: secretVar(func(c *Config) *Secret { return &c.Results.Webhook.Secret }, checkWebhookSecret)},
		{name: "SENDWORKER_WEBHOOK_TIMEOUT", def: "10s", doc: "Time limit of one webhook attempt.",
			binding: durationVar(func(c *Config) *time.Duration { return &c.Results.Webhook.Timeout }, positiveDuration)},
		{name: "SENDWORKER_WEBHOOK_MAX_ATTEMPTS", def: "10", doc: "Webhook attempts per result (1..100).",
			binding: intVar(func(c *Config) *int { return &c.Results.Webhook.MaxAttempts }, intRange(1, 100))},

		{name: "SENDWORKER_INBOUND_SECRET", secret: true, doc: "Shared secret (≥ 16 characters) the provider sends in the inbound header with every webhook event to POST /v1/provider/events; empty: the receiver is off.",
			binding: secretVar(func(c *Config) *Secret { return &c.Inbound.Secret }, checkWebhookSecret)},
		{name: "SENDWORKER_INBOUND_SECRET_PREVIOUS", secret: true, doc: "The previous inbound secret, also accepted while a rotation is under way.",
			binding: secretVar(func(c *Config) *Secret { return &c.Inbound.PreviousSecret }, checkWebhookSecret)},
		{name: "SENDWORKER_INBOUND_HEADER", def: "X-Sendworker-Inbound-Secret", doc: "Request header carrying the inbound secret.",
			binding: stringVar(func(c *Config) *string { return &c.Inbound.Header }, checkHeaderName)},
		{name: "SENDWORKER_INBOUND_MAX_BODY_BYTES", def: "262144", doc: "Largest inbound event body, in bytes (larger: 413).",
			binding: bytesVar(func(c *Config) *int64 { return &c.Inbound.MaxBodyBytes }, bytesRange(1024, 16<<20))},
		{name: "SENDWORKER_INBOUND_OPTOUT_KEYWORDS", doc: "Comma-separated whole messages that opt the contact out (case- and accent-insensitive); empty: STOP, UNSUBSCRIBE and their equivalents in French, Spanish, Portuguese, German and Italian.",
			binding: listVar(func(c *Config) *[]string { return &c.Inbound.OptOutKeywords }, nil, nil)},

		{name: "SENDWORKER_LOG_LEVEL", def: "info", doc: "debug, info, warn or error.",
			binding: enumVar(func(c *Config) *string { return &c.Log.Level }, "debug", "info", "warn", "error")},
		{name: envLogFormat, def: "json", doc: "json or console (console by default in dev mode).",
			binding: enumVar(func(c *Config) *string { return &c.Log.Format }, "json", "console")},
		{name: "SENDWORKER_KEY_PREFIX", def: "sendworker", doc: "Prefix of sendworker's Redis keys: [a-z0-9_:-]+.",
			binding: stringVar(func(c *Config) *string { return &c.KeyPrefix }, nameCheck("_:-", true))},
	}...)
	return table
}

// loadTokensFile is the parse step of SENDWORKER_ADMIN_TOKENS_FILE: it records the path and
// reads the tokens from the file.
func loadTokensFile(c *Config, path string) error {
	c.Admin.TokensFile = path
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tokens, err := parseAdminTokensFile(string(data))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	c.Admin.Tokens = tokens
	return nil
}

// VarDoc documents one environment variable.
type VarDoc struct {
	Name        string
	Default     string // "" when there is none
	Description string
	Secret      bool // the value is never printed
}

// Reference lists every variable, its default and meaning, in documentation order: the source of
// the README's configuration table.
func Reference() []VarDoc {
	var docs []VarDoc
	for _, v := range vars() {
		docs = append(docs, VarDoc{Name: v.name, Default: v.def, Description: v.doc, Secret: v.secret})
	}
	return docs
}

// ReferenceMarkdown renders Reference as a Markdown table.
func ReferenceMarkdown() string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Description |\n| --- | --- | --- |\n")
	for _, d := range Reference() {
		def := "—"
		if d.Default != "" {
			def = "`" + d.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", d.Name, def, strings.ReplaceAll(d.Description, "|", `\|`))
	}
	return b.String()
}
