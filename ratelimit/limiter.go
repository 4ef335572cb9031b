package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/luafn"
	"github.com/sendworker/sendworker/tasks"
)

// Defaults of Options.
const (
	DefaultPrefix       = "sendworker"
	DefaultHorizon      = 30 * 24 * time.Hour
	DefaultCreatedAtTTL = time.Hour
	// MinLateGrace is the least default LateGrace: the account's MinInterval,
	// but at least this, so the normal delay of a deferred send's release
	// (outbox poll, asynq pick-up) never forfeits its slot.
	MinLateGrace = 10 * time.Second
)

// ErrInvalid reports a record the limiter cannot place: no send id or no account.
var ErrInvalid = errors.New("ratelimit: record without send id or account")

// Options configure a Limiter. Zero values take the defaults.
type Options struct {
	// Prefix starts every key, inside a hash tag: "{prefix}:rl:...". Default "sendworker".
	Prefix string
	// LimitsFor returns the limits of an account, typically (*config.Config).LimitsFor.
	// Default: config.Defaults() limits for every account.
	LimitsFor func(accountID string) config.Limits
	// GlobalRPS is the provider request rate of the whole cluster (WaitGlobal); 0 = no limit.
	GlobalRPS float64
	// GlobalBurst is how many requests may go back to back before GlobalRPS spacing applies
	// (default 1: strict spacing).
	GlobalBurst int
	// Rand returns uniform numbers in [0, 1) for the jitter; default math/rand/v2. Calls are
	// serialized by the Limiter, so a *rand.Rand's Float64 may be passed as is.
	Rand func() float64
	// AccountCreatedAt returns when an account was created (provider accounts_get created_at),
	// for the warm-up ramp; only called for accounts with WarmupStart > 0, and cached for
	// CreatedAtTTL. A zero time means unknown (no warm-up); an error means "assume new".
	AccountCreatedAt func(ctx context.Context, accountID string) (time.Time, error)
	// CreatedAtTTL caches AccountCreatedAt answers (default 1h).
	CreatedAtTTL time.Duration
	// Horizon is how far ahead a slot may be reserved (default 30 days). A send whose
	// earliest slot is later holds nothing and is told to come back at now+Horizon.
	Horizon time.Duration
	// LateGrace is how late after its slot a send may still consume it; later, the slot is
	// forfeited and the send takes a new one, so sends held up by an outage do not all go at
	// once. Default: the account's MinInterval, at least MinLateGrace. Negative: never forfeit.
	LateGrace time.Duration
	// Now is the clock of Penalize, Cancel and WaitGlobal (Reserve and Forecast take now as an
	// argument); default time.Now.
	Now func() time.Time
	// RedisClock makes Reserve and Forecast judge slots on the Redis server's clock (TIME in
	// their scripts) instead of the now they are given: a replica whose clock runs ahead or
	// behind can then neither take a slot early nor space its calls on its own time. The
	// daemon sets it; tests that simulate time leave it off.
	RedisClock bool
	// Logger; default no logs.
	Logger *zap.Logger
	// Registerer, when set, receives the limiter's metrics.
	Registerer prometheus.Registerer
}

// Limiter enforces per-account send limits and the global provider request rate. It is safe
// for concurrent use, and any number of Limiters (one per replica) may share one Redis.
type Limiter struct {
	rdb  redis.UniversalClient
	lua  *luafn.Runner // runs the scripts: FCALL, or EVALSHA where Functions are missing
	keys keys
	opts Options

	randMu sync.Mutex

	createdMu sync.Mutex
	created   map[string]createdEntry

	local *rate.Limiter // nil when GlobalRPS is 0
	sleep func(ctx context.Context, d time.Duration) error

	reserves *prometheus.CounterVec
	global   prometheus.Histogram
}

type createdEntry struct {
	at, fetched time.Time
}

