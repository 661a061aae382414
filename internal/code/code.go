// Package code is one-time codes: made from crypto/rand, stored only as a
// keyed hash, checked once, with an expiry and a bounded number of wrong
// attempts. Verification, recovery, invitations and passwordless login all
// use it, so the rules live in one place.
//
// Short codes (6 digits by default) go to an address by email or SMS and are
// found again by that address; with a million values they are only safe
// because each code allows few attempts and expires. Long codes (26
// characters of Crockford's base32, 130 bits) are handed over by an admin or
// mailed as invitations and are found by their hash: nobody guesses them.
//
// A code is stored as HMAC-SHA256 under a server secret (secrets.default), of
// its purpose, its address and the code, so a copy of the database does not
// give 6-digit codes away by brute force, and a code cannot be moved to
// another address or purpose. Secrets rotate as Kratos's do: the first signs
// new codes, every one is tried on a check.
package code

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// Defaults of Config.
const (
	DefaultDigits      = 6
	DefaultMaxAttempts = 5
)

// MinSecretBytes is the shortest secret accepted: a key shorter than the
// hash's security adds nothing and a typo ("x") would be silently weak.
const MinSecretBytes = 16

// longAlphabet is Crockford's base32: no I, L, O or U, so a code read out on
// the phone is not misheard, and URL-safe as it is.
const longAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// longLength is the characters of a long code: 26 × 5 = 130 bits.
const longLength = 26

// Config tunes codes.
type Config struct {
	// Secrets key the hashes; the first signs new codes, all are tried on a
	// check. At least one, each at least MinSecretBytes long.
	Secrets []string
	// Digits is the length of a short code (6 when zero).
	Digits int
	// MaxAttempts is how many times a short code may be tried before it is
	// dead (5 when zero).
	MaxAttempts int
}

// Codes makes and checks codes. It is safe for concurrent use.
type Codes struct {
	secrets     [][]byte
	digits      int
	maxAttempts int
	random      io.Reader
}

// New returns Codes; random is crypto/rand.Reader in production.
func New(cfg Config, random io.Reader) (*Codes, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("codes need at least one secret")
	}
	c := &Codes{digits: cfg.Digits, maxAttempts: cfg.MaxAttempts, random: random}
	if c.digits == 0 {
		c.digits = DefaultDigits
	}
	if c.maxAttempts == 0 {
		c.maxAttempts = DefaultMaxAttempts
	}
	if c.digits < 6 || c.digits > 12 {
		return nil, fmt.Errorf("a code needs 6 to 12 digits, not %d", c.digits)
	}
	if c.maxAttempts < 1 {
		return nil, fmt.Errorf("a code needs at least 1 attempt, not %d", c.maxAttempts)
	}
	for i, s := range cfg.Secrets {
		if len(s) < MinSecretBytes {
			return nil, fmt.Errorf("secret %d is shorter than %d bytes", i, MinSecretBytes)
		}
		c.secrets = append(c.secrets, []byte(s))
	}
	return c, nil
}

// MaxAttempts is how many times a short code may be tried.
func (c *Codes) MaxAttempts() int { return c.maxAttempts }

// short makes a code of c.digits decimal digits. Each digit comes from one
// random byte below 250 (bytes from 250 up are drawn again), so every digit
// is equally likely: a plain byte % 10 would favour 0–5.
func (c *Codes) short() (string, error) {
	out := make([]byte, 0, c.digits)
	var buf [32]byte
	for len(out) < c.digits {
		if _, err := io.ReadFull(c.random, buf[:]); err != nil {
			return "", fmt.Errorf("code: %w", err)
		}
		for _, b := range buf {
			if b < 250 && len(out) < c.digits {
				out = append(out, '0'+b%10)
			}
		}
	}
	return string(out), nil
}

// long makes a code of longLength characters of longAlphabet, five random
// bits each (32 divides 256, so byte & 31 is unbiased).
func (c *Codes) long() (string, error) {
	var buf [longLength]byte
	if _, err := io.ReadFull(c.random, buf[:]); err != nil {
		return "", fmt.Errorf("code: %w", err)
	}
	for i, b := range buf {
		buf[i] = longAlphabet[b&31]
	}
	return string(buf[:]), nil
}

// normalizeShort takes a short code as typed: spaces and dashes (a code
// written "123 456") do not count.
func normalizeShort(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}

// normalizeLong takes a long code as typed: case, spaces and dashes do not
// count, and the letters Crockford reads as digits (O, I, L) are those
// digits.
func normalizeLong(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-':
			return -1
		case 'o', 'O':
			return '0'
		case 'i', 'I', 'l', 'L':
			return '1'
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, strings.TrimSpace(s))
}

// IsLong tells whether a code as typed has the form of a long code (an
// admin-issued recovery code or an invitation) rather than a short one.
func IsLong(s string) bool {
	n := normalizeLong(s)
	if len(n) != longLength {
		return false
	}
	for i := range len(n) {
		if !strings.ContainsRune(longAlphabet, rune(n[i])) {
			return false
		}
	}
	return true
}

