package wasim

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"
)

// Seed is the initial state of a simulator, as JSON. Example (see testdata/demo-seed.json):
//
//	{"accounts": [{
//	  "id": "acc-paris", "name": "Sales Paris", "phone_number": "33755500101", "status": "OK",
//	  "created_at": "2026-01-05T09:00:00.000Z",
//	  "contacts": [{"id": "att-camille", "provider_id": "33612345678@s.whatsapp.net", "name": "Camille Martin"}],
//	  "chats": [{"id": "chat-camille", "type": 0, "attendees": ["33612345678@s.whatsapp.net"], "unread_count": 1,
//	    "messages": [
//	      {"id": "msg-1", "from_me": true, "text": "Hello Camille", "ago": "26h"},
//	      {"id": "msg-2", "text": "Hi! Tell me more", "timestamp": "2026-11-24T10:00:00.000Z"}]}]}]}
//
// Accounts: id (unique), name, phone_number (digits, optional leading +; the account's own WhatsApp id
// is <digits>@s.whatsapp.net), status (OK when absent; one of OK, CONNECTED, CREDENTIALS, ERROR,
// STOPPED, PERMISSIONS, CONNECTING), created_at (ISO-8601 with milliseconds; the start time when absent).
//
// Contacts are the WhatsApp users the account already knows: the only valid attendees_ids for
// chats_create. id is the attendee id (unique across the seed), provider_id looks like
// 33612345678@s.whatsapp.net or 123456789@lid (unique within the account).
//
// Chats: id (unique across the seed), type (0 single, 1 group, 2 channel), attendees (contact
// provider ids; exactly one for a single chat, and at most one single chat per contact since
// WhatsApp keeps one chat per person), provider_id (defaults to the contact's provider id for a
// single chat and to <id>@g.us otherwise), name (defaults to the contact's name), unread_count,
// archived, read_only.
//
// Messages: id (unique across the seed), from_me (sent by the account), sender (provider id of
// the contact who wrote it; only needed in group chats), text, seen, and exactly one of timestamp
// (ISO-8601 with milliseconds) or ago (a Go duration before the simulator started, e.g. "90m", so
// that a demo seed stays "recent" whenever it is loaded and edit/delete windows can be shown).
type Seed struct {
	Accounts []SeedAccount `json:"accounts"`
}

// SeedAccount is one WhatsApp account of a Seed.
type SeedAccount struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	PhoneNumber string        `json:"phone_number"`
	Status      string        `json:"status,omitempty"`
	CreatedAt   string        `json:"created_at,omitempty"`
	Contacts    []SeedContact `json:"contacts,omitempty"`
	Chats       []SeedChat    `json:"chats,omitempty"`
}

// SeedContact is a WhatsApp user known to an account. OtherID, when set, is the same person's
// id of the other form (the @lid of a phone-form contact, or the reverse): the person is then
// known under both ids, chats_create accepts either, and their single chat shows OtherID as its
// provider_id (attendee_provider_id stays ProviderID), which is what links the two forms.
type SeedContact struct {
	ID         string `json:"id"`
	ProviderID string `json:"provider_id"`
	OtherID    string `json:"other_id,omitempty"`
	Name       string `json:"name"`
}

// SeedChat is one chat of an account.
type SeedChat struct {
	ID          string   `json:"id"`
	ProviderID  string   `json:"provider_id,omitempty"`
	Type        int      `json:"type"`
	Name        string   `json:"name,omitempty"`
	Attendees   []string `json:"attendees"`
	UnreadCount int      `json:"unread_count,omitempty"`
	Archived    bool     `json:"archived,omitempty"`
	ReadOnly    ReadOnly `json:"read_only,omitempty"`
	// DisabledFeatures is the chat's disabledFeatures ("reactions", "reply"); reactions are
	// then refused with 403 errors/feature_not_subscribed... see Sim docs.
	DisabledFeatures []string `json:"disabled_features,omitempty"`
	// MutedForever: muted_until is -1 (the reference's example value) instead of null.
	MutedForever bool          `json:"muted_forever,omitempty"`
	Messages     []SeedMessage `json:"messages,omitempty"`
}

