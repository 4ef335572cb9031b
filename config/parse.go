package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Scalar parsers. Each error message quotes the value it could not read: they are only used for
// variables that are not secret.

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "t", "true", "yes", "y", "on":
		return true, nil
	case "0", "f", "false", "no", "n", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use true or false)", s)
}

func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%q is too large", s)
		}
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	return n, nil
}

func parseFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return f, nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, nil
	}
	if _, nerr := strconv.Atoi(s); nerr == nil {
		return 0, fmt.Errorf("%q has no unit (write e.g. %ss)", s, s)
	}
	if strings.HasSuffix(s, "d") {
		return 0, fmt.Errorf("%q is not a duration (days are not a unit: use hours, e.g. 24h)", s)
	}
	return 0, fmt.Errorf("%q is not a duration (e.g. 30s, 5m, 1h30m)", s)
}

// formatDuration prints d the way people write it: 24h rather than 24h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// byteUnits are the size suffixes parseBytes accepts (case-insensitive).
func byteUnits() []struct {
	suffix string
	mult   int64
} {
	return []struct {
		suffix string
		mult   int64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
		{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
		{"b", 1},
	}
}

// parseBytes reads a size: a plain number of bytes, or a number with a unit (KiB, MiB, GiB, KB,
// MB, GB).
func parseBytes(s string) (int64, error) {
	num, mult := s, int64(1)
	lower := strings.ToLower(s)
	for _, u := range byteUnits() {
		if strings.HasSuffix(lower, u.suffix) {
			num, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with KiB, MiB, KB or MB)", s)
	}
	if n > math.MaxInt64/mult || n < math.MinInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// parseList splits a comma list, trimming items and dropping empty ones.
func parseList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// joinProblems folds several problems with one variable into a single message.
func joinProblems(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}

// Range checks, shared by the variable table.

func intRange(lo, hi int) func(int) error {
	return func(n int) error {
		if n < lo || n > hi {
			return fmt.Errorf("must be between %d and %d, got %d", lo, hi, n)
		}
		return nil
	}
}

func bytesRange(lo, hi int64) func(int64) error {
	return func(n int64) error {
		if n < lo || n > hi {
			return fmt.Errorf("must be between %d and %d bytes, got %d", lo, hi, n)
		}
		return nil
	}
}

func nonNegativeInt(n int) error {
	if n < 0 {
		return fmt.Errorf("must be ≥ 0, got %d", n)
	}
	return nil
}

func nonNegativeDuration(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("must be ≥ 0, got %s", formatDuration(d))
	}
	return nil
}

func positiveDuration(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be > 0, got %s", formatDuration(d))
	}
	return nil
}

func nonNegativeFloat(f float64) error {
	if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("must be a finite number ≥ 0, got %g", f)
	}
	return nil
}

// nameCheck returns a check that s is made of ASCII letters, digits and the extra bytes; lower
// restricts letters to lower case.
func nameCheck(extra string, lower bool) func(string) error {
	allowed := "letters, digits"
	if lower {
		allowed = "lower-case letters, digits"
	}
	return func(s string) error {
		if !validName(s, extra) || (lower && strings.ToLower(s) != s) {
			return fmt.Errorf("%q must be non-empty and made of %s and %q", s, allowed, extra)
		}
		return nil
	}
}

// URLs.

// checkHTTPURL checks an optional http(s) URL. Its messages do not quote the URL: it may carry a
// token in its query.
func checkHTTPURL(s string) error {
	if s == "" {
		return nil
	}
	if lower := strings.ToLower(s); !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		return errors.New("must start with http:// or https://")
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		return errors.New("not a valid URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("URL has no host")
	}
	if u.User != nil {
		return errors.New("must not contain credentials (user:password@)")
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return errors.New("must not contain a fragment ('#')")
	}
	return nil
}

