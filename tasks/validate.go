package tasks

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// FieldError names one field that failed validation and why.
type FieldError struct {
	Field   string `json:"field"`   // JSON path, e.g. "attachments[1].sha256"
	Code    string `json:"code"`    // stable snake_case: required, too_long, invalid, not_allowed, cold_recipient...
	Message string `json:"message"` // for humans; never contains the field's value when it may be secret or long
}

// ValidationError lists every field that failed, so a caller fixes all at once.
type ValidationError struct {
	Fields []FieldError `json:"fields"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid send request: " + strings.Join(parts, "; ")
}

// Prefix returns a copy whose field names start with p (for bulk requests).
func (e *ValidationError) Prefix(p string) *ValidationError {
	out := &ValidationError{Fields: make([]FieldError, len(e.Fields))}
	for i, f := range e.Fields {
		f.Field = p + f.Field
		out.Fields[i] = f
	}
	return out
}

func (e *ValidationError) add(field, code, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
}

// ValidateOptions carries what validation needs from outside the request.
type ValidateOptions struct {
	Now time.Time
	// MaxAttachmentBytes caps each attachment's declared size; 0 = no cap.
	MaxAttachmentBytes int64
	// OriginAllowed, when set, refuses attachment URLs from other origins at
	// enqueue (the worker checks again when it fetches).
	OriginAllowed func(u *url.URL) bool
}

var (
	// Provider ids are opaque but never contain spaces or control characters.
	providerIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:@=+/-]+$`)
	// A WhatsApp attendee provider id: digits@s.whatsapp.net, digits@lid, or
	// an opaque provider id (letters and digits, not a bare number).
	whatsappJIDPattern = regexp.MustCompile(`^[0-9]{5,20}@(s\.whatsapp\.net|lid|c\.us)$`)
	opaqueIDPattern    = regexp.MustCompile(`^[A-Za-z0-9_-]{6,128}$`)
	hhmmPattern        = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	sha256Pattern      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Validate checks the request and returns a *ValidationError naming every bad
// field, or nil.
func (r *SendRequest) Validate(opts ValidateOptions) error {
	v := &ValidationError{}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}

	switch {
	case r.SendID == "":
		v.add("send_id", "required", "required")
	case len(r.SendID) > MaxSendIDLen:
		v.add("send_id", "too_long", "at most %d characters", MaxSendIDLen)
	case !sendIDChars(r.SendID):
		v.add("send_id", "invalid", "only letters, digits and . _ : - are allowed")
	case strings.Trim(r.SendID, ".") == "":
		// "." and ".." are path segments: the API's URLs could never name the send.
		v.add("send_id", "invalid", "must hold at least one character other than a dot")
	}
	if r.Operation == "" {
		v.add("operation", "required", "required")
	} else if !r.Operation.Valid() {
		v.add("operation", "invalid", "must be one of chats_messages_send, chats_create, messages_reaction, messages_edit, messages_delete")
	}
	checkID(v, "account_id", r.AccountID, true, MaxAccountIDLen)
	if r.RequestedBy != "" && (len(r.RequestedBy) > 256 || !utf8.ValidString(r.RequestedBy) || hasControl(r.RequestedBy)) {
		v.add("requested_by", "invalid", "at most 256 printable characters")
	}
	if len(r.Metadata) > 0 {
		trimmed := strings.TrimSpace(string(r.Metadata))
		switch {
		case len(r.Metadata) > MaxMetadataBytes:
			v.add("metadata", "too_long", "at most %d bytes", MaxMetadataBytes)
		case trimmed == "null":
		case !strings.HasPrefix(trimmed, "{") || !json.Valid(r.Metadata):
			v.add("metadata", "invalid", "must be a JSON object")
		}
	}
	if d := r.ApprovalDeadline; d != nil {
		switch {
		case !d.After(now):
			v.add("approval_deadline", "in_past", "must be in the future")
		case d.Sub(now) > MaxDeadlineFuture:
			v.add("approval_deadline", "too_far", "at most %s ahead", MaxDeadlineFuture)
		}
	}
	if s := r.StopIfRepliedSince; s != nil && s.After(now.Add(time.Minute)) {
		v.add("stop_if_replied_since", "in_future", "must not be in the future")
	}
	r.validateWindow(v, now)
	r.validateOperationFields(v)
	r.validateAttachments(v, opts)

	if len(v.Fields) > 0 {
		return v
	}
	return nil
}

