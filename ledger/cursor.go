package ledger

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// A cursor is the seq of the last record of a page, made opaque so clients
// do not build their own. The decoder accepts exactly what the encoder
// produces.
const cursorPrefix = "s1."

func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

// decodeCursor returns the seq of a cursor, or ErrBadCursor.
func decodeCursor(c string) (int64, error) {
	if len(c) == 0 || len(c) > 64 {
		return 0, ErrBadCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, ErrBadCursor
	}
	digits, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if !ok {
		return 0, ErrBadCursor
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || seq <= 0 || encodeCursor(seq) != c {
		return 0, ErrBadCursor
	}
	return seq, nil
}