// checkBaseURL checks the provider base URL: the server root, to which sendworker adds /api/v1.
func checkBaseURL(s string) error {
	if err := checkHTTPURL(s); err != nil {
		return err
	}
	if s == "" {
		return nil
	}
	u, _ := url.Parse(s)
	if u.RawQuery != "" {
		return errors.New("must not contain a query string")
	}
	if path := strings.TrimRight(u.Path, "/"); strings.HasSuffix(path, "/api/v1") {
		u.Path = strings.TrimSuffix(path, "/api/v1")
		return fmt.Errorf("remove the /api/v1 suffix: sendworker adds it to every call (use %s)", u.String())
	}
	return nil
}

// redactURL prints a URL without its credentials or query values.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		if strings.ContainsAny(s, "@?") {
			return redactedText
		}
		return s
	}
	hadUser := u.User != nil
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = redactedText
	}
	out := u.String()
	if hadUser {
		if scheme, rest, ok := strings.Cut(out, "://"); ok {
			out = scheme + "://" + redactedText + "@" + rest
		}
	}
	return out
}

// redactSecretURL prints a URL that is a secret as a whole (a webhook URL may carry its token in
// the path or query): only its scheme and host.
func redactSecretURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return redactedText
	}
	out := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		out += "/" + redactedText
	}
	return out
}

// Attachment origins.

func parseOrigins(s string) ([]string, error) {
	items := parseList(s)
	for i, o := range items {
		items[i] = strings.ToLower(o)
	}
	return items, nil
}

func checkOrigins(origins []string) error {
	var problems []string
	seen := make(map[string]bool)
	for i, o := range origins {
		if err := checkOrigin(o); err != nil {
			problems = append(problems, fmt.Sprintf("origin %d %q: %v", i+1, o, err))
			continue
		}
		if seen[o] {
			problems = append(problems, fmt.Sprintf("origin %d %q: listed twice", i+1, o))
		}
		seen[o] = true
	}
	return joinProblems(problems)
}

func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || u.Opaque != "" {
		return errors.New("not a URL; want https://host[:port]")
	}
	if u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(o, "?#") {
		return errors.New("an origin is scheme://host[:port] only: no path, query or credentials")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("no host")
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("port must be a number from 1 to 65535")
		}
	}
	switch u.Scheme {
	case "https":
	case "http":
		if host != "localhost" && host != "127.0.0.1" && host != "::1" {
			return errors.New("http is only allowed for localhost and 127.0.0.1; use https")
		}
	default:
		return errors.New("scheme must be https (http only for localhost)")
	}
	return nil
}

// Admin tokens.

// Admin API roles.
const (
	RoleScheduler = "scheduler" // enqueue and cancel sends
	RoleApprover  = "approver"  // approve and reject sends
	RoleAdmin     = "admin"     // pause and resume, cancel
)

// minTokenLen is the shortest admin token (and webhook secret) accepted.
const minTokenLen = 16

// AdminToken maps a bearer token of the admin API to an identity and its roles.
type AdminToken struct {
	// Identity is who the caller is (recorded as requested_by / approved_by): [A-Za-z0-9._@-]+.
	Identity string
	// Roles are among scheduler, approver, admin.
	Roles []string
	// Token is the bearer token, at least 16 characters, no white space or commas.
	Token Secret
	// Accounts limits the identity to these provider accounts (reads and decisions); nil means
	// every account. Written as an " accounts=a|b" option after the entry (tokenscope.go).
	Accounts []string
}

// HasRole reports whether t carries role.
func (t AdminToken) HasRole(role string) bool { return slices.Contains(t.Roles, role) }

// String prints the entry with its token redacted.
func (t AdminToken) String() string {
	return t.Identity + ":" + strings.Join(t.Roles, "+") + ":" + redactedText + formatTokenOptions(t)
}

// parseAdminTokens reads SENDWORKER_ADMIN_TOKENS: identity:role[+role]:token entries separated by
// commas. Syntax only; checkAdminTokens checks the contents. Messages never quote an entry.
func parseAdminTokens(s string) ([]AdminToken, error) {
	return parseTokenEntries(strings.Split(s, ","), "entry")
}