// ReadOnly is a chat's read_only value: 0, 1 or 2 (the reference lists all three without saying
// how 1 and 2 differ). In a seed it is a number or a boolean (true is 1).
type ReadOnly int

// UnmarshalJSON accepts 0, 1, 2, true and false.
func (r *ReadOnly) UnmarshalJSON(b []byte) error {
	switch v := strings.TrimSpace(string(b)); v {
	case "true", "1":
		*r = 1
	case "false", "0", "null":
		*r = 0
	case "2":
		*r = 2
	default:
		return fmt.Errorf("read_only: want 0, 1, 2 or a boolean, got %.20s", v)
	}
	return nil
}

// SeedMessage is one message of a chat's history.
type SeedMessage struct {
	ID        string `json:"id"`
	FromMe    bool   `json:"from_me,omitempty"`
	Sender    string `json:"sender,omitempty"`
	Text      string `json:"text"`
	Timestamp string `json:"timestamp,omitempty"`
	Ago       string `json:"ago,omitempty"`
	Seen      bool   `json:"seen,omitempty"`
}

// The demo seed is embedded so that `wasim` and `sendworker -dev` work from any directory; a
// go:embed variable is the one package-level variable we accept, since it is read-only data.
//
//go:embed testdata/demo-seed.json
var demoSeedJSON []byte

// DemoSeed returns the realistic demo state shipped in testdata/demo-seed.json: three accounts
// (two healthy, one needing CREDENTIALS), named contacts, history in both directions and one
// contact who replied a few minutes before start.
func DemoSeed() *Seed {
	seed, err := LoadSeed(bytes.NewReader(demoSeedJSON))
	if err != nil {
		// The file is part of the source tree and a test loads it: failing here is a build defect.
		panic(fmt.Sprintf("wasim: embedded demo seed is invalid: %v", err))
	}
	return seed
}

// LoadSeed decodes a Seed strictly (unknown fields and trailing data are errors) and validates it.
func LoadSeed(r io.Reader) (*Seed, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var seed Seed
	if err := dec.Decode(&seed); err != nil {
		return nil, fmt.Errorf("decode seed: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode seed: trailing data after the JSON object")
	}
	if err := seed.Validate(); err != nil {
		return nil, err
	}
	return &seed, nil
}

