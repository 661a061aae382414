package schemas

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/secure/bidirule"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// MaxIdentifierBytes caps an identifier, as typed and as stored. Nobody
// signs in with more (an email address has at most 254 bytes), and a cap
// keeps a login or a write from feeding megabytes to the normalisation and
// to a database index.
const MaxIdentifierBytes = 512

// telFormat is the "tel" format Kratos schemas use for phone numbers.
var telFormat = &jsonschema.Format{
	Name: "tel",
	Validate: func(v any) error {
		s, ok := v.(string)
		if !ok {
			return nil // format applies to strings only
		}
		_, err := parsePhone(s)
		return err
	},
}

// parsePhone accepts international numbers only. A leading + is required
// because parsing with a default region silently turns bad input (a local
// number, a typo) into a valid number of some other country.
func parsePhone(s string) (*phonenumbers.PhoneNumber, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "+") {
		return nil, errors.New("a phone number must start with + and the country code")
	}
	n, err := phonenumbers.Parse(s, "")
	if err != nil {
		return nil, errors.New("not a phone number")
	}
	if !phonenumbers.IsValidNumber(n) {
		return nil, errors.New("not a valid phone number")
	}
	return n, nil
}

// CanonicalIdentifier returns the form under which a trait value marked as
// an identifier or an address is stored and looked up, given the trait's
// JSON-schema "format", or an error saying why the value cannot be one. The
// error's message reads after the trait's name ("must not contain …").
//
// Two values that look the same must not be two accounts, so every format
// first refuses what a reader cannot see or tell apart: control characters
// (NUL included, which no database column takes), invisible characters
// (format characters such as U+200B, U+200D, U+2060, U+FEFF and the bidi
// controls, and the other default-ignorable code points), line separators,
// unassigned, private-use and replacement characters, and letters from more
// than one script (Latin with Cyrillic or Greek look-alikes) save the usual
// combinations of Chinese, Japanese and Korean with Latin (UTS #39, highly
// restrictive). Then:
//
//   - email: trimmed, NFKC-normalised and lower-cased; the script rule holds
//     for the local part and for each label of the domain on their own.
//   - tel: E.164 (+14155552671) when it is a phone number, else as below.
//   - anything else (usernames): NFKC-normalised, then the PRECIS
//     UsernameCaseMapped profile (RFC 8265: width folding, lower case, NFC,
//     the Bidi Rule, and only letters, digits and ASCII symbols). Inner
//     spaces are kept, as RFC 8265 §3.1 allows a username of space-separated
//     userparts and Kratos usernames may hold them ("+1 415 555 2671", "Ada
//     Lovelace"): every kind of space becomes U+0020 and runs of them one,
//     so "ada  lovelace" cannot sit beside "ada lovelace".
//
// For ASCII without control characters the result is what it has always
// been, trimmed and lower-cased, save that runs of spaces inside a username
// become one. The result is a fixed point: normalising it again gives it
// back.
func CanonicalIdentifier(value, format string) (string, error) {
	return canonical(value, format, normalizeUsername)
}

// canonicalName is CanonicalIdentifier for the traits the extension uses as
// names rather than to sign in with (a passkey's display name, a TOTP
// account name): the same refusals of what cannot be stored or seen, but a
// plain one (no email or phone number) keeps any letters and symbols, as
// "Zoë O’Brien 🎉" is a fine name, and may mix scripts.
func canonicalName(value, format string) (string, error) {
	return canonical(value, format, normalizeName)
}

