package wasim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Account statuses, as the provider reports them in sources[].status.
const (
	statusOK          = "OK"
	statusConnected   = "CONNECTED"
	statusCredentials = "CREDENTIALS"
	statusError       = "ERROR"
	statusStopped     = "STOPPED"
	statusPermissions = "PERMISSIONS"
	statusConnecting  = "CONNECTING"
)

func validStatus(s string) bool {
	switch s {
	case statusOK, statusConnected, statusCredentials, statusError, statusStopped, statusPermissions, statusConnecting:
		return true
	}
	return false
}

// healthy is the provider's own rule: only OK and CONNECTED accounts can send.
func healthy(status string) bool {
	return status == statusOK || status == statusConnected
}

// Chat types.
const (
	chatSingle  = 0
	chatGroup   = 1
	chatChannel = 2
)

// Limits the simulator enforces. The provider documents none of the first three; they are our
// choice (see the package doc).
const (
	maxTextChars    = 10000            // longer text: 400 errors/too_many_characters
	maxReactionLen  = 32               // bytes; a reaction is one emoji, possibly with modifiers
	editWindow      = 15 * time.Minute // WhatsApp's edit window
	deleteWindow    = 60 * time.Hour   // WhatsApp's delete-for-everyone window
	defaultTokenTTL = time.Hour
)

// Options configures a Sim. The zero value is a usable, empty, unauthenticated simulator.
type Options struct {
	APIKey        string            // accepted in header X-API-KEY; "" disables API-key auth
	OAuthClients  map[string]string // client_id -> client_secret for grant_type=client_credentials
	RefreshTokens []string          // refresh tokens accepted for grant_type=refresh_token
	TokenTTL      time.Duration     // lifetime of issued access tokens; 0 means 1h
	Seed          *Seed             // initial state; nil = empty
	Faults        Faults            // initial fault injection
	Now           func() time.Time  // clock; nil means time.Now
	Rand          *rand.Rand        // source for faults and ids; nil means randomly seeded. Only used under the Sim's mutex.
}

// Message is the simulator's stored message, exported so that tests can check what a send did.
type Message struct {
	ID               string
	ProviderID       string
	ChatID           string
	AccountID        string
	SenderID         string // provider id of the sender
	SenderAttendeeID string
	Text             string
	Timestamp        time.Time
	IsSender         bool // written by the account
	Seen             bool
	Hidden           bool
	Deleted          bool
	Edited           bool
	IsEvent          bool
	Delivered        bool
	QuotedID         string
	Attachments      []Attachment
	Reactions        []Reaction
}

// Attachment is the metadata kept for a received file; the bytes themselves are not kept.
type Attachment struct {
	ID        string
	Type      string // img, video, audio, file
	MimeType  string
	FileName  string
	Size      int64
	SHA256    string // hex of the received bytes
	VoiceNote bool
}

// Reaction is one user's reaction to a message. WhatsApp keeps one per user.
type Reaction struct {
	Value    string
	SenderID string // provider id of the reacting user
	IsSender bool   // the reaction is the account's own
}

