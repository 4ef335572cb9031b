package tasks

import (
	"slices"
	"strings"
	"testing"
)

func TestIDForms(t *testing.T) {
	for _, c := range []struct {
		in, norm string
		form     IDForm
	}{
		{"33612345678@s.whatsapp.net", "33612345678@s.whatsapp.net", FormPhone},
		{" 33612345678@S.WhatsApp.NET ", "33612345678@s.whatsapp.net", FormPhone},
		{"123456789012345@lid", "123456789012345@lid", FormLID},
		{"AbC123@LID", "AbC123@lid", FormLID},
		{"+33612345678@s.whatsapp.net", "+33612345678@s.whatsapp.net", FormOther}, // digits only
		{"@lid", "@lid", FormOther},
		{"@s.whatsapp.net", "@s.whatsapp.net", FormOther},
		{"12036302@g.us", "12036302@g.us", FormOther},
		{"chat-AbC", "chat-AbC", FormOther},
		{"a@b@lid", "a@b@lid", FormOther},
		{"", "", FormOther},
	} {
		if got := NormalizeID(c.in); got != c.norm {
			t.Errorf("NormalizeID(%q) = %q, want %q", c.in, got, c.norm)
		}
		if got := FormOf(c.in); got != c.form {
			t.Errorf("FormOf(%q) = %s, want %s", c.in, got, c.form)
		}
	}
	if FormPhone.Other() != FormLID || FormLID.Other() != FormPhone || FormOther.Other() != FormOther {
		t.Error("Other")
	}
}

func TestPhoneID(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"+33 4 45 56 67 78", "33445566778@s.whatsapp.net", true},
		{"(33) 6-12.34", "3361234@s.whatsapp.net", true},
		{"33612345678", "33612345678@s.whatsapp.net", true},
		{"+", "", false},
		{"33612345678@s.whatsapp.net", "", false},
		{"", "", false},
	} {
		got, ok := PhoneID(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("PhoneID(%q) = %q, %v", c.in, got, ok)
		}
	}
}

func TestPersonOf(t *testing.T) {
	const phone, lid = "33611111111@s.whatsapp.net", "9876543210@lid"
	// A chat listed under @lid whose provider_id is the phone form: one person, both forms.
	p := PersonOf(lid, phone, "")
	if !p.Linked() || !p.Matches(" 33611111111@S.whatsapp.net") || !p.Matches(lid) || p.Missing() != FormOther {
		t.Fatalf("%+v", p)
	}
	if p.ID(FormPhone) != phone || p.ID(FormLID) != lid {
		t.Fatalf("%+v", p)
	}
	// Only one form known: the other is missing.
	p = PersonOf(lid, "chat-provider-id", lid)
	if p.Linked() || p.Missing() != FormPhone || len(p.IDs) != 1 {
		t.Fatalf("%+v", p)
	}
	// Two different phone ids are not one person: the first wins.
	p = PersonOf(phone, "33622222222@s.whatsapp.net")
	if !slices.Equal(p.IDs, []string{phone}) {
		t.Fatalf("%+v", p)
	}
	// A group chat has no person.
	if p := PersonOf("120363@g.us"); len(p.IDs) != 0 || p.Missing() != FormOther {
		t.Fatalf("%+v", p)
	}
	if SameID(phone, lid) || !SameID(phone, " "+strings.ToUpper(phone[:11])+"@S.WHATSAPP.NET") || SameID("", "") {
		t.Fatal("SameID")
	}
}

// FuzzIdentity: normalization is idempotent, keeps the form, and a person never holds two ids
// of one form.
func FuzzIdentity(f *testing.F) {
	for _, s := range []string{"33612345678@s.whatsapp.net", " 1@LID", "x@g.us", "@lid", "+33 6 12", "\xff@lid"} {
		f.Add(s, "9@lid")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		n := NormalizeID(a)
		if NormalizeID(n) != n || FormOf(n) != FormOf(a) {
			t.Fatalf("%q: normalized %q, forms %s %s", a, n, FormOf(a), FormOf(n))
		}
		p := PersonOf(a, b, a)
		if len(p.IDs) > 2 || (len(p.IDs) == 2 && FormOf(p.IDs[0]) == FormOf(p.IDs[1])) {
			t.Fatalf("%+v", p)
		}
		if id, ok := PhoneID(a); ok && FormOf(id) != FormPhone {
			t.Fatalf("PhoneID(%q) = %q", a, id)
		}
	})
}