func canonical(value, format string, plain func(string) (string, error)) (string, error) {
	if len(value) > MaxIdentifierBytes {
		return "", fmt.Errorf("must be at most %d bytes long (got %d)", MaxIdentifierBytes, len(value))
	}
	if !utf8.ValidString(value) {
		return "", errors.New("must be valid UTF-8")
	}
	value = strings.TrimSpace(value)
	if value == "" {
		return "", nil
	}
	if err := checkRunes(value); err != nil {
		return "", err
	}
	step := plain
	switch format {
	case "email", "idn-email":
		step = normalizeEmail
	case "tel":
		step = func(s string) (string, error) { return normalizeTel(s, plain) }
	}
	// A fixed point, so that a stored form normalises to itself: one step of
	// NFKC and case mapping is not always idempotent (PRECIS repeats too).
	out := value
	for range 4 {
		next, err := step(out)
		if err != nil {
			return "", err
		}
		if next == out {
			if len(out) > MaxIdentifierBytes {
				return "", fmt.Errorf("must be at most %d bytes long once normalised (got %d)", MaxIdentifierBytes, len(out))
			}
			// No mapping may bring in what the input could not hold.
			if err := checkRunes(out); err != nil {
				return "", err
			}
			return out, nil
		}
		out = next
	}
	return "", errors.New("cannot be normalised to a stable form")
}

// NormalizeAddress returns the stored form of value as an address on
// channel via ("email" or "sms"), normalised as the traits' addresses are
// (see CanonicalIdentifier with the channel's format: emails lower-cased,
// phone numbers in E.164), and whether value is a valid address of that
// channel (an email address; a phone number with + and the country code).
// A value that is not one still has a stored form, as a trait whose format
// is "no-validate" makes it an address. The error says why value cannot be
// an address at all (it is blank, cannot be stored or seen, or via is no
// channel); its message reads after the field's name.
func NormalizeAddress(value, via string) (string, bool, error) {
	format, ok := channelFormats[via]
	if !ok {
		return "", false, fmt.Errorf(`must be "email" or "sms" (got %q)`, via)
	}
	out, err := CanonicalIdentifier(value, format)
	if err != nil {
		return "", false, err
	}
	if out == "" {
		return "", false, errors.New("must not be empty")
	}
	checks, err := channelChecks()
	if err != nil {
		return "", false, err
	}
	return out, checks[via].Validate(strings.TrimSpace(value)) == nil, nil
}

// NormalizeIdentifier is CanonicalIdentifier without the reason: the stored
// form, or "" when value cannot be an identifier (Validate reports why).
func NormalizeIdentifier(value, format string) string {
	out, err := CanonicalIdentifier(value, format)
	if err != nil {
		return ""
	}
	return out
}

// LoginCandidates returns the normalised forms under which a login
// identifier typed by a user may be stored, most likely first: as a username
// (the form the identifier takes when it was typed as stored), as an email
// address, then as E.164 when it parses as a phone number with a leading +.
// Login does not know which trait the user meant, so it looks up each form
// and takes the first that exists. The last form is the most normalised one
// (session throttling keys on it).
//
// The result has no duplicates and is empty for a blank identifier and for
// one that cannot be stored: longer than MaxIdentifierBytes (refused before
// any other work, so a huge identifier costs nothing), or holding a control
// or invisible character, or refused by every format.
func LoginCandidates(identifier string) []string {
	if len(identifier) > MaxIdentifierBytes {
		return nil
	}
	var out []string
	for _, format := range []string{"", "email", "tel"} {
		if format == "email" && !strings.Contains(identifier, "@") {
			continue // every stored address passed the email format check
		}
		if c, err := CanonicalIdentifier(identifier, format); err == nil && c != "" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// LegacyIdentifier returns the form identifiers were stored in before
// CanonicalIdentifier (trimmed and lower-cased, nothing else), or "" when it
// cannot have been stored (too long, or holding a control character). It
// differs from the canonical form only for non-ASCII input and runs of
// spaces: login looks it up after the canonical forms, so that an identity
// stored before keeps signing in until its traits are written again.
func LegacyIdentifier(identifier string) string {
	if len(identifier) > MaxIdentifierBytes || !utf8.ValidString(identifier) {
		return ""
	}
	out := strings.ToLower(strings.TrimSpace(identifier))
	if strings.ContainsFunc(out, unicode.IsControl) {
		return ""
	}
	return out
}

// normalizeEmail maps an address: NFKC, lower case, and the script rule
// for the local part and for each label of the domain.
func normalizeEmail(s string) (string, error) {
	s = strings.ToLower(norm.NFKC.String(strings.TrimSpace(s)))
	at := strings.LastIndexByte(s, '@')
	if at < 0 { // not an address: the format check says so
		return s, checkScripts(s, "")
	}
	local, domain := s[:at], s[at+1:]
	if err := checkScripts(local, "the local part"); err != nil {
		return "", err
	}
	for label := range strings.SplitSeq(domain, ".") {
		if err := checkScripts(label, "a domain label"); err != nil {
			return "", err
		}
	}
	return s, nil
}

// normalizeTel maps a phone number to E.164, or anything else with plain.
func normalizeTel(s string, plain func(string) (string, error)) (string, error) {
	if n, err := parsePhone(norm.NFKC.String(s)); err == nil {
		return phonenumbers.Format(n, phonenumbers.E164), nil
	}
	return plain(s)
}

// normalizeName maps a name: NFKC, lower case, one U+0020 between words.
func normalizeName(s string) (string, error) {
	s = strings.ToLower(norm.NFKC.String(s))
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.Is(unicode.Zs, r) }), " "), nil
}

