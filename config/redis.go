package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RedisMode says how sendworker reaches Redis.
type RedisMode string

// Redis deployment modes.
const (
	RedisSingle   RedisMode = "single"   // one server (or a proxy in front of one)
	RedisSentinel RedisMode = "sentinel" // a master found through Sentinel, followed across failovers
	RedisCluster  RedisMode = "cluster"  // Redis Cluster
)

// Redis is a parsed SENDWORKER_REDIS_URL. The zero value (Mode "") means "no Redis configured",
// which only dev mode accepts: the caller then runs an embedded Redis.
type Redis struct {
	Mode RedisMode
	// Addrs are host:port pairs: the server (single), the sentinels, or the cluster seed nodes.
	Addrs []string
	// MasterName is the Sentinel master name (sentinel mode only).
	MasterName string
	// Username is the Redis ACL user; empty means "default".
	Username string
	// Password authenticates to the data nodes.
	Password Secret
	// SentinelPassword authenticates to the sentinels themselves (sentinel mode only).
	SentinelPassword Secret
	// DB is the logical database, 0..15 (always 0 in cluster mode).
	DB int
	// TLS is set by the rediss schemes.
	TLS bool
}

// Default ports, by mode.
const (
	redisPort    = "6379"
	sentinelPort = "26379"
	maxRedisDB   = 15 // Redis ships with "databases 16"
)

// schemeMode maps an accepted URL scheme to its mode and TLS setting.
func schemeMode(scheme string) (RedisMode, bool, bool) {
	switch strings.ToLower(scheme) {
	case "redis":
		return RedisSingle, false, true
	case "rediss":
		return RedisSingle, true, true
	case "redis-sentinel":
		return RedisSentinel, false, true
	case "rediss-sentinel":
		return RedisSentinel, true, true
	case "redis-cluster":
		return RedisCluster, false, true
	case "rediss-cluster":
		return RedisCluster, true, true
	}
	return "", false, false
}

const redisURLForms = "redis://[user:pass@]host:port[/db], rediss://..., " +
	"redis-sentinel://[:pass@]host1:26379,host2:26379/<master-name>[?db=N&sentinel_password=...] " +
	"or redis-cluster://[:pass@]host1:7000,host2:7001"

// ParseRedisURL parses a Redis URL in one of the forms
//
//	redis://[user:pass@]host[:port][/db]                       (rediss:// for TLS)
//	redis-sentinel://[user:pass@]host1:26379,host2:26379/<master-name>[?db=N&sentinel_password=...]
//	redis-cluster://[user:pass@]host1:7000,host2:7001          (rediss-sentinel://, rediss-cluster:// for TLS)
//
// Special characters in the user name and passwords must be percent-encoded. Errors never quote
// any part of the URL after the scheme: a malformed URL cannot tell which part is the password.
func ParseRedisURL(raw string) (Redis, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Redis{}, fmt.Errorf("not a Redis URL; use %s", redisURLForms)
	}
	mode, useTLS, ok := schemeMode(scheme)
	if !ok {
		if len(scheme) > 20 || strings.ContainsAny(scheme, ":@/") {
			return Redis{}, fmt.Errorf("unsupported scheme; use %s", redisURLForms)
		}
		return Redis{}, fmt.Errorf("unsupported scheme %q; use %s", scheme, redisURLForms)
	}
	if strings.Contains(rest, "#") {
		return Redis{}, errors.New("must not contain '#' (percent-encode it as %23 in a password)")
	}
	r := Redis{Mode: mode, TLS: useTLS}

	rest, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	hosts := authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		user, pass, _ := strings.Cut(authority[:at], ":")
		var err error
		if r.Username, err = url.PathUnescape(user); err != nil {
			return Redis{}, errors.New("invalid percent-encoding in the user name")
		}
		p, err := url.PathUnescape(pass)
		if err != nil {
			return Redis{}, errors.New("invalid percent-encoding in the password")
		}
		r.Password = Secret(p)
		hosts = authority[at+1:]
	}

	defPort := redisPort
	if mode == RedisSentinel {
		defPort = sentinelPort
	}
	if hosts == "" {
		return Redis{}, errors.New("host is empty")
	}
	for i, h := range strings.Split(hosts, ",") {
		addr, err := parseRedisHost(h, defPort)
		if err != nil {
			return Redis{}, fmt.Errorf("host %d: %w", i+1, err)
		}
		r.Addrs = append(r.Addrs, addr)
	}
	if mode == RedisSingle && len(r.Addrs) > 1 {
		return Redis{}, errors.New("several hosts need redis-sentinel:// or redis-cluster://")
	}

	params, err := url.ParseQuery(query)
	if err != nil {
		return Redis{}, errors.New("invalid query string")
	}
	for key, vals := range params {
		if mode != RedisSentinel || (key != "db" && key != "sentinel_password") {
			// The key is not quoted: with an unescaped '?' in a password it would be part of it.
			return Redis{}, errors.New("unknown query parameter (only redis-sentinel:// takes db and sentinel_password)")
		}
		if len(vals) > 1 {
			return Redis{}, fmt.Errorf("query parameter %s given more than once", key)
		}
	}

	switch mode {
	case RedisSingle:
		if path != "" {
			if r.DB, err = parseRedisDB(path); err != nil {
				return Redis{}, err
			}
		}
	case RedisSentinel:
		if path == "" {
			return Redis{}, errors.New("missing master name: redis-sentinel://host1:26379,host2:26379/<master-name>")
		}
		if !validName(path, "._-") {
			return Redis{}, errors.New("master name may only contain letters, digits, '.', '_' and '-'")
		}
		r.MasterName = path
		if params.Has("db") {
			if r.DB, err = parseRedisDB(params.Get("db")); err != nil {
				return Redis{}, err
			}
		}
		r.SentinelPassword = Secret(params.Get("sentinel_password"))
	case RedisCluster:
		if path != "" {
			return Redis{}, errors.New("Redis Cluster has no databases: remove the path after the hosts")
		}
	}
	return r, nil
}