// Validate reports every problem of the seed at once, each named by its JSON path.
func (s *Seed) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	accountIDs := map[string]bool{}
	attendeeIDs := map[string]bool{}
	chatIDs := map[string]bool{}
	messageIDs := map[string]bool{}
	for ai, a := range s.Accounts {
		ap := fmt.Sprintf("accounts[%d]", ai)
		switch {
		case a.ID == "":
			bad(ap+".id", "required")
		case accountIDs[a.ID]:
			bad(ap+".id", "duplicate account id %q", a.ID)
		}
		accountIDs[a.ID] = true
		if !validPhone(a.PhoneNumber) {
			bad(ap+".phone_number", "want digits with an optional leading +, got %q", a.PhoneNumber)
		}
		if a.Status != "" && !validStatus(a.Status) {
			bad(ap+".status", "unknown status %q", a.Status)
		}
		if a.CreatedAt != "" {
			if _, err := parseStamp(a.CreatedAt); err != nil {
				bad(ap+".created_at", "%v", err)
			}
		}
		// The account's own attendee id is derived, so it takes part in the uniqueness check.
		selfID := selfAttendeeID(a.ID)
		attendeeIDs[selfID] = true
		contacts := map[string]bool{}
		for ci, c := range a.Contacts {
			cp := fmt.Sprintf("%s.contacts[%d]", ap, ci)
			switch {
			case c.ID == "":
				bad(cp+".id", "required")
			case attendeeIDs[c.ID]:
				bad(cp+".id", "duplicate attendee id %q", c.ID)
			}
			attendeeIDs[c.ID] = true
			switch {
			case !validProviderID(c.ProviderID):
				bad(cp+".provider_id", "want <digits>@s.whatsapp.net or <digits>@lid, got %q", c.ProviderID)
			case contacts[c.ProviderID]:
				bad(cp+".provider_id", "duplicate provider id %q in this account", c.ProviderID)
			case c.ProviderID == selfProviderID(a.PhoneNumber):
				bad(cp+".provider_id", "%q is the account itself", c.ProviderID)
			}
			contacts[c.ProviderID] = true
			if c.OtherID != "" {
				switch {
				case !validProviderID(c.OtherID) || idForm(c.OtherID) == idForm(c.ProviderID):
					bad(cp+".other_id", "want the other form of %q, got %q", c.ProviderID, c.OtherID)
				case contacts[c.OtherID]:
					bad(cp+".other_id", "duplicate provider id %q in this account", c.OtherID)
				}
				contacts[c.OtherID] = true
			}
		}
		singles := map[string]bool{}
		for hi, c := range a.Chats {
			hp := fmt.Sprintf("%s.chats[%d]", ap, hi)
			switch {
			case c.ID == "":
				bad(hp+".id", "required")
			case chatIDs[c.ID]:
				bad(hp+".id", "duplicate chat id %q", c.ID)
			}
			chatIDs[c.ID] = true
			if c.Type < chatSingle || c.Type > chatChannel {
				bad(hp+".type", "want 0 (single), 1 (group) or 2 (channel), got %d", c.Type)
			}
			if c.UnreadCount < 0 {
				bad(hp+".unread_count", "must not be negative")
			}
			members := map[string]bool{}
			for ti, pid := range c.Attendees {
				if !contacts[pid] {
					bad(fmt.Sprintf("%s.attendees[%d]", hp, ti), "%q is not a contact of account %q", pid, a.ID)
				}
				members[pid] = true
			}
			if c.Type == chatSingle {
				if len(c.Attendees) != 1 {
					bad(hp+".attendees", "a single chat has exactly one attendee, got %d", len(c.Attendees))
				} else if singles[c.Attendees[0]] {
					bad(hp+".attendees", "contact %q already has a single chat with this account (WhatsApp keeps one chat per person)", c.Attendees[0])
				} else {
					singles[c.Attendees[0]] = true
				}
			}
			for mi, m := range c.Messages {
				mp := fmt.Sprintf("%s.messages[%d]", hp, mi)
				switch {
				case m.ID == "":
					bad(mp+".id", "required")
				case messageIDs[m.ID]:
					bad(mp+".id", "duplicate message id %q", m.ID)
				}
				messageIDs[m.ID] = true
				if m.FromMe && m.Sender != "" {
					bad(mp+".sender", "must be empty for a message from_me")
				}
				if !m.FromMe {
					switch {
					case m.Sender == "" && c.Type != chatSingle:
						bad(mp+".sender", "required for a contact's message outside a single chat")
					case m.Sender != "" && !members[m.Sender]:
						bad(mp+".sender", "%q is not an attendee of the chat", m.Sender)
					}
				}
				if n := len([]rune(m.Text)); n > maxTextChars {
					bad(mp+".text", "%d characters, the limit is %d", n, maxTextChars)
				}
				if _, err := resolveSeedTime(m.Timestamp, m.Ago, time.Time{}); err != nil {
					bad(mp, "%v", err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// resolveSeedTime turns a timestamp or an "ago" duration into a time, relative to start.
func resolveSeedTime(stamp, ago string, start time.Time) (time.Time, error) {
	switch {
	case stamp != "" && ago != "":
		return time.Time{}, errors.New("set timestamp or ago, not both")
	case stamp != "":
		t, err := parseStamp(stamp)
		if err != nil {
			return time.Time{}, fmt.Errorf("timestamp: %w", err)
		}
		return t, nil
	case ago != "":
		d, err := time.ParseDuration(ago)
		if err != nil {
			return time.Time{}, fmt.Errorf("ago: %w", err)
		}
		if d < 0 {
			return time.Time{}, fmt.Errorf("ago %q: must not be negative", ago)
		}
		return start.Add(-d).Truncate(time.Millisecond), nil
	default:
		return time.Time{}, errors.New("timestamp or ago is required")
	}
}

func validPhone(p string) bool {
	p = strings.TrimPrefix(p, "+")
	return len(p) >= 6 && len(p) <= 20 && allDigits(p)
}

// validProviderID accepts the two WhatsApp user id forms the provider documents (docs/PROVIDER-API.md).
func validProviderID(id string) bool {
	for _, suffix := range []string{"@s.whatsapp.net", "@lid"} {
		if local, ok := strings.CutSuffix(id, suffix); ok {
			return len(local) >= 6 && len(local) <= 20 && allDigits(local)
		}
	}
	return false
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func selfProviderID(phone string) string {
	return strings.TrimPrefix(phone, "+") + "@s.whatsapp.net"
}

func selfAttendeeID(accountID string) string {
	return "att-self-" + accountID
}

// GenerateSeed builds a deterministic seed for benchmarks: accounts "acc-0001".., each with
// chatsPerAccount single chats, one contact per chat with provider id "336%08d@s.whatsapp.net"
// (numbered across the whole seed), and 2 or 3 prior messages alternating directions, the account
// writing first. Times are "ago" durations so the same seed value gives the same Seed.
func GenerateSeed(accounts, chatsPerAccount int, seed uint64) *Seed {
	firstNames := []string{"Camille", "Lucas", "Léa", "Hugo", "Chloé", "Louis", "Manon", "Jules", "Inès", "Arthur", "Sarah", "Nathan"}
	lastNames := []string{"Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau"}
	openers := []string{"Bonjour, comme convenu voici notre offre.", "Hello! Following up on our call.", "Hi, did you get a chance to look at the deck?"}
	replies := []string{"Merci, je regarde.", "Thanks, let's talk next week.", "Can you send the pricing?"}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := &Seed{}
	contact := 0
	for a := 1; a <= accounts; a++ {
		acc := SeedAccount{
			ID:          fmt.Sprintf("acc-%04d", a),
			Name:        fmt.Sprintf("Account %04d", a),
			PhoneNumber: fmt.Sprintf("3375%07d", a),
			Status:      statusOK,
		}
		for c := 1; c <= chatsPerAccount; c++ {
			contact++
			pid := fmt.Sprintf("336%08d@s.whatsapp.net", contact)
			name := firstNames[rng.IntN(len(firstNames))] + " " + lastNames[rng.IntN(len(lastNames))]
			acc.Contacts = append(acc.Contacts, SeedContact{ID: fmt.Sprintf("att-%04d-%05d", a, c), ProviderID: pid, Name: name})
			chat := SeedChat{ID: fmt.Sprintf("chat-%04d-%05d", a, c), Type: chatSingle, Attendees: []string{pid}}
			n := 2 + rng.IntN(2)
			age := time.Duration(60+rng.IntN(72*60)) * time.Minute
			for m := 0; m < n; m++ {
				msg := SeedMessage{
					ID:   fmt.Sprintf("msg-%04d-%05d-%d", a, c, m+1),
					Ago:  (age - time.Duration(m)*17*time.Minute).String(),
					Seen: true,
				}
				if m%2 == 0 {
					msg.FromMe = true
					msg.Text = openers[rng.IntN(len(openers))]
				} else {
					msg.Text = replies[rng.IntN(len(replies))]
				}
				chat.Messages = append(chat.Messages, msg)
			}
			acc.Chats = append(acc.Chats, chat)
		}
		out.Accounts = append(out.Accounts, acc)
	}
	return out
}
