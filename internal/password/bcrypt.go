package password

import (
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// bcryptMaxPassword is where bcrypt stops reading: later bytes do not change
// the hash.
const bcryptMaxPassword = 72

// bcryptHash is a modular-crypt bcrypt hash, "$2b$<cost>$<22 salt><31 hash>".
type bcryptHash struct {
	// encoded is the hash with "$2y$" (PHP's name for the same algorithm)
	// rewritten to "$2a$", so that x/crypto/bcrypt never has to know it.
	encoded []byte
}

func (h *bcryptHash) algorithm() string { return "bcrypt" }

// memory is 0: bcrypt's state is a few KiB, nothing worth collecting for.
func (h *bcryptHash) memory() uint64 { return 0 }

// verify is false for passwords longer than 72 bytes: bcrypt would ignore
// the rest, so a long password and every other one with the same first 72
// bytes would match (Kratos refuses them too). It still runs the comparison
// on the first 72 bytes, so that such a password costs the same time as any
// other wrong one.
func (h *bcryptHash) verify(password []byte) bool {
	tooLong := len(password) > bcryptMaxPassword
	if tooLong {
		password = password[:bcryptMaxPassword]
	}
	ok := bcrypt.CompareHashAndPassword(h.encoded, password) == nil
	return ok && !tooLong
}

// bcryptAlphabet is bcrypt's own base64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// parseBcrypt checks the shape x/crypto/bcrypt only partly checks (it reads
// any length past 59 bytes and any minor version), so that Recognise and
// Compare agree on what a valid hash is. Its cost is bounded by
// maxBcryptCost; nothing else about bcrypt grows.
func parseBcrypt(s string, _ limits) (parsedHash, error) {
	// "$2b$" + 2-digit cost + "$" + 53 characters.
	if len(s) != 60 || s[6] != '$' {
		return nil, malformed("expected $2a$, $2b$ or $2y$, a two-digit cost, $ and 53 characters")
	}
	cost, err := strconv.Atoi(s[4:6])
	if err != nil || s[4] == '+' || s[4] == '-' {
		return nil, malformed("cost must be two digits")
	}
	if cost < bcrypt.MinCost || cost > maxBcryptCost {
		return nil, malformed("cost %d is outside %d to %d", cost, bcrypt.MinCost, maxBcryptCost)
	}
	if strings.Trim(s[7:], bcryptAlphabet) != "" {
		return nil, malformed("salt and hash must use bcrypt's base64 alphabet")
	}
	enc := []byte(s)
	if s[2] == 'y' {
		enc[2] = 'a'
	}
	return &bcryptHash{encoded: enc}, nil
}