func parseRedisDB(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxRedisDB || len(s) > 2 {
		return 0, fmt.Errorf("database must be a number from 0 to %d", maxRedisDB)
	}
	return n, nil
}

// parseRedisHost checks one host[:port] (IPv6 in brackets) and returns it as host:port.
func parseRedisHost(h, defPort string) (string, error) {
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.Index(h, "]")
		if end < 0 {
			return "", errors.New("missing ']' after an IPv6 address")
		}
		host = h[1:end]
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return "", errors.New("not a valid IPv6 address in brackets")
		}
		switch rest := h[end+1:]; {
		case rest == "":
		case strings.HasPrefix(rest, ":"):
			port = rest[1:]
		default:
			return "", errors.New("unexpected text after ']'")
		}
	} else {
		if strings.Count(h, ":") > 1 {
			return "", errors.New("IPv6 addresses must be in brackets, e.g. [::1]:6379")
		}
		host, port, _ = strings.Cut(h, ":")
		if host == "" {
			return "", errors.New("host is empty")
		}
		if !validName(host, ".-_") {
			return "", errors.New("host name may only contain letters, digits, '.', '-' and '_'")
		}
	}
	if port == "" {
		port = defPort
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || len(port) > 5 {
		return "", errors.New("port must be a number from 1 to 65535")
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// validName reports whether s is non-empty and made of ASCII letters, digits and the extra bytes.
func validName(s, extra string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte(extra, b) >= 0) {
			return false
		}
	}
	return true
}

// String returns the URL with passwords replaced by <secret>; "" for the zero Redis.
func (r Redis) String() string { return r.url(false) }

// url renders r in the syntax ParseRedisURL reads. With reveal false, secrets print as <secret>
// and the result is for people only.
func (r Redis) url(reveal bool) string {
	if r.Mode == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString("redis")
	if r.TLS {
		b.WriteString("s")
	}
	if r.Mode != RedisSingle {
		b.WriteString("-" + string(r.Mode))
	}
	b.WriteString("://")
	secret := func(s Secret) string {
		if reveal {
			return escapeUserinfo(s.Reveal())
		}
		return redactedText
	}
	if r.Username != "" || r.Password != "" {
		b.WriteString(escapeUserinfo(r.Username))
		if r.Password != "" {
			b.WriteString(":" + secret(r.Password))
		}
		b.WriteString("@")
	}
	b.WriteString(strings.Join(r.Addrs, ","))
	switch r.Mode {
	case RedisSingle:
		b.WriteString("/" + strconv.Itoa(r.DB))
	case RedisSentinel:
		b.WriteString("/" + r.MasterName)
		var q []string
		if r.DB != 0 {
			q = append(q, "db="+strconv.Itoa(r.DB))
		}
		if r.SentinelPassword != "" {
			if reveal {
				q = append(q, "sentinel_password="+url.QueryEscape(r.SentinelPassword.Reveal()))
			} else {
				q = append(q, "sentinel_password="+redactedText)
			}
		}
		if len(q) > 0 {
			b.WriteString("?" + strings.Join(q, "&"))
		}
	}
	return b.String()
}