func (r *SendRequest) validateOperationFields(v *ValidationError) {
	need := func(field string, present bool) {
		if !present {
			v.add(field, "required", "required for %s", r.Operation)
		}
	}
	forbid := func(field string, present bool) {
		if present {
			v.add(field, "not_allowed", "not allowed for %s", r.Operation)
		}
	}
	hasText := r.Text != ""
	switch r.Operation {
	case OpSendMessage:
		need("chat_id", r.ChatID != "")
		if !hasText && len(r.Attachments) == 0 {
			v.add("text", "required", "text and/or attachments are required for %s", r.Operation)
		}
		forbid("attendees_ids", len(r.AttendeeIDs) > 0)
		forbid("message_id", r.MessageID != "")
		forbid("reaction", r.Reaction != "")
	case OpCreateChat:
		switch {
		case len(r.AttendeeIDs) == 0:
			v.add("attendees_ids", "required", "required for %s", r.Operation)
		case len(r.AttendeeIDs) > 1:
			// Creating a group puts several people in front of a message at
			// once; that is not a warm follow-up, so it is not supported.
			v.add("attendees_ids", "too_many", "exactly one attendee: group chats are not created by sendworker")
		}
		need("text", hasText)
		forbid("chat_id", r.ChatID != "")
		forbid("message_id", r.MessageID != "")
		forbid("reaction", r.Reaction != "")
	case OpReaction:
		need("message_id", r.MessageID != "")
		need("reaction", r.Reaction != "")
		forbid("text", hasText)
		forbid("attendees_ids", len(r.AttendeeIDs) > 0)
		forbid("attachments", len(r.Attachments) > 0)
	case OpEdit:
		need("message_id", r.MessageID != "")
		need("text", hasText)
		forbid("attendees_ids", len(r.AttendeeIDs) > 0)
		forbid("attachments", len(r.Attachments) > 0)
		forbid("reaction", r.Reaction != "")
	case OpDelete:
		need("message_id", r.MessageID != "")
		forbid("text", hasText)
		forbid("attendees_ids", len(r.AttendeeIDs) > 0)
		forbid("attachments", len(r.Attachments) > 0)
		forbid("reaction", r.Reaction != "")
	}
	// chat_id is optional for the message operations: when given, the worker
	// checks the message is in that chat.
	if r.ChatID != "" {
		checkID(v, "chat_id", r.ChatID, true, MaxIDLen)
	}
	if r.MessageID != "" {
		checkID(v, "message_id", r.MessageID, true, MaxIDLen)
	}
	for i, id := range r.AttendeeIDs {
		field := fmt.Sprintf("attendees_ids[%d]", i)
		switch {
		case id == "":
			v.add(field, "required", "must not be empty")
		case LooksLikePhone(id):
			v.add(field, string(ReasonColdRecipient), "a raw phone number is not a known attendee: use the provider attendee id of an existing contact")
		case !whatsappJIDPattern.MatchString(id) && !opaqueIDPattern.MatchString(id):
			v.add(field, "invalid", "must be a provider attendee id such as 33612345678@s.whatsapp.net")
		}
	}
	if hasText {
		switch {
		case !utf8.ValidString(r.Text):
			v.add("text", "invalid", "must be valid UTF-8")
		case utf8.RuneCountInString(r.Text) > MaxTextLen:
			v.add("text", "too_long", "at most %d characters, got %d", MaxTextLen, utf8.RuneCountInString(r.Text))
		case strings.ContainsRune(r.Text, 0):
			v.add("text", "invalid", "must not contain NUL characters")
		case strings.TrimSpace(r.Text) == "":
			v.add("text", "invalid", "must not be blank")
		}
	}
	if r.Reaction != "" {
		if !utf8.ValidString(r.Reaction) || utf8.RuneCountInString(r.Reaction) > MaxReactionLen || hasControl(r.Reaction) || strings.TrimSpace(r.Reaction) != r.Reaction {
			v.add("reaction", "invalid", "must be one emoji (at most %d characters)", MaxReactionLen)
		}
	}
}