// ReadAdminTokensFile reads and checks a SENDWORKER_ADMIN_TOKENS_FILE as Load does: the daemon
// calls it to reload the tokens (SIGHUP, or the file changed). An error never quotes a token.
func ReadAdminTokensFile(path string) ([]AdminToken, error) {
	var c Config
	if err := loadTokensFile(&c, path); err != nil {
		return nil, err
	}
	if err := checkAdminTokens(c.Admin.Tokens); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(c.Admin.Tokens) == 0 {
		return nil, fmt.Errorf("%s: no token: nobody could call the API", path)
	}
	return c.Admin.Tokens, nil
}

// parseAdminTokensFile reads a SENDWORKER_ADMIN_TOKENS_FILE: one entry per line, blank lines and
// '#' comments ignored.
func parseAdminTokensFile(data string) ([]AdminToken, error) {
	var lines []string
	for line := range strings.SplitSeq(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			line = "" // kept so that messages count real lines
		}
		lines = append(lines, line)
	}
	return parseTokenEntries(lines, "line")
}

func parseTokenEntries(items []string, label string) ([]AdminToken, error) {
	var tokens []AdminToken
	var problems []string
	n := 0
	for i, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		n++
		where := fmt.Sprintf("%s %d", label, n)
		if label == "line" {
			where = fmt.Sprintf("line %d", i+1)
		}
		identity, rest, ok1 := strings.Cut(item, ":")
		roles, token, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			problems = append(problems, where+": want identity:role[+role]:token")
			continue
		}
		// A token holds no white space: what follows it are options.
		fields := strings.Fields(token)
		if len(fields) > 0 {
			token = fields[0]
		}
		accounts, err := parseTokenOptions(fields[min(1, len(fields)):])
		if err != nil {
			problems = append(problems, where+": "+err.Error())
			continue
		}
		tokens = append(tokens, AdminToken{
			Identity: strings.TrimSpace(identity),
			Roles:    strings.Split(strings.TrimSpace(roles), "+"),
			Token:    Secret(strings.TrimSpace(token)),
			Accounts: accounts,
		})
	}
	return tokens, joinProblems(problems)
}

// formatAdminTokens renders tokens in the syntax parseAdminTokens reads, tokens revealed.
func formatAdminTokens(tokens []AdminToken) string {
	var entries []string
	for _, t := range tokens {
		entries = append(entries, t.Identity+":"+strings.Join(t.Roles, "+")+":"+t.Token.Reveal()+formatTokenOptions(t))
	}
	return strings.Join(entries, ",")
}

func showAdminTokens(tokens []AdminToken) string {
	var entries []string
	for _, t := range tokens {
		entries = append(entries, t.String())
	}
	return strings.Join(entries, ",")
}

// checkAdminTokens checks identities, roles, token strength and uniqueness. Messages name entries
// by position and (valid) identity, never by token.
func checkAdminTokens(tokens []AdminToken) error {
	var problems []string
	// An identity may have several tokens (to rotate one without downtime:
	// add the new token, roll out, move clients, remove the old one), but all
	// of them must carry the same roles.
	identities := make(map[string]int)
	secrets := make(map[Secret]int)
	for i, t := range tokens {
		where := fmt.Sprintf("entry %d", i+1)
		if !validName(t.Identity, "._@-") {
			problems = append(problems, where+": identity must be non-empty and made of letters, digits, '.', '_', '@' and '-'")
		} else {
			where += fmt.Sprintf(" (%s)", t.Identity)
			if first, dup := identities[t.Identity]; dup {
				if !sameRoles(tokens[first-1].Roles, t.Roles) {
					problems = append(problems, fmt.Sprintf("%s: identity already used by entry %d with other roles", where, first))
				}
				if !sameRoles(tokens[first-1].Accounts, t.Accounts) {
					problems = append(problems, fmt.Sprintf("%s: identity already used by entry %d with other accounts", where, first))
				}
			} else {
				identities[t.Identity] = i + 1
			}
		}
		if len(t.Roles) == 0 {
			problems = append(problems, where+": no role (want scheduler, approver and/or admin)")
		}
		for j, r := range t.Roles {
			switch {
			case r != RoleScheduler && r != RoleApprover && r != RoleAdmin:
				if validName(r, "_-") && len(r) <= 32 {
					problems = append(problems, fmt.Sprintf("%s: unknown role %q (want scheduler, approver or admin)", where, r))
				} else {
					problems = append(problems, where+": unknown role (want scheduler, approver or admin)")
				}
			case slices.Contains(t.Roles[:j], r):
				problems = append(problems, fmt.Sprintf("%s: role %s listed twice", where, r))
			}
		}
		tok := t.Token.Reveal()
		switch {
		case len(tok) < minTokenLen:
			problems = append(problems, fmt.Sprintf("%s: token must be at least %d characters", where, minTokenLen))
		case strings.ContainsAny(tok, ", \t\r\n"):
			problems = append(problems, where+": token must not contain white space or commas")
		}
		if first, dup := secrets[t.Token]; dup && tok != "" {
			problems = append(problems, fmt.Sprintf("%s: same token as entry %d", where, first))
		} else if !dup {
			secrets[t.Token] = i + 1
		}
	}
	return joinProblems(problems)
}

