package password

import (
	"crypto/pbkdf2"
	"crypto/sha1" //nolint:gosec // only to read imported hashes
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/subtle"
	"hash"
	"strings"
)

// pbkdf2Digests are the PRFs Kratos uses for "$pbkdf2-<digest>$". Kratos maps
// sha224 and sha384 to SHA-3 (not SHA-2), so hashes it wrote with those names
// are SHA-3 ones and are read the same way here. Kratos falls back to SHA-256
// for any other name; here another name is refused instead of guessed.
var pbkdf2Digests = map[string]func() hash.Hash{
	"sha1":   sha1.New,
	"sha224": func() hash.Hash { return sha3.New224() },
	"sha256": sha256.New,
	"sha384": func() hash.Hash { return sha3.New384() },
	"sha512": sha512.New,
}

// pbkdf2Hash is Kratos's PBKDF2 format.
type pbkdf2Hash struct {
	digest     func() hash.Hash
	iterations int
	salt, key  []byte
}

func (h *pbkdf2Hash) algorithm() string { return "pbkdf2" }

// memory is 0: PBKDF2 needs only a few hash states.
func (h *pbkdf2Hash) memory() uint64 { return 0 }

func (h *pbkdf2Hash) verify(password []byte) bool {
	got, err := pbkdf2.Key(h.digest, string(password), h.salt, h.iterations, len(h.key))
	// Key fails only where FIPS 140-only mode forbids the digest or sizes;
	// such a hash cannot match here.
	return err == nil && subtle.ConstantTimeCompare(got, h.key) == 1
}

// parsePbkdf2 decodes "$pbkdf2-<digest>$i=<iterations>,l=<key length>$<salt>$<key>"
// with unpadded standard base64, as Kratos writes it. Kratos ignores l and
// uses the decoded key's length; here the two must agree, since a mismatch
// means the hash was damaged.
func parsePbkdf2(s string) (*pbkdf2Hash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 || parts[0] != "" {
		return nil, malformed("expected $pbkdf2-<digest>$i=…,l=…$salt$hash")
	}
	name := strings.TrimPrefix(parts[1], "pbkdf2-")
	newDigest, ok := pbkdf2Digests[name]
	if !ok {
		return nil, malformed("digest must be one of sha1, sha224, sha256, sha384, sha512")
	}
	vals, err := parseParams(parts[2], "i", "l")
	if err != nil {
		return nil, err
	}
	iter, keyLen := vals[0], vals[1]
	h := &pbkdf2Hash{digest: newDigest, iterations: int(iter)}
	if h.salt, err = decodeBase64(parts[3], "salt"); err != nil {
		return nil, err
	}
	if h.key, err = decodeBase64(parts[4], "hash"); err != nil {
		return nil, err
	}
	if err := checkKeyLength(len(h.key)); err != nil {
		return nil, err
	}
	if uint64(len(h.key)) != keyLen {
		return nil, malformed("key length (l) does not match the hash")
	}
	// PBKDF2 runs all its iterations once per digest-sized block of output.
	size := uint64(newDigest().Size())
	blocks := (keyLen + size - 1) / size
	switch {
	case iter < 1:
		return nil, malformed("iterations (i) must be at least 1")
	case iter*blocks > maxPbkdf2Work:
		return nil, malformed("iterations × output blocks of %d is above the limit of %d", iter*blocks, maxPbkdf2Work)
	}
	return h, nil
}
