package password

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// firescryptHash is a Firebase Authentication scrypt hash in Kratos's layout.
//
// Firebase's variant (published as github.com/firebase/scrypt) derives a
// 32-byte key with standard scrypt from the password and the user's salt
// followed by the project's salt separator, with N = 2^mem_cost, r = rounds
// and p = 1, and uses it as an AES-256 key to encrypt the project's signer
// key in CTR mode with an all-zero IV; the ciphertext is the stored hash.
// Kratos builds it from the same two parts, x/crypto/scrypt and crypto/aes;
// it is a few lines, so it is written here rather than taken from a small
// third-party module.
type firescryptHash struct {
	n, r, p         int
	salt, separator []byte
	signerKey, hash []byte // of equal length
}

func (h *firescryptHash) algorithm() string { return "firescrypt" }

// memory is scrypt's, as for scryptHash.
func (h *firescryptHash) memory() uint64 {
	return scryptMemory(uint64(h.n), uint64(h.r), uint64(h.p))
}

// firescryptKeyLength is the derived key's length: AES-256.
const firescryptKeyLength = 32

func (h *firescryptHash) verify(password []byte) bool {
	salt := make([]byte, 0, len(h.salt)+len(h.separator))
	salt = append(append(salt, h.salt...), h.separator...)
	key, err := scrypt.Key(password, salt, h.n, h.r, h.p, firescryptKeyLength)
	if err != nil {
		// parseFirescrypt has checked everything scrypt.Key checks.
		return false
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return false // a 32-byte key is always valid
	}
	got := make([]byte, len(h.signerKey))
	cipher.NewCTR(block, make([]byte, aes.BlockSize)).XORKeyStream(got, h.signerKey)
	return subtle.ConstantTimeCompare(got, h.hash) == 1
}

// parseFirescrypt decodes Kratos's layout of a Firebase export,
// "$firescrypt$ln=<mem_cost>,r=<rounds>,p=<parallelism>$<salt>$<hash>$<salt separator>$<signer key>",
// all in standard base64 (padded, as Firebase exports it, or not). Unlike
// $scrypt$, ln here is the log2 of N, as Firebase's mem_cost is. Its memory
// and work are held to the scrypt limits.
func parseFirescrypt(s string, _ limits) (parsedHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 7 || parts[0] != "" {
		return nil, malformed("expected $firescrypt$ln=…,r=…,p=…$salt$hash$salt separator$signer key")
	}
	vals, err := parseParams(parts[2], "ln", "r", "p")
	if err != nil {
		return nil, err
	}
	logN, r, p := vals[0], vals[1], vals[2]
	if logN < 1 || logN > maxFirescryptLogN {
		return nil, malformed("memory cost (ln) of %d is outside 1 to %d (Firebase's mem_cost, the log2 of N)", logN, maxFirescryptLogN)
	}
	n := uint64(1) << logN
	if err := checkScryptCost(n, r, p); err != nil {
		return nil, err
	}
	h := &firescryptHash{n: int(n), r: int(r), p: int(p)}
	if h.salt, err = decodeBase64(parts[3], "salt"); err != nil {
		return nil, err
	}
	if h.hash, err = decodeBase64(parts[4], "hash"); err != nil {
		return nil, err
	}
	if h.separator, err = decodeBase64Empty(parts[5], "salt separator"); err != nil {
		return nil, err
	}
	if h.signerKey, err = decodeBase64(parts[6], "signer key"); err != nil {
		return nil, err
	}
	if err := checkKeyLength(len(h.hash)); err != nil {
		return nil, err
	}
	// The hash is the signer key encrypted in CTR mode, so it has the
	// signer key's length; any other could never match.
	if len(h.hash) != len(h.signerKey) {
		return nil, malformed("hash must be as long as the signer key")
	}
	return h, nil
}