// DeliveredAttachment describes a file received in a sending call.
type DeliveredAttachment struct {
	Field       string `json:"field"` // attachments or voice_message
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

// Delivery is one sending request received by the simulator, whatever came of it.
type Delivery struct {
	Seq         int                   `json:"seq"` // 1, 2, ... in arrival order
	At          time.Time             `json:"at"`
	Operation   string                `json:"operation"` // chats_messages_send, chats_create, messages_reaction, messages_edit, messages_delete
	AccountID   string                `json:"account_id,omitempty"`
	ChatID      string                `json:"chat_id,omitempty"`
	MessageID   string                `json:"message_id,omitempty"` // the new message for sends, the target for reaction/edit/delete
	AttendeeIDs []string              `json:"attendee_ids,omitempty"`
	Text        string                `json:"text,omitempty"`
	Reaction    string                `json:"reaction,omitempty"`
	Attachments []DeliveredAttachment `json:"attachments,omitempty"`
	// Outcome is "ok", "dropped" (applied, then the connection was closed), "504" (applied, then
	// 504), "error_<status>" (injected error, nothing applied), "rejected_<slug>" (a real error),
	// or for a late store "late" (not applied yet), then "late_stored" or "late_rejected_<slug>".
	Outcome string `json:"outcome"`
	// Applied says whether state changed. It is false for an edit or delete answered with success
	// out of its window, which is exactly the case a careful client must detect.
	Applied bool `json:"applied"`
}

// Stats counts /api/v1 requests by operation and outcome.
type Stats struct {
	Requests     map[string]map[string]int `json:"requests"`
	Deliveries   int                       `json:"deliveries"`
	TokensIssued int                       `json:"tokens_issued"`
}

// AccountSummary is a one-line view of an account, for start-up banners.
type AccountSummary struct {
	ID     string
	Name   string
	Status string
	Chats  int
}

// Sim is the simulated provider. It is an http.Handler; all its state sits behind one mutex.
type Sim struct {
	now           func() time.Time
	apiKey        string
	oauthClients  map[string]string
	refreshTokens map[string]bool
	tokenTTL      time.Duration

	mu           sync.Mutex
	rng          *rand.Rand
	faults       Faults
	seq          int64 // ordering of messages and chats created in the same millisecond
	accounts     map[string]*account
	accountList  []*account
	chats        map[string]*chat
	chatList     []*chat
	messages     map[string]*message
	ids          map[string]bool      // every id handed out, so generated ids never collide
	tokens       map[string]time.Time // access token -> expiry
	tokensIssued int
	deliveries   []Delivery
	requests     map[string]map[string]int
	hooks        *webhooks // not under mu: it has its own lock
}

type account struct {
	id, name, phone string
	createdAt       time.Time
	status          string
	self            *attendee
	contacts        map[string]*attendee // by provider id (both ids of a person known under two)
	errorType       string               // an injected account-level problem slug (SetAccountError)
	singles         map[string]*chat     // contact provider id -> the single chat with them
}

type attendee struct {
	id, accountID, providerID, name string
	otherID                         string // the person's id of the other form, "" when not known
	isSelf                          bool
}

type chat struct {
	id, accountID, providerID, name string
	typ                             int
	contacts                        []*attendee
	unread                          int
	archived                        bool
	readOnly                        int // 0, 1 or 2
	disabledFeatures                []string
	mutedForever                    bool
	created                         time.Time
	createdSeq                      int64
	messages                        []*message // oldest first: ordered by (Timestamp, seq)
}

type message struct {
	Message
	seq int64
}

// New builds a simulator from opts, validating the seed and the faults.
func New(opts Options) (*Sim, error) {
	var errs []error
	if err := opts.Faults.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("faults: %w", err))
	}
	if opts.TokenTTL < 0 {
		errs = append(errs, fmt.Errorf("token TTL %s: must not be negative", opts.TokenTTL))
	}
	if opts.Seed != nil {
		if err := opts.Seed.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("seed: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Sim{
		now:           opts.Now,
		apiKey:        opts.APIKey,
		oauthClients:  map[string]string{},
		refreshTokens: map[string]bool{},
		tokenTTL:      opts.TokenTTL,
		rng:           opts.Rand,
		faults:        opts.Faults,
		accounts:      map[string]*account{},
		chats:         map[string]*chat{},
		messages:      map[string]*message{},
		ids:           map[string]bool{},
		tokens:        map[string]time.Time{},
		requests:      map[string]map[string]int{},
		hooks:         newWebhooks(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.tokenTTL == 0 {
		s.tokenTTL = defaultTokenTTL
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	for id, secret := range opts.OAuthClients {
		s.oauthClients[id] = secret
	}
	for _, t := range opts.RefreshTokens {
		s.refreshTokens[t] = true
	}
	if opts.Seed != nil {
		s.load(opts.Seed)
	}
	return s, nil
}

// load installs a validated seed.
func (s *Sim) load(seed *Seed) {
	start := s.stamp()
	for _, sa := range seed.Accounts {
		a := &account{
			id:        sa.ID,
			name:      sa.Name,
			phone:     sa.PhoneNumber,
			createdAt: start,
			status:    sa.Status,
			contacts:  map[string]*attendee{},
			singles:   map[string]*chat{},
		}
		if a.status == "" {
			a.status = statusOK
		}
		if sa.CreatedAt != "" {
			a.createdAt, _ = parseStamp(sa.CreatedAt) // validated
		}
		a.self = &attendee{id: selfAttendeeID(a.id), accountID: a.id, providerID: selfProviderID(a.phone), name: a.name, isSelf: true}
		s.ids[a.id] = true
		s.ids[a.self.id] = true
		for _, c := range sa.Contacts {
			at := &attendee{id: c.ID, accountID: a.id, providerID: c.ProviderID, otherID: c.OtherID, name: c.Name}
			a.contacts[c.ProviderID] = at
			if c.OtherID != "" {
				a.contacts[c.OtherID] = at // one person under both ids
			}
			s.ids[c.ID] = true
		}
		s.accounts[a.id] = a
		s.accountList = append(s.accountList, a)
		for _, sc := range sa.Chats {
			s.loadChat(a, sc, start)
		}
	}
}

func (s *Sim) loadChat(a *account, sc SeedChat, start time.Time) {
	s.seq++
	c := &chat{
		id:         sc.ID,
		accountID:  a.id,
		providerID: sc.ProviderID,
		name:       sc.Name,
		typ:        sc.Type,
		unread:     sc.UnreadCount,
		archived:   sc.Archived,
		readOnly:   int(sc.ReadOnly),
		created:    a.createdAt,
		createdSeq: s.seq,
	}
	c.disabledFeatures = append([]string{}, sc.DisabledFeatures...)
	c.mutedForever = sc.MutedForever
	for _, pid := range sc.Attendees {
		c.contacts = append(c.contacts, a.contacts[pid])
	}
	if c.providerID == "" {
		if c.typ == chatSingle {
			c.providerID = c.contacts[0].chatProviderID()
		} else {
			c.providerID = c.id + "@g.us"
		}
	}
	if c.name == "" && len(c.contacts) > 0 {
		names := make([]string, 0, len(c.contacts))
		for _, at := range c.contacts {
			names = append(names, at.name)
		}
		c.name = strings.Join(names, ", ")
	}
	if c.typ == chatSingle {
		a.singles[c.contacts[0].providerID] = c
	}
	s.ids[c.id] = true
	s.chats[c.id] = c
	s.chatList = append(s.chatList, c)
	for _, sm := range sc.Messages {
		at, _ := resolveSeedTime(sm.Timestamp, sm.Ago, start) // validated
		m := &message{Message: Message{
			ID:        sm.ID,
			ChatID:    c.id,
			AccountID: a.id,
			Text:      sm.Text,
			Timestamp: at.UTC(),
			IsSender:  sm.FromMe,
			Seen:      sm.Seen,
			Delivered: true,
		}}
		if sm.FromMe {
			m.SenderID, m.SenderAttendeeID = a.self.providerID, a.self.id
		} else {
			sender := c.contacts[0]
			if sm.Sender != "" {
				sender = a.contacts[sm.Sender]
			}
			m.SenderID, m.SenderAttendeeID = sender.providerID, sender.id
		}
		s.ids[m.ID] = true
		m.ProviderID = s.newProviderMessageID()
		s.insertMessage(c, m)
	}
}

// stamp is the current time as the provider shows it: its own clock (shifted by
// Faults.ClockOffset), UTC, millisecond precision. Storing times at that precision keeps
// before/after filters exact against what clients saw. Callers hold s.mu (or own s alone).
func (s *Sim) stamp() time.Time {
	return s.now().Add(s.faults.ClockOffset).UTC().Truncate(time.Millisecond)
}

// ProviderNow is the provider's clock as its messages and Date header show it.
func (s *Sim) ProviderNow() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stamp()
}

// insertMessage adds m to c keeping (Timestamp, seq) order. Callers hold s.mu.
func (s *Sim) insertMessage(c *chat, m *message) {
	s.seq++
	m.seq = s.seq
	i := sort.Search(len(c.messages), func(i int) bool { return !messageBefore(c.messages[i], m) })
	c.messages = slices.Insert(c.messages, i, m)
	s.messages[m.ID] = m
}

func messageBefore(a, b *message) bool {
	if !a.Timestamp.Equal(b.Timestamp) {
		return a.Timestamp.Before(b.Timestamp)
	}
	return a.seq < b.seq
}

// activity is a chat's position in the chat list: its last message, else its creation.
func (c *chat) activity() (time.Time, int64) {
	if n := len(c.messages); n > 0 {
		return c.messages[n-1].Timestamp, c.messages[n-1].seq
	}
	return c.created, c.createdSeq
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

// newID returns a fresh opaque id shaped like the provider's (22 url-safe characters).
// Callers hold s.mu.
func (s *Sim) newID() string {
	for {
		id := s.randomString(22)
		if !s.ids[id] {
			s.ids[id] = true
			return id
		}
	}
}

// randomString returns n url-safe characters. Callers hold s.mu.
func (s *Sim) randomString(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = idAlphabet[s.rng.IntN(len(idAlphabet))]
	}
	return string(b)
}

// newProviderMessageID returns a WhatsApp-style message key. Callers hold s.mu.
func (s *Sim) newProviderMessageID() string {
	return fmt.Sprintf("3EB0%016X", s.rng.Uint64())
}

// SetFaults replaces the fault injection. It panics if f is invalid, as a programming error in
// the caller; use UpdateFaults to get an error instead.
func (s *Sim) SetFaults(f Faults) {
	if err := s.UpdateFaults(f); err != nil {
		panic(fmt.Sprintf("wasim: SetFaults: %v", err))
	}
}

// UpdateFaults replaces the fault injection if f is valid.
func (s *Sim) UpdateFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	return nil
}

// Faults returns the current fault injection.
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Deliveries returns every sending request received so far, in order.
func (s *Sim) Deliveries() []Delivery {
	return s.deliveriesSince(0)
}

func (s *Sim) deliveriesSince(seq int) []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Delivery{}
	for _, d := range s.deliveries {
		if d.Seq > seq {
			d.AttendeeIDs = slices.Clone(d.AttendeeIDs)
			d.Attachments = slices.Clone(d.Attachments)
			out = append(out, d)
		}
	}
	return out
}