func sameRoles(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Rate limits.

// limitField describes one field of Limits: its override key (snake_case), its environment
// variable (SENDWORKER_RATE_ + upper-case key), default and meaning. Exactly one of dur and num is set.
type limitField struct {
	key string
	def string
	doc string
	dur func(*Limits) *time.Duration
	num func(*Limits) *int
}

func limitFields() []limitField {
	return []limitField{
		{key: "min_interval", def: "10s", dur: func(l *Limits) *time.Duration { return &l.MinInterval },
			doc: "Minimum spacing between two sends of one account; the actual gap is min_interval plus a random part of jitter."},
		{key: "jitter", def: "10s", dur: func(l *Limits) *time.Duration { return &l.Jitter },
			doc: "Random extra spacing: sends of one account are min_interval..min_interval+jitter apart."},
		{key: "hourly_cap", def: "60", num: func(l *Limits) *int { return &l.HourlyCap },
			doc: "Sends per account per rolling hour; 0 means no cap."},
		{key: "daily_cap", def: "300", num: func(l *Limits) *int { return &l.DailyCap },
			doc: "Sends per account per rolling day; 0 means no cap."},
		{key: "new_chats_hourly_cap", def: "5", num: func(l *Limits) *int { return &l.NewChatsHourlyCap },
			doc: "New chats (chats_create) per account per rolling hour; 0 means no cap."},
		{key: "new_chats_daily_cap", def: "20", num: func(l *Limits) *int { return &l.NewChatsDailyCap },
			doc: "New chats per account per rolling day; 0 means no cap."},
		{key: "recipient_cooldown", def: "0s", dur: func(l *Limits) *time.Duration { return &l.RecipientCooldown },
			doc: "Minimum time between two sends from one account to the same chat; 0 means off."},
		{key: "warmup_start", def: "0", num: func(l *Limits) *int { return &l.WarmupStart },
			doc: "Daily cap on day 1 of a young account, growing by warmup_step a day up to daily_cap; 0 means no warm-up."},
		{key: "warmup_step", def: "10", num: func(l *Limits) *int { return &l.WarmupStep },
			doc: "Daily cap increase per day during warm-up (only used when warmup_start > 0)."},
	}
}

func (f limitField) parse(l *Limits, raw string) error {
	if f.dur != nil {
		d, err := parseDuration(raw)
		if err != nil {
			return err
		}
		*f.dur(l) = d
		return nil
	}
	n, err := parseInt(raw)
	if err != nil {
		return err
	}
	*f.num(l) = n
	return nil
}

func (f limitField) show(l Limits) string {
	if f.dur != nil {
		return formatDuration(*f.dur(&l))
	}
	return strconv.Itoa(*f.num(&l))
}

func (f limitField) check(l Limits) error {
	if f.dur != nil {
		return nonNegativeDuration(*f.dur(&l))
	}
	return nonNegativeInt(*f.num(&l))
}

// checkLimits lists everything wrong with a set of limits (key-named).
func checkLimits(l Limits) []string {
	var problems []string
	for _, f := range limitFields() {
		if err := f.check(l); err != nil {
			problems = append(problems, f.key+" "+err.Error())
		}
	}
	if l.WarmupStart > 0 && l.DailyCap > 0 && l.WarmupStart > l.DailyCap {
		problems = append(problems, fmt.Sprintf("warmup_start (%d) is above daily_cap (%d)", l.WarmupStart, l.DailyCap))
	}
	return problems
}

// validAccountID accepts what a provider account id can look like, minus the override separators.
func validAccountID(s string) bool { return validName(s, "._-@+~") }

// parseOverrides reads SENDWORKER_RATE_ACCOUNT_OVERRIDES: entries "account:key=value[,key=value]"
// separated by ';', with the snake_case keys of limitFields. Each account starts from base (the
// global limits) and changes only the keys it names.
func parseOverrides(s string, base Limits) (map[string]Limits, error) {
	var out map[string]Limits
	var problems []string
	var keys []string
	for _, f := range limitFields() {
		keys = append(keys, f.key)
	}
	for i, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		account, list, ok := strings.Cut(entry, ":")
		account = strings.TrimSpace(account)
		if !ok {
			problems = append(problems, fmt.Sprintf("entry %d: want account:key=value[,key=value]", i+1))
			continue
		}
		if !validAccountID(account) {
			problems = append(problems, fmt.Sprintf("entry %d: account id must be non-empty letters, digits and ._-@+~", i+1))
			continue
		}
		where := "account " + account
		if _, dup := out[account]; dup {
			problems = append(problems, where+": listed twice")
			continue
		}
		l := base
		given := make(map[string]bool)
		bad := false
		for kv := range strings.SplitSeq(list, ",") {
			key, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
			key, val = strings.TrimSpace(key), strings.TrimSpace(val)
			f, known := findLimitField(key)
			switch {
			case !ok:
				problems = append(problems, where+": want key=value after the ':'")
			case !known:
				msg := fmt.Sprintf("%s: unknown limit %q", where, key)
				if near, ok := closest(key, keys); ok {
					msg += fmt.Sprintf(" (did you mean %s?)", near)
				}
				problems = append(problems, msg+"; known: "+strings.Join(keys, ", "))
			case given[key]:
				problems = append(problems, fmt.Sprintf("%s: %s given twice", where, key))
			default:
				given[key] = true
				if err := f.parse(&l, val); err != nil {
					problems = append(problems, fmt.Sprintf("%s: %s: %v", where, key, err))
				} else {
					continue
				}
			}
			bad = true
		}
		if bad {
			continue
		}
		if out == nil {
			out = make(map[string]Limits)
		}
		out[account] = l
	}
	return out, joinProblems(problems)
}