// normalizeUsername maps a username: NFKC (so compatibility characters such
// as ligatures and superscripts map to their plain forms, where PRECIS would
// refuse them), one U+0020 between words, PRECIS UsernameCaseMapped on each
// word, and the script rule on the whole.
func normalizeUsername(s string) (string, error) {
	s = norm.NFKC.String(s)
	words := strings.FieldsFunc(s, func(r rune) bool { return unicode.Is(unicode.Zs, r) })
	for i, w := range words {
		out, err := precis.UsernameCaseMapped.String(w)
		if err != nil {
			return "", precisError(w, err)
		}
		words[i] = out
	}
	s = strings.Join(words, " ")
	if err := checkScripts(s, ""); err != nil {
		return "", err
	}
	return s, nil
}

// precisError says in words why PRECIS refused word, whose own errors name
// no character.
func precisError(word string, err error) error {
	allowed := precis.UsernameCaseMapped.Allowed()
	for _, r := range word {
		if !allowed.Contains(r) {
			return fmt.Errorf("must not contain %s: only letters, digits, ASCII punctuation and symbols, and spaces between words are allowed", describe(r))
		}
	}
	if errors.Is(err, bidirule.ErrInvalid) {
		return errors.New("mixes right-to-left and left-to-right text in a way that can display misleadingly")
	}
	return errors.New("uses a joining or punctuation character where its neighbours do not allow it")
}

// checkRunes refuses what cannot be stored or seen.
func checkRunes(s string) error {
	at := 0
	for _, r := range s {
		at++
		switch {
		case r < utf8.RuneSelf && ' ' <= r && r < 0x7f:
			// printable ASCII: the common case, and all allowed here
		case unicode.IsControl(r):
			return fmt.Errorf("must not contain control characters (%s at character %d)", describe(r), at)
		case isInvisible(r):
			return fmt.Errorf("must not contain invisible characters (%s at character %d)", describe(r), at)
		case unicode.In(r, unicode.Zl, unicode.Zp):
			return fmt.Errorf("must not contain line breaks (%s at character %d)", describe(r), at)
		case r == utf8.RuneError || unicode.Is(unicode.Co, r) || unicode.Is(unicode.Noncharacter_Code_Point, r) || !isAssigned(r):
			return fmt.Errorf("must not contain unassigned, private-use or replacement characters (%s at character %d)", describe(r), at)
		}
	}
	return nil
}

// isInvisible reports the default-ignorable code points: format characters
// (zero-width spaces and joiners, bidi controls, the byte order mark, the
// soft hyphen …), variation selectors, Hangul fillers and their kin. They
// render as nothing, so "alice" and "alice\u200b" would look the same.
func isInvisible(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// isAssigned reports whether r has a character in this Unicode version:
// the meaning, and normalisation, of an unassigned one may change.
func isAssigned(r rune) bool {
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C)
}

// describe names r for a message: U+200B, and the character itself when it
// is visible.
func describe(r rune) string {
	if unicode.IsGraphic(r) && !unicode.IsSpace(r) && !unicode.Is(unicode.M, r) && !isInvisible(r) {
		return fmt.Sprintf("U+%04X %q", r, r)
	}
	return fmt.Sprintf("U+%04X", r)
}
