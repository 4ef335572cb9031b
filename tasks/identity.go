package tasks

import (
	"slices"
	"strings"
)

// WhatsApp identities.
//
// One WhatsApp person can be named by two ids: the phone form "<digits>@s.whatsapp.net" and
// the opaque linked-id form "<opaque>@lid". The provider returns either, depending on the
// account and the conversation, and accepts both for sending; nothing in an id says what the
// other form of the same person is. Only the provider's data links them: a single chat whose
// provider_id and attendee_provider_id are the two forms, or its attendees. Every comparison
// of contact ids (the warm check, opt-outs, stop-on-reply) goes through this file, so that a
// person is matched under any form known for them.

// IDForm is the form of a contact id.
type IDForm int

const (
	// FormOther: not a WhatsApp user id (a chat id, a group id "<id>@g.us", another provider's id).
	FormOther IDForm = iota
	// FormPhone: "<digits>@s.whatsapp.net".
	FormPhone
	// FormLID: "<opaque>@lid".
	FormLID
)

// The suffixes of the two WhatsApp user id forms.
const (
	PhoneSuffix = "@s.whatsapp.net"
	LIDSuffix   = "@lid"
)

// String returns "phone", "lid" or "other".
func (f IDForm) String() string {
	switch f {
	case FormPhone:
		return "phone"
	case FormLID:
		return "lid"
	}
	return "other"
}

// Other returns the other WhatsApp form (phone for lid, lid for phone), FormOther for FormOther.
func (f IDForm) Other() IDForm {
	switch f {
	case FormPhone:
		return FormLID
	case FormLID:
		return FormPhone
	}
	return FormOther
}

// NormalizeID returns the one spelling of a contact id used for every comparison: surrounding
// space trimmed, and for a WhatsApp user id a lower-case suffix ("…@S.WhatsApp.net" is
// "…@s.whatsapp.net"). Other ids are returned trimmed and otherwise unchanged: their case may
// matter to the provider.
func NormalizeID(id string) string {
	id = strings.TrimSpace(id)
	at := strings.LastIndexByte(id, '@')
	if at <= 0 {
		return id
	}
	switch suffix := strings.ToLower(id[at:]); suffix {
	case PhoneSuffix, LIDSuffix:
		return id[:at] + suffix
	}
	return id
}

// FormOf returns the form of a contact id. The phone form needs digits before the suffix; the
// lid form any non-empty opaque part without '@'.
func FormOf(id string) IDForm {
	id = NormalizeID(id)
	switch {
	case strings.HasSuffix(id, PhoneSuffix):
		user := strings.TrimSuffix(id, PhoneSuffix)
		if user != "" && strings.Trim(user, "0123456789") == "" {
			return FormPhone
		}
	case strings.HasSuffix(id, LIDSuffix):
		user := strings.TrimSuffix(id, LIDSuffix)
		if user != "" && !strings.ContainsAny(user, "@ \t\r\n") {
			return FormLID
		}
	}
	return FormOther
}

// PhoneID returns the phone form of a raw phone number in international format ("+33 6 12 34
// 56 78" gives "33612345678@s.whatsapp.net"): the provider's documented rule is the digits with
// the country code, without spaces, "+" or formatting, followed by @s.whatsapp.net. ok is false
// when raw holds anything but digits and those formatting characters, or no digit.
func PhoneID(raw string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.TrimSpace(raw) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case strings.ContainsRune("+ ().-", r):
		default:
			return "", false
		}
	}
	if b.Len() == 0 {
		return "", false
	}
	return b.String() + PhoneSuffix, true
}

// LooksLikePhone reports an id that is a raw phone number ("+33 6 12 34 56 78", "33612345678")
// rather than a provider id: the rule of PhoneID. Validation and the worker both refuse such an
// attendee as cold, by this one rule.
func LooksLikePhone(id string) bool {
	_, ok := PhoneID(id)
	return ok
}

// SameID reports whether two contact ids are the same id once normalized. It says nothing about
// the two forms of one person: only a Person built from the provider's data links them.
func SameID(a, b string) bool {
	a, b = NormalizeID(a), NormalizeID(b)
	return a != "" && a == b
}

// Person is every known id of one WhatsApp person, normalized, without duplicates.
type Person struct {
	IDs []string
}

// PersonOf builds the person a single chat is with, from what the provider returned about it:
// the chat's attendee_provider_id, its provider_id (the chat's WhatsApp id, which for a
// one-to-one chat is the other person's id) and the provider ids of its attendees other than the
// account itself. Only WhatsApp user ids are kept; each form appears at most once (the first seen
// wins: a chat naming two different phone ids is not one person, and the others are dropped).
func PersonOf(ids ...string) Person {
	var p Person
	var seen [3]bool
	for _, id := range ids {
		id = NormalizeID(id)
		f := FormOf(id)
		if f == FormOther || seen[f] {
			continue
		}
		seen[f] = true
		p.IDs = append(p.IDs, id)
	}
	return p
}

// ID returns the person's id of the given form, or "".
func (p Person) ID(f IDForm) string {
	for _, id := range p.IDs {
		if FormOf(id) == f {
			return id
		}
	}
	return ""
}

// Has reports whether the person has an id of the given form.
func (p Person) Has(f IDForm) bool { return p.ID(f) != "" }

// Linked reports whether both forms of the person are known.
func (p Person) Linked() bool { return p.Has(FormPhone) && p.Has(FormLID) }

// Matches reports whether id is one of the person's ids.
func (p Person) Matches(id string) bool {
	return slices.Contains(p.IDs, NormalizeID(id))
}

// Missing returns the WhatsApp form the person is not known under when exactly one is known
// (an opt-out under that form cannot be ruled out as theirs), else FormOther.
func (p Person) Missing() IDForm {
	switch {
	case p.Has(FormPhone) && !p.Has(FormLID):
		return FormLID
	case p.Has(FormLID) && !p.Has(FormPhone):
		return FormPhone
	}
	return FormOther
}