// escapeUserinfo percent-encodes everything but RFC 3986 unreserved characters.
func escapeUserinfo(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if validName(string(c), "-._~") {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// redactRedisURL hides the credentials of a Redis URL that may not parse, for error reports:
// everything up to the last '@' (user info, possibly with an unescaped '/') and any query string.
func redactRedisURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		if strings.Contains(raw, "@") {
			return redactedText
		}
		return raw
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = redactedText + rest[at:]
	}
	if q := strings.Index(rest, "?"); q >= 0 {
		rest = rest[:q+1] + redactedText
	}
	return scheme + "://" + rest
}

// validate checks a Redis built in code (ParseRedisURL output always passes).
func (r Redis) validate() error {
	if r.Mode == "" {
		return nil // "not configured": Config.Validate decides whether that is allowed
	}
	if r.Mode != RedisSingle && r.Mode != RedisSentinel && r.Mode != RedisCluster {
		return fmt.Errorf("unknown mode %q", r.Mode)
	}
	if len(r.Addrs) == 0 {
		return errors.New("no host")
	}
	if r.Mode == RedisSingle && len(r.Addrs) > 1 {
		return errors.New("several hosts need sentinel or cluster mode")
	}
	if r.Mode == RedisSentinel && r.MasterName == "" {
		return errors.New("missing master name")
	}
	if r.DB < 0 || r.DB > maxRedisDB || (r.Mode == RedisCluster && r.DB != 0) {
		return fmt.Errorf("database %d out of range", r.DB)
	}
	return nil
}

func (r Redis) tlsConfig() *tls.Config {
	if !r.TLS {
		return nil
	}
	// ServerName stays empty: crypto/tls takes it from each dialled address, which is right for
	// every cluster node and for a master found through Sentinel.
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

// AsynqConnOpt returns the asynq connection options for r: asynq builds its client with
// UniversalClient, so asynq and sendworker's own clients speak to Redis alike (RESP2, see
// UniversalClient). It returns nil for the zero Redis (or one without hosts).
func (r Redis) AsynqConnOpt() asynq.RedisConnOpt {
	if len(r.Addrs) == 0 {
		return nil
	}
	return asynqConnOpt{r}
}

// asynqConnOpt is an asynq.RedisConnOpt that builds the client UniversalClient builds.
type asynqConnOpt struct{ r Redis }

func (o asynqConnOpt) MakeRedisClient() interface{} { return o.r.UniversalClient() }

// resp2 is the protocol of every client: sendworker uses no RESP3 feature (push messages,
// client-side caching), and with RESP3 go-redis checks the connection for pending push
// messages before every command (a read system call per command).
const resp2 = 2

// UniversalClient returns a new go-redis client for r (redis.NewClient, NewFailoverClient or
// NewClusterClient); the caller closes it. It returns nil for the zero Redis (or one without hosts).
func (r Redis) UniversalClient() redis.UniversalClient {
	if len(r.Addrs) == 0 {
		return nil
	}
	switch r.Mode {
	case RedisSingle:
		return redis.NewClient(&redis.Options{
			Protocol:  resp2,
			Addr:      r.Addrs[0],
			Username:  r.Username,
			Password:  r.Password.Reveal(),
			DB:        r.DB,
			TLSConfig: r.tlsConfig(),
		})
	case RedisSentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			Protocol:         resp2,
			MasterName:       r.MasterName,
			SentinelAddrs:    r.Addrs,
			SentinelPassword: r.SentinelPassword.Reveal(),
			Username:         r.Username,
			Password:         r.Password.Reveal(),
			DB:               r.DB,
			TLSConfig:        r.tlsConfig(),
		})
	case RedisCluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Protocol:  resp2,
			Addrs:     r.Addrs,
			Username:  r.Username,
			Password:  r.Password.Reveal(),
			TLSConfig: r.tlsConfig(),
		})
	}
	return nil
}