// SetAccountStatus changes an account's connection status, e.g. to CREDENTIALS to simulate a
// disconnection: sending calls then answer 401 errors/disconnected_account.
func (s *Sim) SetAccountStatus(accountID, status string) error {
	if !validStatus(status) {
		return fmt.Errorf("unknown account status %q", status)
	}
	s.mu.Lock()
	a, ok := s.accounts[accountID]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("unknown account %q", accountID)
	}
	changed := a.status != status
	a.status = status
	s.mu.Unlock()
	if changed {
		s.emit("account_status", statusPayload(accountID, status))
	}
	return nil
}

// AddIncomingMessage makes the contact write text in the chat (is_sender 0) at the given time;
// a zero time means now. In a group the first attendee writes.
func (s *Sim) AddIncomingMessage(chatID, text string, at time.Time) (string, error) {
	if text == "" {
		return "", errors.New("text is required")
	}
	if n := len([]rune(text)); n > maxTextChars {
		return "", fmt.Errorf("text has %d characters, the limit is %d", n, maxTextChars)
	}
	id, payload, err := s.addIncoming(chatID, text, at)
	if err != nil {
		return "", err
	}
	s.emit("message_received", payload)
	return id, nil
}

func (s *Sim) addIncoming(chatID, text string, at time.Time) (string, hookMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.chats[chatID]
	if !ok {
		return "", hookMessage{}, fmt.Errorf("unknown chat %q", chatID)
	}
	if len(c.contacts) == 0 {
		return "", hookMessage{}, fmt.Errorf("chat %q has no contact to write", chatID)
	}
	if at.IsZero() {
		at = s.stamp()
	}
	sender := c.contacts[0]
	m := &message{Message: Message{
		ID:               s.newID(),
		ProviderID:       s.newProviderMessageID(),
		ChatID:           c.id,
		AccountID:        c.accountID,
		SenderID:         sender.providerID,
		SenderAttendeeID: sender.id,
		Text:             text,
		Timestamp:        at.UTC().Truncate(time.Millisecond),
		Delivered:        true,
	}}
	s.insertMessage(c, m)
	c.unread++
	return m.ID, s.incomingPayload(c, m, sender), nil
}

