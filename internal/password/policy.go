package password

import (
	"strings"
	"unicode"

	"github.com/identityd/identityd/model"
)

// Policy checks a new password: at registration, when an admin creates an
// identity with a plaintext password, and when a password is changed.
// Imported hashes are not checked (their passwords are unknown). It follows
// NIST SP 800-63B and Kratos: a minimum length, a generous maximum, no
// password close to the account's identifiers, none from a list of commonly
// used passwords, and no composition rules.
type Policy struct {
	// MinLength is the minimum number of visible characters (see visible):
	// runes, so that a password in any script counts what a person sees,
	// and only those that show, so that eight spaces or eight zero-width
	// spaces are not a password of eight characters.
	MinLength int
	// MaxLength is the maximum number of bytes: it bounds the work of the
	// similarity check and of hashing, which both depend on the bytes.
	MaxLength int
}

// DefaultPolicy returns at least 8 characters and at most 256 bytes. Eight is
// NIST's minimum for a password chosen by its user; 256 bytes leave room for
// 64 characters in any script (NIST asks for at least 64) and for generated
// passphrases.
func DefaultPolicy() Policy {
	return Policy{MinLength: 8, MaxLength: 256}
}

// Similarity thresholds, Kratos's: a password is too close to an identifier
// when fewer than 5 single-character edits separate them, or when their
// longest common substring is more than half of the password.
const (
	minIdentifierDistance = 5
	maxCommonSubstring    = 0.5
)

// Check returns nil or a *model.Error with CodePasswordPolicy, Path
// "/password" and a message that says which rule failed. identifiers are the
// account's identifiers (emails, usernames); comparisons ignore case. Zero
// fields of p take their DefaultPolicy values. Any other error means the
// embedded list of common passwords could not be read: an internal failure.
func (p Policy) Check(password string, identifiers []string) error {
	d := DefaultPolicy()
	if p.MinLength <= 0 {
		p.MinLength = d.MinLength
	}
	if p.MaxLength <= 0 {
		p.MaxLength = d.MaxLength
	}
	violation := func(format string, args ...any) error {
		e := model.Errorf(model.CodePasswordPolicy, format, args...)
		e.Path = "/password"
		return e
	}
	// Control characters (NUL, tab, newline, escape, …) are refused
	// outright: nobody types them, a copy-paste that brings them in makes a
	// password the person cannot type again, and NUL ends the string for
	// any C library a password may reach.
	runes, shown := 0, 0
	for _, r := range password {
		if unicode.Is(unicode.Cc, r) {
			return violation("password must not contain control characters (such as NUL, tab or newline)")
		}
		runes++
		if visible(r) {
			shown++
		}
	}
	switch {
	case runes < p.MinLength:
		return violation("password must be at least %d characters", p.MinLength)
	case shown < p.MinLength:
		return violation("password must have at least %d visible characters (spaces and invisible characters do not count)", p.MinLength)
	}
	if len(password) > p.MaxLength {
		return violation("password must be at most %d bytes", p.MaxLength)
	}
	lower := []rune(strings.ToLower(password))
	for _, id := range identifiers {
		if id == "" {
			continue
		}
		if tooSimilar(lower, []rune(strings.ToLower(id))) {
			return violation("password is too similar to the identifier")
		}
	}
	common, err := isCommon(password)
	if err != nil {
		return err
	}
	if common {
		return violation("password is among the most commonly used passwords")
	}
	return nil
}

// visible reports whether r counts toward MinLength: a graphic rune that is
// neither a space (spaces inside a passphrase are allowed, they just add no
// length) nor one of Unicode's default-ignorable code points, which render as
// nothing. unicode.IsGraphic already leaves out the format characters
// (category Cf: zero-width space U+200B, zero-width joiner U+200D, byte
// order mark U+FEFF, bidi controls); the ignorable ones it would count are
// letters and marks such as the Hangul fillers U+3164 and U+FFA0 and the
// variation selectors.
func visible(r rune) bool {
	return unicode.IsGraphic(r) && !unicode.IsSpace(r) &&
		!unicode.In(r, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// tooSimilar applies Kratos's two tests to a lower-cased password and
// identifier, counting runes where Kratos counts bytes.
func tooSimilar(password, identifier []rune) bool {
	if levenshtein(password, identifier) < minIdentifierDistance {
		return true
	}
	return float64(longestCommonSubstring(password, identifier)) > maxCommonSubstring*float64(len(password))
}

// levenshtein is the edit distance between a and b (insertions, deletions
// and substitutions), in O(len(a)·len(b)) time and O(len(b)) memory.
func levenshtein(a, b []rune) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diag := row[0] // the value of row[j-1] in the previous row
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			next := min(row[j]+1, row[j-1]+1, diag+cost)
			diag, row[j] = row[j], next
		}
	}
	return row[len(b)]
}

// longestCommonSubstring is the length of the longest run of runes that
// appears in both a and b.
func longestCommonSubstring(a, b []rune) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	best := 0
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
				best = max(best, cur[j])
			} else {
				cur[j] = 0
			}
		}
		prev, cur = cur, prev
	}
	return best
}
