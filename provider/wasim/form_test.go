package wasim

import (
	"bytes"
	"mime/multipart"
	"strings"
	"testing"
)

// rawBody is a hand-written multipart body, for bodies a well-behaved writer would not produce.
func rawBody(boundary string, parts ...string) []byte {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n" + p + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return []byte(b.String())
}

func field(name, value string) string {
	return `Content-Disposition: form-data; name="` + name + `"` + "\r\n\r\n" + value
}

func TestParseSendForm(t *testing.T) {
	small := formLimits{parts: 4, fieldBytes: 16, fileBytes: 8}
	tests := []struct {
		name     string
		body     []byte
		lim      formLimits
		wantSlug string
		check    func(t *testing.T, f sendForm)
	}{
		{"fields", rawBody("b", field("text", "hello"), field("account_id", "acc"), field("attendees_ids", "1@lid"), field("attendees_ids", "2@lid")), small, "",
			func(t *testing.T, f sendForm) {
				if f.text != "hello" || !f.hasText || f.accountID != "acc" || len(f.attendeeIDs) != 2 || f.attendeeIDs[1] != "2@lid" {
					t.Errorf("form = %+v", f)
				}
			}},
		{"file", rawBody("b", "Content-Disposition: form-data; name=\"attachments\"; filename=\"../../etc/x.txt\"\r\nContent-Type: text/plain\r\n\r\nabc"), small, "",
			func(t *testing.T, f sendForm) {
				if len(f.files) != 1 || f.files[0].Filename != "x.txt" || f.files[0].Size != 3 || f.files[0].SHA256 != sha([]byte("abc")) || f.files[0].ContentType != "text/plain" {
					t.Errorf("files = %+v", f.files)
				}
			}},
		{"unknown field ignored", rawBody("b", field("colour", "red"), field("text", "x")), small, "", nil},
		{"empty body", rawBody("b"), small, "", nil},
		{"too many parts", rawBody("b", field("x", "1"), field("x", "2"), field("x", "3"), field("x", "4"), field("x", "5")), small, "invalid_parameters", nil},
		{"field too long", rawBody("b", field("account_id", strings.Repeat("a", 17))), small, "invalid_parameters", nil},
		{"text too long", rawBody("b", field("text", strings.Repeat("a", 17))), small, "too_many_characters", nil},
		{"file too big", rawBody("b", "Content-Disposition: form-data; name=\"attachments\"; filename=\"x\"\r\n\r\n123456789"), small, "content_too_large", nil},
		{"two voice messages", rawBody("b", "Content-Disposition: form-data; name=\"voice_message\"; filename=\"a\"\r\n\r\n1", "Content-Disposition: form-data; name=\"voice_message\"; filename=\"b\"\r\n\r\n2"), small, "invalid_parameters", nil},
		{"repeated account", rawBody("b", field("account_id", "a"), field("account_id", "b")), small, "invalid_parameters", nil},
		{"invalid UTF-8", rawBody("b", field("text", "\xff\xfe")), small, "invalid_parameters", nil},
		{"bad typing duration", rawBody("b", field("typing_duration", "soon")), small, "invalid_parameters", nil},
		{"truncated", []byte("--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhel"), small, "invalid_parameters", nil},
		// No boundary at all reads as an empty form: the send is then refused for having no content.
		{"no boundary in the body", []byte("hello"), small, "", func(t *testing.T, f sendForm) {
			if f.hasText || len(f.files) != 0 {
				t.Errorf("form = %+v", f)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, p := parseSendForm(multipart.NewReader(bytes.NewReader(tt.body), "b"), tt.lim)
			if tt.wantSlug != "" {
				if p == nil || p.slug != tt.wantSlug {
					t.Fatalf("problem = %v, want %s", p, tt.wantSlug)
				}
				return
			}
			if p != nil {
				t.Fatalf("problem = %v", p)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

// FuzzParseSendForm feeds arbitrary bodies and boundaries to the multipart parser: it must never
// panic, and whatever it accepts must respect the limits.
func FuzzParseSendForm(f *testing.F) {
	f.Add(rawBody("b", field("text", "hello"), field("account_id", "acc")), "b")
	f.Add(rawBody("xyz", "Content-Disposition: form-data; name=\"attachments\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF"), "xyz")
	f.Add(rawBody("b", field("attendees_ids", "1@lid"), field("typing_duration", "10")), "b")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n"), "b")
	f.Add([]byte(""), "")
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		lim := defaultFormLimits()
		form, p := parseSendForm(multipart.NewReader(bytes.NewReader(body), boundary), lim)
		if p != nil {
			if p.status < 400 || p.status > 499 || p.slug == "" {
				t.Fatalf("problem %v is not a client error", p)
			}
			return
		}
		if int64(len(form.text)) > lim.fieldBytes || len(form.attendeeIDs) > lim.parts || len(form.files) > lim.parts {
			t.Fatalf("limits not enforced: %d text bytes, %d attendees, %d files", len(form.text), len(form.attendeeIDs), len(form.files))
		}
		for _, file := range form.files {
			if file.Size > lim.fileBytes || len(file.SHA256) != 64 {
				t.Fatalf("file = %+v", file)
			}
		}
	})
}