// New returns a Limiter on rdb. It does no I/O.
func New(rdb redis.UniversalClient, opts Options) *Limiter {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.LimitsFor == nil {
		def := config.Defaults().Rate.Limits
		opts.LimitsFor = func(string) config.Limits { return def }
	}
	if opts.GlobalBurst < 1 {
		opts.GlobalBurst = 1
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.CreatedAtTTL <= 0 {
		opts.CreatedAtTTL = DefaultCreatedAtTTL
	}
	if opts.Horizon <= 0 {
		opts.Horizon = DefaultHorizon
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	l := &Limiter{
		rdb:     rdb,
		lua:     luafn.NewRunner(rdb),
		keys:    newKeys(opts.Prefix),
		opts:    opts,
		created: make(map[string]createdEntry),
		sleep:   sleepCtx,
	}
	if opts.GlobalRPS > 0 {
		l.local = rate.NewLimiter(rate.Limit(opts.GlobalRPS), opts.GlobalBurst)
	}
	l.initMetrics(opts.Registerer)
	return l
}

// Binding names the limit that decided a slot.
type Binding string

// Bindings. A forfeited reservation's binding is "late:<binding>" or "penalized:<binding>".
const (
	BindNone          Binding = "none"     // nothing held the send back
	BindReserved      Binding = "reserved" // the send already held this slot
	BindMinInterval   Binding = "min_interval"
	BindHourlyCap     Binding = "hourly_cap"
	BindDailyCap      Binding = "daily_cap"
	BindWarmup        Binding = "warmup" // the warm-up daily cap, below DailyCap
	BindNewChatsHour  Binding = "new_chats_hourly_cap"
	BindNewChatsDay   Binding = "new_chats_daily_cap"
	BindRecipient     Binding = "recipient_cooldown"
	BindPenalty       Binding = "penalty"
	BindBeyondHorizon Binding = "beyond_horizon" // no slot within Horizon; nothing held
)

// Slot is the answer of ReserveSlot.
type Slot struct {
	// At is the slot's time: at or before now when the send may go now.
	At time.Time
	// Go says the send may go now: it consumed its slot.
	Go bool
	// Held says the send holds a slot at At. When neither Go nor Held, the send holds nothing
	// and must ask again at At (recipient cooldown, or no slot within the horizon).
	Held bool
	// Binding is the limit that decided At.
	Binding Binding
}

// Reserve is ReserveSlot as one time: the zero time when rec may be sent now, else the
// time to defer it to: its reserved slot; or, holding nothing, the end of its recipient's
// cooldown, or now+Horizon when no slot is that close.
func (l *Limiter) Reserve(ctx context.Context, rec *tasks.Record, now time.Time) (time.Time, error) {
	s, err := l.ReserveSlot(ctx, rec, now)
	if err != nil || s.Go {
		return time.Time{}, err
	}
	return s.At, nil
}

// ReserveSlot is Reserve with the details: which limit decided the slot and whether the send
// holds it. One script call, atomic across replicas.
func (l *Limiter) ReserveSlot(ctx context.Context, rec *tasks.Record, now time.Time) (Slot, error) {
	if rec == nil || rec.SendID == "" || rec.Request.AccountID == "" {
		return Slot{}, ErrInvalid
	}
	acct := rec.Request.AccountID
	lim := sanitize(l.opts.LimitsFor(acct))
	isNew := rec.Request.Operation == tasks.OpCreateChat

	ks := []string{l.keys.slots(acct), l.keys.newChats(acct), l.keys.account(acct), l.keys.reservation(rec.SendID),
		l.keys.used(rec.SendID)}
	if lim.RecipientCooldown > 0 {
		ks = append(ks, l.recipientKeys(rec)...)
	}
	grace := l.opts.LateGrace
	if grace == 0 {
		grace = max(lim.MinInterval, MinLateGrace)
	}
	graceMs := int64(-1)
	if grace > 0 {
		graceMs = grace.Milliseconds()
	}
	args := append(l.limitArgs(ctx, acct, lim, now),
		l.jitter(lim.Jitter).Milliseconds(), boolArg(isNew), l.opts.Horizon.Milliseconds(), graceMs,
		rec.SendID, acct, UsedTTL.Milliseconds())

	v, err := l.lua.Run(ctx, reserveScript, ks, args...).Slice()
	if err != nil {
		return Slot{}, fmt.Errorf("ratelimit: reserve %s: %w", rec.SendID, err)
	}
	code, at, why, err := parseReply(v)
	if err != nil {
		return Slot{}, fmt.Errorf("ratelimit: reserve %s: %w", rec.SendID, err)
	}
	s := Slot{At: time.UnixMilli(at).In(now.Location()), Binding: Binding(why)}
	switch code {
	case 0:
		s.Go = true
		l.count("go")
	case 1:
		s.Held = true
		if s.Binding == BindReserved {
			l.count("held")
		} else {
			l.count("deferred")
		}
	case 2:
		if s.Binding == BindRecipient {
			l.count("recipient_cooldown")
		} else {
			s.Binding = BindBeyondHorizon
			l.count("beyond_horizon")
		}
	default:
		return Slot{}, fmt.Errorf("ratelimit: reserve %s: unknown reply code %d", rec.SendID, code)
	}
	if !s.Go {
		l.opts.Logger.Debug("send deferred by rate limit", zap.String("send_id", rec.SendID),
			zap.String("account_id", acct), zap.Time("until", s.At), zap.String("binding", why))
	}
	return s, nil
}

// Penalize forbids any slot of accountID before until (a provider 429, or signs of pressure).
// Reservations already taken before until are forfeited when their send comes back (or asks
// again) and get a new slot after until. A later until wins; an earlier one changes nothing.
func (l *Limiter) Penalize(ctx context.Context, accountID string, until time.Time) error {
	if accountID == "" {
		return ErrInvalid
	}
	err := l.lua.Run(ctx, penalizeScript, []string{l.keys.account(accountID)},
		l.opts.Now().UnixMilli(), until.UnixMilli()).Err()
	if err != nil {
		return fmt.Errorf("ratelimit: penalize %s: %w", accountID, err)
	}
	l.count("penalize")
	return nil
}

// Cancel frees the slot held by rec if it is still in the future (a send canceled, expired
// or skipped while waiting for it), so the next send of the account may take it. It reports
// whether a slot was freed. Without Cancel the slot stays as a gap, which is safe.
func (l *Limiter) Cancel(ctx context.Context, rec *tasks.Record) (bool, error) {
	if rec == nil || rec.SendID == "" || rec.Request.AccountID == "" {
		return false, ErrInvalid
	}
	acct := rec.Request.AccountID
	ks := append([]string{l.keys.reservation(rec.SendID), l.keys.slots(acct), l.keys.newChats(acct),
		l.keys.account(acct)}, l.recipientKeys(rec)...)
	n, err := l.lua.Run(ctx, cancelScript, ks, l.opts.Now().UnixMilli(), rec.SendID, acct).Int()
	if err != nil {
		return false, fmt.Errorf("ratelimit: cancel %s: %w", rec.SendID, err)
	}
	return n == 1, nil
}

// UsedTTL is how long after a send consumed its slot Refund can still give it back: longer
// than the guards of one execution take, short enough that the key does not linger.
const UsedTTL = 15 * time.Minute

// Refund gives back the slot rec took when a guard refused the send after its reservation and
// before any sending call (contact_replied, not_own_message, a failed read...): the slot it
// holds, past or future, or the one it consumed last (within UsedTTL), so that a send that
// never went out does not count against the account's caps. It reports whether a slot was
// given back; a second Refund gives back nothing. Only the worker may call it, and only when
// no provider call that may deliver was made with the slot: Cancel is for everything else.
func (l *Limiter) Refund(ctx context.Context, rec *tasks.Record) (bool, error) {
	if rec == nil || rec.SendID == "" || rec.Request.AccountID == "" {
		return false, ErrInvalid
	}
	acct := rec.Request.AccountID
	ks := append([]string{l.keys.reservation(rec.SendID), l.keys.used(rec.SendID), l.keys.slots(acct),
		l.keys.newChats(acct), l.keys.account(acct)}, l.recipientKeys(rec)...)
	n, err := l.lua.Run(ctx, refundScript, ks, rec.SendID, acct).Int()
	if err != nil {
		return false, fmt.Errorf("ratelimit: refund %s: %w", rec.SendID, err)
	}
	if n == 1 {
		l.count("refund")
	}
	return n == 1, nil
}

// Forecast is an account's rate-limit state, for the admin API's "why does it wait, until
// when". Counts are of slots (sends that went or will go at that time).
type Forecast struct {
	AccountID string
	At        time.Time     // the now it was computed for
	Limits    config.Limits // the limits in force
	// DailyCap is the daily cap in force now: Limits.DailyCap, or the warm-up cap (0 = none).
	DailyCap int
	// NextSlot is the slot a new send (not chats_create) would get now, without jitter.
	NextSlot        time.Time
	NextSlotBinding Binding
	// NextNewChatSlot is the same for a chats_create.
	NextNewChatSlot        time.Time
	NextNewChatSlotBinding Binding
	// LastSlot is the account's latest slot (zero if none in the last day or queued).
	LastSlot time.Time
	// SlotsLastHour and SlotsLastDay count slots in (now-1h, now] and (now-24h, now].
	SlotsLastHour, SlotsLastDay int
	// NewChatsLastHour and NewChatsLastDay count chats_create slots the same way.
	NewChatsLastHour, NewChatsLastDay int
	// Queued is the number of slots reserved after now (NewChatsQueued: of chats_create).
	Queued, NewChatsQueued int
	// PenaltyUntil is the Penalize time in force (zero if none or past).
	PenaltyUntil time.Time
}

// Forecast reads accountID's state as of now. It changes nothing.
func (l *Limiter) Forecast(ctx context.Context, accountID string, now time.Time) (Forecast, error) {
	if accountID == "" {
		return Forecast{}, ErrInvalid
	}
	lim := sanitize(l.opts.LimitsFor(accountID))
	ks := []string{l.keys.slots(accountID), l.keys.newChats(accountID), l.keys.account(accountID)}
	v, err := l.lua.Run(ctx, forecastScript, ks, l.limitArgs(ctx, accountID, lim, now)...).Slice()
	if err != nil {
		return Forecast{}, fmt.Errorf("ratelimit: forecast %s: %w", accountID, err)
	}
	if len(v) != 13 {
		return Forecast{}, fmt.Errorf("ratelimit: forecast %s: reply of %d items", accountID, len(v))
	}
	// Times in now's location, so callers compare and print them like now.
	ms := func(x int64) time.Time { return time.UnixMilli(x).In(now.Location()) }
	n := make([]int64, len(v))
	for i, x := range v {
		if i == 1 || i == 3 {
			continue
		}
		if n[i], err = toInt(x); err != nil {
			return Forecast{}, fmt.Errorf("ratelimit: forecast %s: item %d: %w", accountID, i, err)
		}
	}
	f := Forecast{
		AccountID: accountID, At: now, Limits: lim, DailyCap: int(n[12]),
		NextSlot: ms(n[0]), NextSlotBinding: Binding(fmt.Sprint(v[1])),
		NextNewChatSlot: ms(n[2]), NextNewChatSlotBinding: Binding(fmt.Sprint(v[3])),
		SlotsLastHour: int(n[5]), SlotsLastDay: int(n[6]),
		NewChatsLastHour: int(n[7]), NewChatsLastDay: int(n[8]),
		Queued: int(n[9]), NewChatsQueued: int(n[10]),
	}
	if n[4] >= 0 {
		f.LastSlot = ms(n[4])
	}
	if n[11] > now.UnixMilli() {
		f.PenaltyUntil = ms(n[11])
	}
	return f, nil
}

// limitArgs are ARGV[1..10] of the per-account scripts.
func (l *Limiter) limitArgs(ctx context.Context, acct string, lim config.Limits, now time.Time) []any {
	return []any{
		lim.MinInterval.Milliseconds(), lim.HourlyCap, lim.DailyCap,
		lim.NewChatsHourlyCap, lim.NewChatsDailyCap, lim.RecipientCooldown.Milliseconds(),
		lim.WarmupStart, lim.WarmupStep, l.createdMs(ctx, acct, lim, now), l.nowArg(now),
	}
}

// nowArg is ARGV[10]: now in Unix ms, or -1 for the scripts to read Redis's TIME (RedisClock).
func (l *Limiter) nowArg(now time.Time) int64 {
	if l.opts.RedisClock {
		return -1
	}
	return now.UnixMilli()
}

// createdMs is the account's creation time for the warm-up (Unix ms), or -1 when there is no
// warm-up or the time is unknown.
func (l *Limiter) createdMs(ctx context.Context, acct string, lim config.Limits, now time.Time) int64 {
	if lim.WarmupStart <= 0 || l.opts.AccountCreatedAt == nil {
		return -1
	}
	wall := l.opts.Now()
	l.createdMu.Lock()
	e, ok := l.created[acct]
	l.createdMu.Unlock()
	if !ok || wall.Sub(e.fetched) > l.opts.CreatedAtTTL {
		at, err := l.opts.AccountCreatedAt(ctx, acct)
		if err != nil {
			// Not cached: the next send asks again. Meanwhile the tightest cap.
			l.opts.Logger.Warn("account creation time unknown; warm-up as a new account",
				zap.String("account_id", acct), zap.Error(err))
			return now.UnixMilli()
		}
		e = createdEntry{at: at, fetched: wall}
		l.createdMu.Lock()
		l.created[acct] = e
		l.createdMu.Unlock()
	}
	if e.at.IsZero() {
		return -1
	}
	return e.at.UnixMilli()
}

// recipientKeys are the cooldown keys of rec: its chat, or its attendees.
func (l *Limiter) recipientKeys(rec *tasks.Record) []string {
	acct := rec.Request.AccountID
	var ks []string
	if rec.Request.ChatID != "" {
		ks = append(ks, l.keys.recipient(acct, "c", rec.Request.ChatID))
	}
	for _, a := range rec.Request.AttendeeIDs {
		if a != "" {
			ks = append(ks, l.keys.recipient(acct, "a", a))
		}
	}
	return ks
}

// jitter draws uniformly in [0, max].
func (l *Limiter) jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	l.randMu.Lock()
	f := l.opts.Rand()
	l.randMu.Unlock()
	return time.Duration(f * float64(max+time.Millisecond)).Truncate(time.Millisecond)
}

// sanitize makes negative limits mean "none".
func sanitize(l config.Limits) config.Limits {
	for _, d := range []*time.Duration{&l.MinInterval, &l.Jitter, &l.RecipientCooldown} {
		*d = max(*d, 0)
	}
	for _, n := range []*int{&l.HourlyCap, &l.DailyCap, &l.NewChatsHourlyCap, &l.NewChatsDailyCap, &l.WarmupStart, &l.WarmupStep} {
		*n = max(*n, 0)
	}
	return l
}

func boolArg(b bool) int {
	if b {
		return 1
	}
	return 0
}

func parseReply(v []any) (code, at int64, why string, err error) {
	if len(v) != 3 {
		return 0, 0, "", fmt.Errorf("reply of %d items", len(v))
	}
	if code, err = toInt(v[0]); err != nil {
		return 0, 0, "", err
	}
	if at, err = toInt(v[1]); err != nil {
		return 0, 0, "", err
	}
	why, _ = v[2].(string)
	return code, at, why, nil
}

func toInt(x any) (int64, error) {
	switch n := x.(type) {
	case int64:
		return n, nil
	case string:
		return strconv.ParseInt(n, 10, 64)
	}
	return 0, fmt.Errorf("unexpected %T in reply", x)
}
