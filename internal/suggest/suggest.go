// Package suggest finds the likely intended word for a mistyped one (a
// command, a JSON field), for "did you mean X?" hints. It only compares
// strings: it never decides anything on the caller's behalf.
package suggest

// Closest returns the candidate nearest to word by edit distance when it is
// close enough to be a typo: at most 2 edits, or 3 for words of 8 bytes or
// more, and fewer edits than the word's length (so "x" suggests nothing).
// Ties go to the earlier candidate.
func Closest(word string, candidates []string) (string, bool) {
	best, bestDist := "", -1
	for _, c := range candidates {
		if c == word {
			continue
		}
		d := distance(word, c)
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := 2
	if len(word) >= 8 {
		limit = 3
	}
	if bestDist < 0 || bestDist > limit || bestDist >= len(word) {
		return "", false
	}
	return best, true
}

// distance is the optimal string alignment distance of a and b (bytes):
// Levenshtein plus transposition of two adjacent bytes, the commonest typo
// ("lsit" for "list").
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
