package mfa

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/google/uuid"
)

// LookupCodeCount is how many lookup codes a set holds: Kratos gives 12.
const LookupCodeCount = 12

// lookupAlphabet is Crockford's base32 in lower case: no i, l, o or u, so a
// code copied from paper is not misread. 32 letters, so a random byte's low
// five bits pick one without bias.
const lookupAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// lookupCodeLength is the characters of a code: 10 × 5 = 50 bits, beyond
// guessing when each code is tried under the login throttle.
const lookupCodeLength = 10

// minLookupSecretBytes is the shortest secret keying the hashes: the floor
// secrets.default is held to (code.MinSecretBytes), repeated so that a typo
// in a test or a caller is not silently weak.
const minLookupSecretBytes = 16

// lookupDomain starts every MAC, so that the same secrets.default keying other
// hashes (one-time codes) never produces one of these.
const lookupDomain = "identityd lookup\x00"

// NewLookupCodes returns LookupCodeCount fresh codes from random, each 10
// characters of lower-case Crockford base32 written "xxxxx-xxxxx" for the
// user to copy. They are shown once; only their hashes are kept. A random
// source that gives the same code twice is broken, and is an error.
func NewLookupCodes(random io.Reader) ([]string, error) {
	if random == nil {
		return nil, errors.New("lookup codes: no random source")
	}
	raw := make([]byte, LookupCodeCount*lookupCodeLength)
	if _, err := io.ReadFull(random, raw); err != nil {
		return nil, fmt.Errorf("lookup codes: reading random: %w", err)
	}
	codes := make([]string, 0, LookupCodeCount)
	seen := make(map[string]bool, LookupCodeCount)
	for i := range LookupCodeCount {
		var b strings.Builder
		for j, r := range raw[i*lookupCodeLength : (i+1)*lookupCodeLength] {
			if j == lookupCodeLength/2 {
				b.WriteByte('-')
			}
			b.WriteByte(lookupAlphabet[r&31])
		}
		code := b.String()
		if seen[code] {
			return nil, errors.New("lookup codes: the random source gave the same code twice")
		}
		seen[code] = true
		codes = append(codes, code)
	}
	return codes, nil
}

// NormalizeLookupCode returns the form a code is hashed in: lower case, with
// spaces and hyphens removed, so that "ABCDE-FGHIJ", "abcde fghij" and
// "abcdefghij" are one code. Imported codes (Kratos's are 8 characters of
// [a-z0-9]) go through it too. Crockford's look-alikes (o for 0, i and l for
// 1) are not folded: imported codes use those letters as themselves.
func NormalizeLookupCode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// LookupHasher turns lookup codes into what is stored: HMAC-SHA256 keyed by
// the server's secrets (secrets.default), so that a copy of the database
// gives no code away, not even by trying all 2^50. The first secret hashes
// new codes, every one is tried on a check, so secrets rotate as Kratos's do.
// The identity's id is part of the MAC, so a hash moved to another identity
// matches nothing.
type LookupHasher struct {
	keys [][]byte
}

// NewLookupHasher keys a hasher with secrets: at least one, each at least 16
// bytes (the floor secrets.default is held to).
func NewLookupHasher(secrets []string) (*LookupHasher, error) {
	if len(secrets) == 0 {
		return nil, errors.New("lookup hasher: no secret is configured")
	}
	h := &LookupHasher{}
	for i, s := range secrets {
		if len(s) < minLookupSecretBytes {
			return nil, fmt.Errorf("lookup hasher: secret %d: too short (%d bytes, at least %d)", i, len(s), minLookupSecretBytes)
		}
		h.keys = append(h.keys, []byte(s))
	}
	return h, nil
}

// Hash returns the unpadded base64url of
// HMAC-SHA256(first secret, "identityd lookup\x00" + identityID + "\x00" +
// NormalizeLookupCode(code)), the id in its canonical text form.
func (h *LookupHasher) Hash(identityID uuid.UUID, code string) string {
	return base64.RawURLEncoding.EncodeToString(lookupMAC(h.keys[0], identityID, NormalizeLookupCode(code)))
}

// Match returns the index in hashes of the one code matches for identityID,
// under any secret, or -1. Every hash is compared under every secret in
// constant time, with no early return on a match, so the time taken tells
// neither whether nor where the code matched. A hash that is not base64url
// matches nothing; an empty code matches nothing.
func (h *LookupHasher) Match(identityID uuid.UUID, code string, hashes []string) int {
	code = NormalizeLookupCode(code)
	if code == "" {
		return -1
	}
	stored := make([][]byte, len(hashes))
	for i, s := range hashes {
		stored[i], _ = base64.RawURLEncoding.DecodeString(s) // nil on error: matches nothing
	}
	match := -1
	for _, key := range h.keys {
		sum := lookupMAC(key, identityID, code)
		for i, want := range stored {
			eq := subtle.ConstantTimeCompare(sum, want)
			unset := subtle.ConstantTimeEq(int32(match), -1)
			match = subtle.ConstantTimeSelect(eq&unset, i, match)
		}
	}
	return match
}

// lookupMAC is the MAC of one normalised code of one identity under key.
func lookupMAC(key []byte, identityID uuid.UUID, code string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(lookupDomain))
	m.Write([]byte(identityID.String()))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}
