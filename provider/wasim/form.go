package wasim

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on a multipart body. The provider documents only the ~15 MB attachment cap; the others
// keep a hostile body from costing more than bounded memory and time.
const (
	maxAttachmentBytes = 15 << 20 // per file part
	maxRequestBytes    = 64 << 20 // whole body
	maxFormParts       = 64
	maxFieldBytes      = 64 << 10 // any non-file part; a text this long is over maxTextChars anyway
)

// formLimits are the multipart limits; the fuzz test uses the real ones.
type formLimits struct {
	parts      int
	fieldBytes int64
	fileBytes  int64
}

func defaultFormLimits() formLimits {
	return formLimits{parts: maxFormParts, fieldBytes: maxFieldBytes, fileBytes: maxAttachmentBytes}
}

// sendForm is a parsed chats_messages_send or chats_create body.
type sendForm struct {
	text           string
	hasText        bool
	accountID      string
	quoteID        string
	title          string
	attendeeIDs    []string
	typingDuration int64 // milliseconds; parsed and validated, otherwise unused
	files          []DeliveredAttachment
}

// readSendForm checks the content type and streams the multipart body of a sending call.
func readSendForm(w http.ResponseWriter, r *http.Request) (sendForm, *problem) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" {
		return sendForm{}, newProblem(http.StatusBadRequest, "invalid_parameters", "the body must be multipart/form-data")
	}
	if params["boundary"] == "" {
		return sendForm{}, newProblem(http.StatusBadRequest, "invalid_parameters", "the multipart content type has no boundary")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return sendForm{}, newProblem(http.StatusBadRequest, "invalid_parameters", "cannot read the multipart body: %v", err)
	}
	f, p := parseSendForm(mr, defaultFormLimits())
	if p != nil {
		// Read what is left (bounded by MaxBytesReader) so that a client still writing a large
		// body receives our answer instead of a broken pipe.
		_, _ = io.Copy(io.Discard, r.Body)
	}
	return f, p
}

// parseSendForm reads every part of a sending call's body, keeping fields and, for file parts,
// only their size and SHA-256: file bytes are streamed through the hash and dropped. Unknown
// fields are read and ignored, as the provider grows fields over time. Content rules (text
// required, character limit) are checked later, with the state.
func parseSendForm(mr *multipart.Reader, lim formLimits) (sendForm, *problem) {
	var f sendForm
	seen := map[string]bool{}
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			return f, bodyProblem(err)
		}
		if n >= lim.parts {
			return f, newProblem(http.StatusBadRequest, "invalid_parameters", "more than %d multipart parts", lim.parts)
		}
		name := part.FormName()
		switch name {
		case "attachments", "voice_message":
			if name == "voice_message" && seen[name] {
				return f, newProblem(http.StatusBadRequest, "invalid_parameters", "voice_message: given more than once")
			}
			seen[name] = true
			file, p := hashPart(part, name, lim.fileBytes)
			if p != nil {
				return f, p
			}
			f.files = append(f.files, file)
		case "text", "account_id", "quote_id", "title", "typing_duration", "attendees_ids":
			if name != "attendees_ids" && seen[name] {
				return f, newProblem(http.StatusBadRequest, "invalid_parameters", "%s: given more than once", name)
			}
			seen[name] = true
			v, p := readField(part, name, lim.fieldBytes)
			if p != nil {
				return f, p
			}
			if p := f.set(name, v); p != nil {
				return f, p
			}
		default:
			if _, err := io.Copy(io.Discard, io.LimitReader(part, lim.fileBytes)); err != nil {
				return f, bodyProblem(err)
			}
		}
	}
}

func (f *sendForm) set(name, v string) *problem {
	switch name {
	case "text":
		f.text, f.hasText = v, true
	case "account_id":
		f.accountID = v
	case "quote_id":
		f.quoteID = v
	case "title":
		f.title = v
	case "attendees_ids":
		f.attendeeIDs = append(f.attendeeIDs, v)
	case "typing_duration":
		ms, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || ms < 0 {
			return newProblem(http.StatusBadRequest, "invalid_parameters", "typing_duration: want a non-negative number of milliseconds, got %q", v)
		}
		f.typingDuration = ms
	}
	return nil
}

// readField reads a small text part, refusing oversized or non-UTF-8 values.
func readField(part *multipart.Part, name string, limit int64) (string, *problem) {
	b, err := io.ReadAll(io.LimitReader(part, limit+1))
	if err != nil {
		return "", bodyProblem(err)
	}
	if int64(len(b)) > limit {
		if name == "text" {
			return "", newProblem(http.StatusBadRequest, "too_many_characters", "text: more than %d characters", maxTextChars)
		}
		return "", newProblem(http.StatusBadRequest, "invalid_parameters", "%s: longer than %d bytes", name, limit)
	}
	if !utf8.Valid(b) {
		return "", newProblem(http.StatusBadRequest, "invalid_parameters", "%s: not valid UTF-8", name)
	}
	return string(b), nil
}

// hashPart streams a file part through SHA-256, refusing one over the size cap.
func hashPart(part *multipart.Part, field string, limit int64) (DeliveredAttachment, *problem) {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(part, limit+1))
	if err != nil {
		return DeliveredAttachment{}, bodyProblem(err)
	}
	if n > limit {
		return DeliveredAttachment{}, newProblem(http.StatusBadRequest, "content_too_large", "%s: a file is over the %d byte limit", field, limit)
	}
	name := part.FileName()
	if name == "" {
		name = "attachment"
	}
	ct := part.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	if rejectedMedia(name, ct) {
		return DeliveredAttachment{}, newProblem(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"%s: the media %q has been rejected by the provider", field, name)
	}
	return DeliveredAttachment{Field: field, Filename: name, ContentType: ct, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// bodyProblem classifies an error met while reading the body.
func bodyProblem(err error) *problem {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return newProblem(http.StatusBadRequest, "content_too_large", "the request body is over %d bytes", tooBig.Limit)
	}
	return newProblem(http.StatusBadRequest, "invalid_parameters", "malformed multipart body: %v", err)
}

// attachmentType maps a MIME type to the provider's attachment type.
func attachmentType(contentType string, voice bool) string {
	switch {
	case voice || strings.HasPrefix(contentType, "audio/"):
		return "audio"
	case strings.HasPrefix(contentType, "image/"):
		return "img"
	case strings.HasPrefix(contentType, "video/"):
		return "video"
	}
	return "file"
}
