package callgrind

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redisproc"
)

func TestParseSummary(t *testing.T) {
	cases := []struct {
		name, in string
		want     int64
		bad      bool
	}{
		{"summary", "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 499549243\ntotals: 499727746\n", 499549243, false},
		{"totals only", "events: Ir\ntotals: 1234\n", 1234, false},
		{"summary after totals wins", "totals: 5\nsummary: 7\n", 7, false},
		{"several events", "events: Ir Dr\nsummary: 42 17\n", 42, false},
		{"none", "events: Ir\nfn=main\n", 0, true},
		{"empty line", "summary:\n", 0, true},
		{"not a number", "summary: lots\n", 0, true},
		{"negative", "summary: -3\n", 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseSummary(strings.NewReader(c.in))
			if c.bad {
				if err == nil {
					t.Fatalf("got %d, want an error", got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %d, %v; want %d", got, err, c.want)
			}
		})
	}
}

func FuzzParseSummary(f *testing.F) {
	f.Add("summary: 1\n")
	f.Add("totals: 99 3\n")
	f.Add("events: Ir\n")
	f.Fuzz(func(t *testing.T, in string) {
		n, err := parseSummary(strings.NewReader(in))
		if err == nil && n < 0 {
			t.Fatalf("negative count %d from %q", n, in)
		}
	})
}

// TestCountsAreRepeatableAndProportional runs a redis-server under
// callgrind: the same commands count the same instructions twice over, and
// twice the commands about twice as many. This is what makes the count
// usable on a noisy machine.
func TestCountsAreRepeatableAndProportional(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	proc, err := redisproc.Start(ctx, redisproc.Options{Dir: dir, Wrapper: Wrapper(dir)})
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Kill()
	rdb := redis.NewClient(&redis.Options{Addr: proc.Addr()})
	defer rdb.Close()
	c := Counter{PID: proc.PID(), Dir: dir}
	count := func(label string, n int) int64 {
		t.Helper()
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.Zero(ctx); err != nil {
			t.Fatal(err)
		}
		// Pipelined, so that the commands take milliseconds: the server's timer
		// (serverCron, ten times a second) also runs while the count is on, and
		// on a loaded machine a slow run would count more of its ticks.
		for done := 0; done < n; done += 100 {
			pipe := rdb.Pipeline()
			for i := done; i < min(n, done+100); i++ {
				pipe.Set(ctx, "k"+strconv.Itoa(i%50), "v", 0)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		got, err := c.Dump(ctx, label)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	a, b, double := count("a", 2000), count("b", 2000), count("double", 4000)
	if a <= 0 {
		t.Fatalf("count %d", a)
	}
	// The count also holds the few timer ticks of the run: allow a few percent.
	if d := math.Abs(float64(a-b)) / float64(a); d > 0.05 {
		t.Fatalf("the same commands counted %d then %d instructions (%.1f%% apart)", a, b, 100*d)
	}
	if r := float64(double) / float64(a); r < 1.7 || r > 2.3 {
		t.Fatalf("twice the commands counted %.2f× the instructions (%d vs %d)", r, double, a)
	}
	t.Logf("2000 SETs: %d, %d instructions; 4000: %d", a, b, double)
}
