package config

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redisproc"
)

func TestParseRedisURL(t *testing.T) {
	tests := []struct {
		in   string
		want Redis
	}{
		{"redis://127.0.0.1:6379/0", Redis{Mode: RedisSingle, Addrs: []string{"127.0.0.1:6379"}}},
		{"redis://cache", Redis{Mode: RedisSingle, Addrs: []string{"cache:6379"}}},
		{"redis://cache/", Redis{Mode: RedisSingle, Addrs: []string{"cache:6379"}}},
		{"REDIS://cache:7000/15", Redis{Mode: RedisSingle, Addrs: []string{"cache:7000"}, DB: 15}},
		{"redis://app:p%40ss%3Aw0rd@cache:6379/2", Redis{Mode: RedisSingle, Addrs: []string{"cache:6379"},
			Username: "app", Password: "p@ss:w0rd", DB: 2}},
		{"redis://:pw@cache", Redis{Mode: RedisSingle, Addrs: []string{"cache:6379"}, Password: "pw"}},
		{"redis://app@cache", Redis{Mode: RedisSingle, Addrs: []string{"cache:6379"}, Username: "app"}},
		{"redis://[::1]:6380/1", Redis{Mode: RedisSingle, Addrs: []string{"[::1]:6380"}, DB: 1}},
		{"redis://[::1]", Redis{Mode: RedisSingle, Addrs: []string{"[::1]:6379"}}},
		{"rediss://:pw@cache.example.com:6380/1", Redis{Mode: RedisSingle, Addrs: []string{"cache.example.com:6380"},
			Password: "pw", DB: 1, TLS: true}},
		{"redis-sentinel://s1:26379,s2,[::1]:26380/mymaster", Redis{Mode: RedisSentinel,
			Addrs: []string{"s1:26379", "s2:26379", "[::1]:26380"}, MasterName: "mymaster"}},
		{"redis-sentinel://:pw@s1/my-master.1?db=3&sentinel_password=s%26p", Redis{Mode: RedisSentinel,
			Addrs: []string{"s1:26379"}, MasterName: "my-master.1", Password: "pw", SentinelPassword: "s&p", DB: 3}},
		{"rediss-sentinel://s1/m", Redis{Mode: RedisSentinel, Addrs: []string{"s1:26379"}, MasterName: "m", TLS: true}},
		{"redis-cluster://:pw@n1:7000,n2:7001", Redis{Mode: RedisCluster, Addrs: []string{"n1:7000", "n2:7001"}, Password: "pw"}},
		{"redis-cluster://n1", Redis{Mode: RedisCluster, Addrs: []string{"n1:6379"}}},
		{"rediss-cluster://n1:7000/", Redis{Mode: RedisCluster, Addrs: []string{"n1:7000"}, TLS: true}},
	}
	for _, tt := range tests {
		got, err := ParseRedisURL(tt.in)
		if err != nil {
			t.Errorf("ParseRedisURL(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRedisURL(%q) =\n%#v, want\n%#v", tt.in, got, tt.want)
		}
		again, err := ParseRedisURL(got.url(true))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("round trip of %q via %q: %#v, %v", tt.in, got.url(true), again, err)
		}
	}
}

func TestParseRedisURLErrors(t *testing.T) {
	tests := []struct{ in, problem string }{
		{"", "not a Redis URL"},
		{"127.0.0.1:6379", "not a Redis URL"},
		{"http://cache", `unsupported scheme "http"`},
		{"unix:///tmp/redis.sock", `unsupported scheme "unix"`},
		{"redis://", "host is empty"},
		{"redis://:pw@", "host is empty"},
		{"redis://:6379", "host 1: host is empty"},
		{"redis-cluster://n1,,n2", "host 2: host is empty"},
		{"redis://cache:0", "port must be a number from 1 to 65535"},
		{"redis://cache:65536", "port must be a number from 1 to 65535"},
		{"redis://cache:abc", "port must be a number"},
		{"redis://ca che", "host name may only contain"},
		{"redis://::1", "IPv6 addresses must be in brackets"},
		{"redis://[::1", "missing ']'"},
		{"redis://[1.2.3.4]", "not a valid IPv6 address"},
		{"redis://[::1]x", "unexpected text after ']'"},
		{"redis://cache/16", "database must be a number from 0 to 15"},
		{"redis://cache/-1", "database must be a number from 0 to 15"},
		{"redis://cache/one", "database must be a number"},
		{"redis://a,b", "several hosts need redis-sentinel:// or redis-cluster://"},
		{"redis://cache?db=1", "unknown query parameter"},
		{"redis://cache#frag", "must not contain '#'"},
		{"redis://:p%zz@cache", "invalid percent-encoding in the password"},
		{"redis://u%zz:p@cache", "invalid percent-encoding in the user name"},
		{"redis-sentinel://s1:26379,s2:26379", "missing master name"},
		{"redis-sentinel://s1:26379/", "missing master name"},
		{"redis-sentinel://s1/a/b", "master name may only contain"},
		{"redis-sentinel://s1/m?db=99", "database must be a number from 0 to 15"},
		{"redis-sentinel://s1/m?db=1&db=2", "query parameter db given more than once"},
		{"redis-sentinel://s1/m?password=x", "unknown query parameter"},
		{"redis-sentinel://s1/m?a;b", "invalid query string"},
		{"redis-cluster://n1:7000/0", "Redis Cluster has no databases"},
		{"redis-cluster://n1:7000?db=1", "unknown query parameter"},
	}
	for _, tt := range tests {
		_, err := ParseRedisURL(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.problem) {
			t.Errorf("ParseRedisURL(%q) error = %v, want ...%s...", tt.in, err, tt.problem)
		}
	}
}