// TokensIssued counts the access tokens issued by /oauth/token.
func (s *Sim) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokensIssued
}

// Message returns a copy of the current state of a message.
func (s *Sim) Message(id string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[id]
	if !ok {
		return Message{}, false
	}
	return m.clone(), true
}

func (m *message) clone() Message {
	out := m.Message
	out.Attachments = slices.Clone(m.Attachments)
	out.Reactions = slices.Clone(m.Reactions)
	return out
}

// Stats returns request counts by operation and outcome.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Requests: map[string]map[string]int{}, Deliveries: len(s.deliveries), TokensIssued: s.tokensIssued}
	for op, byOutcome := range s.requests {
		out.Requests[op] = map[string]int{}
		for outcome, n := range byOutcome {
			out.Requests[op][outcome] = n
		}
	}
	return out
}

// Accounts lists the accounts in seed order.
func (s *Sim) Accounts() []AccountSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AccountSummary, 0, len(s.accountList))
	for _, a := range s.accountList {
		n := 0
		for _, c := range s.chatList {
			if c.accountID == a.id {
				n++
			}
		}
		out = append(out, AccountSummary{ID: a.id, Name: a.name, Status: a.status, Chats: n})
	}
	return out
}

// count records one /api/v1 request in the stats. Callers hold s.mu.
func (s *Sim) count(op, outcome string) {
	if s.requests[op] == nil {
		s.requests[op] = map[string]int{}
	}
	s.requests[op][outcome]++
}
