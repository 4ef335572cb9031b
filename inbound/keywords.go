package inbound

import (
	"strings"
	"unicode"
)

// DefaultOptOutKeywords are the messages that opt a contact out when they are the whole message
// (compared case- and accent-insensitively, surrounding spaces and punctuation ignored): English,
// French, Spanish, Portuguese, German and Italian. A longer message containing one of them ("stop
// by tomorrow?") is not an opt-out.
var DefaultOptOutKeywords = []string{
	"STOP", "STOP ALL", "UNSUBSCRIBE", "OPT OUT", "OPTOUT", "END", "QUIT",
	"ARRET", "ARRETER", "DESABONNER", "DESINSCRIRE", "DESINSCRIPTION", // French
	"BAJA", "PARAR", "DARSE DE BAJA", "CANCELAR SUSCRIPCION", // Spanish
	"SAIR", "DESCADASTRAR", "CANCELAR INSCRICAO", // Portuguese
	"STOPP", "ABMELDEN", "AUFHOREN", // German
	"BASTA", "DISISCRIVIMI", "ANNULLA ISCRIZIONE", // Italian
}

// Keywords matches whole messages against an opt-out keyword list.
type Keywords struct{ set map[string]string } // normalised → as configured

// NewKeywords builds the matcher of list (DefaultOptOutKeywords when empty).
func NewKeywords(list []string) *Keywords {
	if len(list) == 0 {
		list = DefaultOptOutKeywords
	}
	k := &Keywords{set: map[string]string{}}
	for _, w := range list {
		if n := normalize(w); n != "" {
			k.set[n] = strings.TrimSpace(w)
		}
	}
	return k
}

// Match returns the keyword the whole text is, if any.
func (k *Keywords) Match(text string) (string, bool) {
	if len(text) > 128 { // no keyword is that long: do not normalise a whole essay
		return "", false
	}
	w, ok := k.set[normalize(text)]
	return w, ok
}

// normalize folds a message for keyword matching: accents removed, upper case, runs of spaces
// made one, leading and trailing spaces, punctuation and symbols (emoji too) dropped.
func normalize(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		r = foldAccent(r)
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(unicode.ToUpper(r))
		case unicode.IsSpace(r) || r == '-' || r == '_':
			space = true
		default:
			// punctuation, symbols, emoji: ignored ("Stop!", "STOP 🛑")
		}
	}
	return b.String()
}

// foldAccent maps the accented Latin letters of the supported languages to their base letter.
func foldAccent(r rune) rune {
	if r < 0xC0 {
		return r
	}
	if f, ok := accentFold[r]; ok {
		return f
	}
	return r
}

var accentFold = func() map[rune]rune {
	m := map[rune]rune{}
	for base, accented := range map[rune]string{
		'a': "àáâãäåāăą", 'A': "ÀÁÂÃÄÅĀĂĄ", 'c': "çćč", 'C': "ÇĆČ", 'e': "èéêëēĕėęě", 'E': "ÈÉÊËĒĔĖĘĚ",
		'i': "ìíîïĩīĭį", 'I': "ÌÍÎÏĨĪĬĮ", 'n': "ñńň", 'N': "ÑŃŇ", 'o': "òóôõöøōŏő", 'O': "ÒÓÔÕÖØŌŎŐ",
		'u': "ùúûüũūŭůűų", 'U': "ÙÚÛÜŨŪŬŮŰŲ", 'y': "ýÿ", 'Y': "ÝŸ", 's': "śšş", 'S': "ŚŠŞ", 'z': "źżž", 'Z': "ŹŻŽ",
	} {
		for _, r := range accented {
			m[r] = base
		}
	}
	return m
}()
