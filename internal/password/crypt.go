package password

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"strings"

	xcrypt "github.com/go-crypt/x/crypt"
)

// The crypt(3) family: md5-crypt ("$1$") and Drepper's sha256-crypt ("$5$")
// and sha512-crypt ("$6$"), the hashes of /etc/shadow, LDAP {CRYPT} values
// and many PHP applications. Kratos accepts them as "$md5-crypt$",
// "$sha256-crypt$" and "$sha512-crypt$" and rewrites those to the crypt(3)
// prefixes before comparing; both spellings are read here.
//
// The key derivations are github.com/go-crypt/x's (package crypt), the
// library Kratos compares these hashes with (through go-crypt/crypt), so both
// agree on every hash; it is maintained, and it exposes the derivation
// itself, so the parse below stays the one judge of what a valid
// hash is (a library's own parser, such as GehirnInc/crypt's Verify, would
// clamp rounds and truncate salts where this one refuses) and the comparison
// is this package's, in constant time.

// cryptVariant is one member of the family.
type cryptVariant struct {
	name string
	// maxSalt is how many salt characters the algorithm reads: longer salts
	// are cut there by crypt(3), so no hash it wrote has one.
	maxSalt int
	// keyChars is the length of the key in crypt's base64; lastBits is how
	// many bits its last character carries (the rest must be zero, so that
	// a key has one spelling).
	keyChars, lastBits int
	// rounds tells whether "rounds=N$" may precede the salt.
	rounds bool
	// derive returns the key for password in crypt's base64.
	derive func(password, salt []byte, rounds int) []byte
}

var (
	md5Crypt = &cryptVariant{name: "md5-crypt", maxSalt: 8, keyChars: 22, lastBits: 2,
		derive: func(password, salt []byte, _ int) []byte { return xcrypt.KeyMD5Crypt(password, salt) }}
	sha256Crypt = &cryptVariant{name: "sha256-crypt", maxSalt: 16, keyChars: 43, lastBits: 4, rounds: true,
		derive: func(password, salt []byte, rounds int) []byte {
			return xcrypt.KeySHACrypt(sha256.New, password, salt, rounds)
		}}
	sha512Crypt = &cryptVariant{name: "sha512-crypt", maxSalt: 16, keyChars: 86, lastBits: 2, rounds: true,
		derive: func(password, salt []byte, rounds int) []byte {
			return xcrypt.KeySHACrypt(sha512.New, password, salt, rounds)
		}}
)

// shaCryptDefaultRounds is the rounds of a sha-crypt hash without rounds=.
const shaCryptDefaultRounds = 5000

// cryptAlphabet is crypt(3)'s base64 alphabet, in the order of its values.
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// cryptHash is a decoded md5-crypt, sha256-crypt or sha512-crypt hash.
type cryptHash struct {
	variant *cryptVariant
	rounds  int
	salt    []byte
	key     []byte // in crypt's base64, as written
}

func (h *cryptHash) algorithm() string { return h.variant.name }

// memory is 0: the derivations hold a few digests and two copies of the
// password.
func (h *cryptHash) memory() uint64 { return 0 }

// verify is false for a password longer than maxCryptPassword, which no
// crypt(3) of today accepts, after deriving from its first
// maxCryptPassword bytes so that it costs what another wrong one does.
func (h *cryptHash) verify(password []byte) bool {
	tooLong := len(password) > maxCryptPassword
	if tooLong {
		password = password[:maxCryptPassword]
	}
	ok := subtle.ConstantTimeCompare(h.variant.derive(password, h.salt, h.rounds), h.key) == 1
	return ok && !tooLong
}

// parse decodes "<prefix>[rounds=<N>$]<salt>$<key>", the prefix being the
// crypt(3) one ("$1$", "$5$", "$6$") or Kratos's ("$md5-crypt$", …). The
// salt may be empty (crypt(3) allows it, and Kratos's tests have one).
func (v *cryptVariant) parse(s string, _ limits) (parsedHash, error) {
	layout := "$<salt>$<hash>"
	if v.rounds {
		layout = "$[rounds=<N>$]<salt>$<hash>"
	}
	// Every prefix of the family is "$<id>$": drop it.
	rest := s[strings.IndexByte(s[1:], '$')+2:]
	parts := strings.Split(rest, "$")
	h := &cryptHash{variant: v, rounds: shaCryptDefaultRounds}
	if len(parts) == 3 && v.rounds && strings.HasPrefix(parts[0], "rounds=") {
		vals, err := parseParams(parts[0], "rounds")
		if err != nil {
			return nil, err
		}
		if vals[0] < minShaCryptRounds || vals[0] > maxShaCryptRounds {
			return nil, malformed("rounds of %d is outside %d to %d", vals[0], minShaCryptRounds, maxShaCryptRounds)
		}
		h.rounds = int(vals[0])
		parts = parts[1:]
	}
	if len(parts) != 2 {
		return nil, malformed("expected %s after the prefix", layout)
	}
	salt, key := parts[0], parts[1]
	if len(salt) > v.maxSalt || strings.Trim(salt, cryptAlphabet) != "" {
		return nil, malformed("salt must be at most %d characters of crypt's alphabet ./0-9A-Za-z", v.maxSalt)
	}
	if len(key) != v.keyChars || strings.Trim(key, cryptAlphabet) != "" {
		return nil, malformed("hash must be %d characters of crypt's alphabet ./0-9A-Za-z", v.keyChars)
	}
	if strings.IndexByte(cryptAlphabet, key[len(key)-1]) >= 1<<v.lastBits {
		return nil, malformed("hash has bits set past its end (its last character is not canonical)")
	}
	h.salt, h.key = []byte(salt), []byte(key)
	return h, nil
}