func findLimitField(key string) (limitField, bool) {
	for _, f := range limitFields() {
		if f.key == key {
			return f, true
		}
	}
	return limitField{}, false
}

// formatOverrides renders overrides in the syntax parseOverrides reads, naming only the keys
// that differ from base.
func formatOverrides(m map[string]Limits, base Limits) string {
	accounts := make([]string, 0, len(m))
	for a := range m {
		accounts = append(accounts, a)
	}
	sort.Strings(accounts)
	var entries []string
	for _, a := range accounts {
		var kvs []string
		for _, f := range limitFields() {
			if v := f.show(m[a]); v != f.show(base) {
				kvs = append(kvs, f.key+"="+v)
			}
		}
		if len(kvs) == 0 { // an override equal to the base still names the account
			f := limitFields()[0]
			kvs = append(kvs, f.key+"="+f.show(m[a]))
		}
		entries = append(entries, a+":"+strings.Join(kvs, ","))
	}
	return strings.Join(entries, ";")
}

func checkOverrides(m map[string]Limits) error {
	accounts := make([]string, 0, len(m))
	for a := range m {
		accounts = append(accounts, a)
	}
	sort.Strings(accounts)
	var problems []string
	for _, a := range accounts {
		if !validAccountID(a) {
			problems = append(problems, fmt.Sprintf("account id %q is not valid", a))
		}
		for _, p := range checkLimits(m[a]) {
			problems = append(problems, "account "+a+": "+p)
		}
	}
	return joinProblems(problems)
}