func (r *SendRequest) validateAttachments(v *ValidationError, opts ValidateOptions) {
	if len(r.Attachments) > MaxAttachments {
		v.add("attachments", "too_many", "at most %d attachments", MaxAttachments)
		return
	}
	for i, a := range r.Attachments {
		p := fmt.Sprintf("attachments[%d].", i)
		u, err := url.Parse(a.URL)
		switch {
		case a.URL == "":
			v.add(p+"url", "required", "required")
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			v.add(p+"url", "invalid", "must be an absolute http(s) URL")
		case u.User != nil:
			v.add(p+"url", "invalid", "must not carry credentials")
		case opts.OriginAllowed != nil && !opts.OriginAllowed(u):
			v.add(p+"url", string(ReasonAttachmentOrigin), "origin %s is not allow-listed", u.Scheme+"://"+u.Host)
		}
		switch {
		case a.Filename == "":
			v.add(p+"filename", "required", "required")
		case len(a.Filename) > 255 || strings.ContainsAny(a.Filename, "/\\\x00") || a.Filename == "." || a.Filename == ".." || hasControl(a.Filename):
			v.add(p+"filename", "invalid", "a plain file name of at most 255 characters")
		}
		switch {
		case a.ContentType == "":
			v.add(p+"content_type", "required", "required")
		case a.ContentType != strings.TrimSpace(a.ContentType) || hasControl(a.ContentType):
			// It goes into the provider's multipart header as is: refused now, not at send time.
			v.add(p+"content_type", "invalid", "no surrounding spaces or control characters")
		case !isMediaType(a.ContentType):
			v.add(p+"content_type", "invalid", "must be a MIME type such as image/jpeg")
		}
		switch {
		case a.Size <= 0:
			v.add(p+"size", "required", "must be the file's size in bytes (> 0)")
		case opts.MaxAttachmentBytes > 0 && a.Size > opts.MaxAttachmentBytes:
			v.add(p+"size", string(ReasonAttachmentTooLarge), "at most %d bytes", opts.MaxAttachmentBytes)
		}
		if !sha256Pattern.MatchString(a.SHA256) {
			v.add(p+"sha256", "invalid", "must be the lowercase hex SHA-256 of the file (64 characters)")
		} else if _, err := hex.DecodeString(a.SHA256); err != nil {
			v.add(p+"sha256", "invalid", "must be hex")
		}
	}
}

func (r *SendRequest) validateWindow(v *ValidationError, now time.Time) {
	w := r.Window
	if w == nil {
		return
	}
	if w.NotBefore != nil && w.NotAfter != nil && !w.NotBefore.Before(*w.NotAfter) {
		v.add("window.not_after", "invalid", "must be after window.not_before")
	}
	if w.NotAfter != nil && !w.NotAfter.After(now) {
		v.add("window.not_after", "in_past", "must be in the future")
	}
	daily := len(w.Days) > 0 || w.From != "" || w.To != ""
	if daily && w.Timezone == "" {
		v.add("window.timezone", "required", "required with days, from or to (the recipient's IANA time zone)")
	}
	if w.Timezone != "" {
		if _, err := time.LoadLocation(w.Timezone); err != nil || w.Timezone == "Local" {
			v.add("window.timezone", "invalid", "unknown IANA time zone")
		}
	}
	seen := map[string]bool{}
	for i, d := range w.Days {
		if _, ok := weekdays[d]; !ok {
			v.add(fmt.Sprintf("window.days[%d]", i), "invalid", "must be one of mon, tue, wed, thu, fri, sat, sun")
		} else if seen[d] {
			v.add(fmt.Sprintf("window.days[%d]", i), "duplicate", "listed twice")
		}
		seen[d] = true
	}
	if (w.From == "") != (w.To == "") {
		v.add("window.from", "required", "from and to go together")
	}
	if w.From != "" && !hhmmPattern.MatchString(w.From) {
		v.add("window.from", "invalid", "must be HH:MM (24 h)")
	}
	if w.To != "" && !hhmmPattern.MatchString(w.To) {
		v.add("window.to", "invalid", "must be HH:MM (24 h)")
	}
	if hhmmPattern.MatchString(w.From) && hhmmPattern.MatchString(w.To) && w.From >= w.To {
		v.add("window.to", "invalid", "must be after window.from (windows do not cross midnight)")
	}
}

// ValidProviderID reports whether id is of the provider id grammar: 1 to MaxIDLen letters,
// digits and ._:@=+/- (provider ids are opaque but never hold spaces or control characters).
func ValidProviderID(id string) bool {
	return id != "" && len(id) <= MaxIDLen && providerIDPattern.MatchString(id)
}

// validProviderID reports whether id is a non-empty provider id of at most maxLen bytes.
func validProviderID(id string, maxLen int) bool {
	return id != "" && len(id) <= maxLen && providerIDPattern.MatchString(id)
}

func checkID(v *ValidationError, field, id string, required bool, maxLen int) {
	switch {
	case id == "":
		if required {
			v.add(field, "required", "required")
		}
	case len(id) > maxLen:
		v.add(field, "too_long", "at most %d characters", maxLen)
	case !providerIDPattern.MatchString(id):
		v.add(field, "invalid", "must be a provider id (letters, digits and ._:@=+/- only)")
	}
}

// isMediaType reports whether s parses as a MIME type with a "/".
func isMediaType(s string) bool {
	mt, _, err := mime.ParseMediaType(s)
	return err == nil && strings.Contains(mt, "/")
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}
