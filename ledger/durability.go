package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Durability is what the Redis master holding the ledger says about how a
// write survives a crash: its AOF settings (CONFIG GET) and its connected
// replicas.
type Durability struct {
	AppendOnly  string // "yes" / "no"; "" when CONFIG GET was refused
	AppendFsync string // "always" / "everysec" / "no"; "" when CONFIG GET was refused
	Replicas    int    // connected replicas; -1 when INFO failed
	ConfigErr   error  // why CONFIG GET could not be read (managed Redis often disables it)
}

// Durability reads the durability settings of the master that holds the
// ledger's keys.
func (l *Ledger) Durability(ctx context.Context) Durability {
	d := Durability{Replicas: -1}
	if n, err := l.ConnectedReplicas(ctx); err == nil {
		d.Replicas = n
	}
	node, err := l.nodeOf(ctx, l.keys.Outbox())
	if err != nil {
		d.ConfigErr = err
		return d
	}
	for _, name := range []string{"appendonly", "appendfsync"} {
		v, err := node.ConfigGet(ctx, name).Result()
		if err != nil {
			d.ConfigErr = fmt.Errorf("CONFIG GET %s: %w", name, err)
			return d
		}
		if name == "appendonly" {
			d.AppendOnly = strings.ToLower(v[name])
		} else {
			d.AppendFsync = strings.ToLower(v[name])
		}
	}
	return d
}

// Warning is "" when an attempt's start (and an approval) survives the loss
// of the Redis master process or host once acknowledged: AOF with
// appendfsync always (each write on disk before its answer), or waitReplicas
// (SENDWORKER_WAIT_REPLICAS) replicas that are connected. Otherwise it says,
// in one sentence, why a crash could lose a "sending" mark after its call
// went out (the send would then go out again) and what to change.
func (d Durability) Warning(waitReplicas int) string {
	fsynced := d.AppendOnly == "yes" && d.AppendFsync == "always"
	replicated := waitReplicas > 0 && d.Replicas >= waitReplicas
	switch {
	case fsynced || replicated:
		return ""
	case d.ConfigErr != nil && waitReplicas == 0:
		return fmt.Sprintf("cannot read the Redis persistence settings (%v) and SENDWORKER_WAIT_REPLICAS is 0: "+
			"unless Redis runs with appendonly yes and appendfsync always, a Redis crash can lose the start of an attempt whose "+
			"message went out, and the send goes out again", d.ConfigErr)
	case waitReplicas > 0:
		return fmt.Sprintf("SENDWORKER_WAIT_REPLICAS is %d but the Redis master has %d connected replicas, and its AOF is not "+
			"appendonly yes with appendfsync always (appendonly %q, appendfsync %q): no send goes out until the replicas connect",
			waitReplicas, d.Replicas, d.AppendOnly, d.AppendFsync)
	}
	return fmt.Sprintf("Redis persistence is appendonly %q, appendfsync %q and SENDWORKER_WAIT_REPLICAS is 0: a Redis crash can "+
		"lose the last second of writes, among them the start of an attempt whose message went out, and the send goes out again; "+
		"set appendfsync always (deploy/redis/redis.conf), or run replicas with SENDWORKER_WAIT_REPLICAS",
		d.AppendOnly, d.AppendFsync)
}

// ClockSkew is how far the ledger's clock (Options.Now, this replica's) is
// ahead of the clock of the Redis master holding the ledger (negative:
// behind), measured with TIME and corrected by half the round trip. Leases,
// attempt starts and reconciliation run on Redis's clock; the other times of
// the ledger (outbox, deadlines, history) and the rate limiter run on the
// replica's, so a skew shifts them (see the README, "Clocks").
func (l *Ledger) ClockSkew(ctx context.Context) (time.Duration, error) {
	node, err := l.nodeOf(ctx, l.keys.Outbox())
	if err != nil {
		return 0, fmt.Errorf("ledger: clock skew: %w", err)
	}
	before := time.Now()
	server, err := node.Time(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("ledger: clock skew: %w", err)
	}
	rtt := time.Since(before)
	return l.opts.Now().Add(-rtt / 2).Sub(server), nil
}
