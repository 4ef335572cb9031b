// Package wire holds the JSON bodies of the admin API that its clients decode too (sendctl),
// so that a client shares them without importing the server.
package wire

import (
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// Forecast is the answer of GET /v1/accounts/{account_id}/forecast.
type Forecast struct {
	AccountID string       `json:"account_id"`
	At        time.Time    `json:"at"` // the server's now; every relative time is from it
	Paused    Paused       `json:"paused"`
	Rate      RateForecast `json:"rate"`
	// Counts are the account's sends in approved, waiting and sending.
	Counts map[tasks.State]int `json:"counts"`
	// CountsCapped names the states whose count stopped at the server's cap (1000).
	CountsCapped []tasks.State `json:"counts_capped"`
	// Waiting is one page of the account's waiting sends, sorted by until.
	Waiting    []WaitingSend `json:"waiting"`
	NextCursor string        `json:"next_cursor"`
	// Undecided are the account's sends in sending whose outcome is unknown and not yet
	// decided (up to the server's cap): reason unknown_outcome, until their next check,
	// detail why. They are never resent before it.
	Undecided []WaitingSend `json:"undecided"`
}

// Paused says whether a pause holds the account: the global one, its own.
type Paused struct {
	Global  bool `json:"global"`
	Account bool `json:"account"`
}

// RateForecast is ratelimit.Forecast on the wire: times in UTC, durations as
// Go duration strings ("10s"), null for a time that does not apply.
type RateForecast struct {
	Limits Limits `json:"limits"`
	// DailyCap is the daily cap in force now (warm-up or limits), 0 = none.
	DailyCap               int        `json:"daily_cap"`
	NextSlot               time.Time  `json:"next_slot"`
	NextSlotBinding        string     `json:"next_slot_binding"`
	NextNewChatSlot        time.Time  `json:"next_new_chat_slot"`
	NextNewChatSlotBinding string     `json:"next_new_chat_slot_binding"`
	LastSlot               *time.Time `json:"last_slot"`
	SlotsLastHour          int        `json:"slots_last_hour"`
	SlotsLastDay           int        `json:"slots_last_day"`
	NewChatsLastHour       int        `json:"new_chats_last_hour"`
	NewChatsLastDay        int        `json:"new_chats_last_day"`
	Queued                 int        `json:"queued"`
	NewChatsQueued         int        `json:"new_chats_queued"`
	PenaltyUntil           *time.Time `json:"penalty_until"`
}

// Limits are an account's sending limits (config.Limits), durations as Go duration strings.
type Limits struct {
	MinInterval       string `json:"min_interval"`
	Jitter            string `json:"jitter"`
	HourlyCap         int    `json:"hourly_cap"`
	DailyCap          int    `json:"daily_cap"`
	NewChatsHourlyCap int    `json:"new_chats_hourly_cap"`
	NewChatsDailyCap  int    `json:"new_chats_daily_cap"`
	RecipientCooldown string `json:"recipient_cooldown"`
	WarmupStart       int    `json:"warmup_start"`
	WarmupStep        int    `json:"warmup_step"`
}

// WaitingSend says why one send waits and until when. Until is null for a
// send held by a pause: it waits until resume.
type WaitingSend struct {
	SendID    string          `json:"send_id"`
	Operation tasks.Operation `json:"operation"`
	Reason    tasks.Reason    `json:"reason"`
	Until     *time.Time      `json:"until"`
	Detail    string          `json:"detail"`
}
