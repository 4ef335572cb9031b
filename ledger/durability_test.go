package ledger

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redisproc"
)

// TestDurability reads the settings of a real Redis, and Warning says when they cannot hold
// an attempt's start through a crash.
func TestDurability(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		args  []string
		aof   bool
		warns bool
	}{
		{"no AOF", nil, false, true},
		{"AOF everysec", []string{"--appendfsync", "everysec"}, true, true},
		{"AOF always", []string{"--appendfsync", "always"}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := redisproc.Start(context.Background(), redisproc.Options{Dir: t.TempDir(), AppendOnly: tc.aof, Args: tc.args})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Kill() })
			rdb := redis.NewClient(&redis.Options{Addr: p.Addr()})
			t.Cleanup(func() { _ = rdb.Close() })
			d := New(rdb, Options{}).Durability(context.Background())
			if d.ConfigErr != nil || d.Replicas != 0 {
				t.Fatalf("durability %+v", d)
			}
			if w := d.Warning(0); (w != "") != tc.warns {
				t.Fatalf("warning %q, want one: %v (%+v)", w, tc.warns, d)
			}
			// One replica asked for, none connected: always a warning unless fsync always.
			if w := d.Warning(1); (w != "") != tc.warns || (w != "" && !strings.Contains(w, "0 connected replicas")) {
				t.Fatalf("wait replicas 1: warning %q", w)
			}
		})
	}
}

func TestDurabilityWarning(t *testing.T) {
	tests := []struct {
		name  string
		d     Durability
		wait  int
		warns bool
	}{
		{"fsync always", Durability{AppendOnly: "yes", AppendFsync: "always"}, 0, false},
		{"replicas", Durability{AppendOnly: "yes", AppendFsync: "everysec", Replicas: 2}, 1, false},
		{"everysec alone", Durability{AppendOnly: "yes", AppendFsync: "everysec", Replicas: 2}, 0, true},
		{"always without AOF", Durability{AppendOnly: "no", AppendFsync: "always"}, 0, true},
		{"too few replicas", Durability{AppendOnly: "yes", AppendFsync: "everysec", Replicas: 1}, 2, true},
		{"CONFIG refused", Durability{Replicas: 0, ConfigErr: errors.New("unknown command")}, 0, true},
		{"CONFIG refused, replicas", Durability{Replicas: 1, ConfigErr: errors.New("unknown command")}, 1, false},
	}
	for _, tt := range tests {
		if w := tt.d.Warning(tt.wait); (w != "") != tt.warns {
			t.Errorf("%s: warning %q, want one: %v", tt.name, w, tt.warns)
		}
	}
}

// TestClockSkew: a ledger whose clock runs 2 minutes ahead of Redis's measures about that.
func TestClockSkew(t *testing.T) {
	t.Parallel()
	p, err := redisproc.Start(context.Background(), redisproc.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	for _, skew := range []time.Duration{0, 2 * time.Minute, -2 * time.Minute} {
		l := New(rdb, Options{Now: func() time.Time { return time.Now().Add(skew) }})
		got, err := l.ClockSkew(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if d := got - skew; d < -time.Second || d > time.Second {
			t.Errorf("skew %s measured as %s", skew, got)
		}
	}
}