// mac is HMAC-SHA256 under secret of the parts, each length-prefixed so no
// two different part lists hash alike.
func mac(secret []byte, parts ...string) []byte {
	h := hmac.New(sha256.New, secret)
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return h.Sum(nil)
}

// shortParts and longParts are what a code's hash covers: a short code is
// bound to its purpose and address; a long code, found by its hash alone, to
// its purpose.
func shortParts(purpose, address, code string) []string {
	return []string{"identityd short code", purpose, address, normalizeShort(code)}
}

func longParts(purpose, code string) []string {
	return []string{"identityd long code", purpose, normalizeLong(code)}
}

// candidates are the hashes a code would have under each secret.
func (c *Codes) candidates(parts []string) [][]byte {
	out := make([][]byte, len(c.secrets))
	for i, s := range c.secrets {
		out[i] = mac(s, parts...)
	}
	return out
}

// Target is where a code goes and whose it is.
type Target struct {
	IdentityID uuid.UUID
	// Via and Address are empty for a code an admin hands over.
	Via, Address string
}

// Short makes a short code of purpose for target, valid for lifespan from
// now, and returns the code (to put in a message, never to store) and its
// row.
func (c *Codes) Short(purpose string, t Target, lifespan time.Duration, now time.Time) (string, *db.Code, error) {
	plain, err := c.short()
	if err != nil {
		return "", nil, err
	}
	return plain, c.row(purpose, t, false, mac(c.secrets[0], shortParts(purpose, t.Address, plain)...), lifespan, now), nil
}

// Long makes a long code of purpose for target, valid for lifespan from now.
func (c *Codes) Long(purpose string, t Target, lifespan time.Duration, now time.Time) (string, *db.Code, error) {
	plain, err := c.long()
	if err != nil {
		return "", nil, err
	}
	return plain, c.row(purpose, t, true, mac(c.secrets[0], longParts(purpose, plain)...), lifespan, now), nil
}

func (c *Codes) row(purpose string, t Target, long bool, hash []byte, lifespan time.Duration, now time.Time) *db.Code {
	now = now.UTC().Truncate(time.Microsecond)
	return &db.Code{ID: uuid.Must(uuid.NewV7()), Purpose: purpose, IdentityID: t.IdentityID, Via: t.Via, Address: t.Address,
		Long: long, Hash: hash, ExpiresAt: now.Add(lifespan), CreatedAt: now}
}

// ErrInvalid is the one answer for a code that is wrong, used, expired or
// dead: which of them it was is never told.
func ErrInvalid() error {
	return &model.Error{Code: model.CodeInvalidCode, Path: "/code", Message: "the code is wrong, used or expired: ask for a new one"}
}

// CheckShort checks a short code of purpose typed for one of addresses (the
// forms the address typed may be stored in): an attempt is charged to every
// live code of the address first (so concurrent guesses cannot exceed
// MaxAttempts), then the code is compared with each in constant time. It
// returns the code that matched, still unused (the caller uses it up in the
// transaction that does what it is for), or INVALID_CODE.
func (c *Codes) CheckShort(ctx context.Context, store *db.DB, purpose string, addresses []string, code string, now time.Time) (*db.Code, error) {
	if normalizeShort(code) == "" || len(code) > 64 {
		return nil, ErrInvalid()
	}
	live, err := store.ReserveCodeAttempt(ctx, purpose, addresses, now, c.maxAttempts)
	if err != nil {
		return nil, err
	}
	// Each row is compared with the hashes the code would have for its own
	// address, every row and every secret, without stopping at a match.
	byAddress := map[string][][]byte{}
	var found *db.Code
	for _, row := range live {
		cands, ok := byAddress[row.Address]
		if !ok {
			cands = c.candidates(shortParts(purpose, row.Address, code))
			byAddress[row.Address] = cands
		}
		if m := db.MatchCode([]*db.Code{row}, cands); m != nil && found == nil {
			found = m
		}
	}
	if found == nil {
		return nil, ErrInvalid()
	}
	return found, nil
}

// CheckLong finds the live long code of one of purposes that code is; it
// returns it unused, or INVALID_CODE.
func (c *Codes) CheckLong(ctx context.Context, store *db.DB, purposes []string, code string, now time.Time) (*db.Code, error) {
	if !IsLong(code) {
		return nil, ErrInvalid()
	}
	var cands [][]byte
	for _, p := range purposes {
		cands = append(cands, c.candidates(longParts(p, code))...)
	}
	found, err := store.FindLongCode(ctx, purposes, cands, now)
	if err != nil {
		return nil, err
	}
	// The index found it by one candidate; compare again in constant time
	// against this row's own purpose, so a row is only ever taken for the
	// purpose its hash was made for.
	if db.MatchCode([]*db.Code{found}, c.candidates(longParts(found.Purpose, code))) == nil {
		return nil, ErrInvalid()
	}
	return found, nil
}