func TestRedisString(t *testing.T) {
	r, err := ParseRedisURL("rediss://app:secret-pw@cache:6380/4")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.String(), "rediss://app:<secret>@cache:6380/4"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (Redis{}).String(); got != "" {
		t.Errorf("zero Redis prints %q", got)
	}
}

func TestRedisClientOptions(t *testing.T) {
	mustParse := func(s string) Redis {
		t.Helper()
		r, err := ParseRedisURL(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	single := mustParse("rediss://app:pw@cache:6380/4")
	sentinel := mustParse("redis-sentinel://:pw@s1,s2:26380/mymaster?db=2&sentinel_password=sp")
	cluster := mustParse("rediss-cluster://u:pw@n1:7000,n2:7001")

	// Every client speaks RESP2 (no push-message check before each command).
	sopt := single.UniversalClient().(*redis.Client).Options()
	if sopt.Protocol != 2 || sopt.Addr != "cache:6380" || sopt.Username != "app" || sopt.Password != "pw" || sopt.DB != 4 || sopt.TLSConfig == nil {
		t.Errorf("single options = %#v", sopt)
	}
	copt := cluster.UniversalClient().(*redis.ClusterClient).Options()
	if copt.Protocol != 2 || !reflect.DeepEqual(copt.Addrs, []string{"n1:7000", "n2:7001"}) || copt.Username != "u" || copt.Password != "pw" || copt.TLSConfig == nil {
		t.Errorf("cluster options = %#v", copt)
	}
	// asynq's client is built the same way.
	aopt := single.AsynqConnOpt().MakeRedisClient().(*redis.Client).Options()
	if aopt.Protocol != 2 || aopt.Addr != sopt.Addr || aopt.DB != sopt.DB || aopt.Password != sopt.Password {
		t.Errorf("asynq client options = %#v", aopt)
	}

	// go-redis clients of the matching kind; constructing them does not connect.
	for _, tt := range []struct {
		r    Redis
		want any
	}{
		{single, &redis.Client{}},
		{sentinel, &redis.Client{}}, // NewFailoverClient returns a *redis.Client
		{cluster, &redis.ClusterClient{}},
	} {
		c := tt.r.UniversalClient()
		if reflect.TypeOf(c) != reflect.TypeOf(tt.want) {
			t.Errorf("%s: UniversalClient is %T", tt.r.Mode, c)
		}
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		// asynq builds the same kind of client from its options.
		ac, ok := tt.r.AsynqConnOpt().MakeRedisClient().(redis.UniversalClient)
		if !ok || reflect.TypeOf(ac) != reflect.TypeOf(tt.want) {
			t.Errorf("%s: asynq MakeRedisClient is %T", tt.r.Mode, ac)
		} else {
			_ = ac.Close()
		}
	}
	if got := sentinel.UniversalClient().(*redis.Client).Options(); got.DB != 2 || got.Password != "pw" || got.Protocol != 2 {
		t.Errorf("failover client options: DB %d", got.DB)
	}
}

// startRedis runs a throwaway redis-server with extra arguments and returns its address.
func startRedis(t *testing.T, extra ...string) string {
	t.Helper()
	p, err := redisproc.Start(context.Background(), redisproc.Options{Dir: t.TempDir(), Args: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	return p.Addr()
}

// startSentinel runs a Sentinel that monitors the master at masterAddr as "mymaster".
func startSentinel(t *testing.T, masterAddr, masterPassword, sentinelPassword string) string {
	t.Helper()
	s, err := redisproc.StartSentinel(context.Background(), t.TempDir(), "mymaster", masterAddr,
		redisproc.SentinelAuth{MasterPassword: masterPassword, SentinelPassword: sentinelPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s.Addr()
}

// ping checks both clients built from r: go-redis directly and asynq's.
func ping(t *testing.T, r Redis) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := r.UniversalClient()
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Errorf("UniversalClient PING: %v", err)
	}
	ac := r.AsynqConnOpt().MakeRedisClient().(redis.UniversalClient)
	defer ac.Close()
	if err := ac.Ping(ctx).Err(); err != nil {
		t.Errorf("asynq client PING: %v", err)
	}
}

func TestRedisSinglePing(t *testing.T) {
	addr := startRedis(t, "--requirepass", "p@ss word")
	r, err := ParseRedisURL("redis://:p%40ss%20word@" + addr + "/3")
	if err != nil {
		t.Fatal(err)
	}
	ping(t, r)

	// The database number reaches the server: a key written through r is in db 3.
	ctx := context.Background()
	c := r.UniversalClient()
	defer c.Close()
	if err := c.Set(ctx, "config-test", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	db3 := redis.NewClient(&redis.Options{Addr: addr, Password: "p@ss word", DB: 3})
	defer db3.Close()
	if v, err := db3.Get(ctx, "config-test").Result(); err != nil || v != "x" {
		t.Errorf("key not in db 3: %q, %v", v, err)
	}

	wrong, _ := ParseRedisURL("redis://:nope@" + addr)
	wc := wrong.UniversalClient()
	defer wc.Close()
	if err := wc.Ping(ctx).Err(); err == nil {
		t.Error("PING with a wrong password succeeded")
	}
}

func TestRedisSentinelPing(t *testing.T) {
	master := startRedis(t, "--requirepass", "master-pw")
	sentinel := startSentinel(t, master, "master-pw", "sentinel-pw")
	r, err := ParseRedisURL("redis-sentinel://:master-pw@" + sentinel + "/mymaster?sentinel_password=sentinel-pw")
	if err != nil {
		t.Fatal(err)
	}
	ping(t, r)
}
