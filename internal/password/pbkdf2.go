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
//
// weight is what one HMAC iteration costs against one of HMAC-SHA-1, rounded
// up, so that maxPbkdf2Work is the same few seconds whatever the digest:
// measured, an iteration takes 350 ns with SHA-1, 490 ns with SHA-512,
// 660 ns with SHA3-384 and 1.3 µs with SHA3-224. SHA-256 took 160 ns, but
// only thanks to the CPU's SHA extensions, so it is weighed like SHA-1.
var pbkdf2Digests = map[string]struct {
	new    func() hash.Hash
	weight uint64
}{
	"sha1":   {sha1.New, 1},
	"sha224": {func() hash.Hash { return sha3.New224() }, 4},
	"sha256": {sha256.New, 1},
	"sha384": {func() hash.Hash { return sha3.New384() }, 2},
	"sha512": {sha512.New, 2},
}

// pbkdf2Hash is Kratos's PBKDF2 format.
type pbkdf2Hash struct {
	digest     func() hash.Hash
	iterations int
	salt, key  []byte
}

func (h *pbkdf2Hash) algorithm() string { return "pbkdf2" }

// memory is 0: PBKDF2 needs a few hash states, under 2 KiB whatever the
// parameters.
func (h *pbkdf2Hash) memory() uint64 { return 0 }

func (h *pbkdf2Hash) verify(password []byte) bool {
	got, err := pbkdf2.Key(h.digest, string(password), h.salt, h.iterations, len(h.key))
	// Key fails only where FIPS 140-only mode forbids the digest or sizes;
	// such a hash cannot match here.
	return err == nil && subtle.ConstantTimeCompare(got, h.key) == 1
}

// parsePbkdf2 decodes "$pbkdf2-<digest>$i=<iterations>,l=<key length>$<salt>$<key>"
// with unpadded standard base64, as Kratos writes it. Like Kratos, it derives
// as many bytes as the decoded key has and ignores l (which must still be a
// number): Kratos's own import example has l=128 with a 16-byte key, so
// refusing a mismatch would refuse hashes Kratos verifies. The work bound is
// on the key as decoded, which is what is derived.
func parsePbkdf2(s string, _ limits) (parsedHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 || parts[0] != "" {
		return nil, malformed("expected $pbkdf2-<digest>$i=…,l=…$salt$hash")
	}
	name := strings.TrimPrefix(parts[1], "pbkdf2-")
	digest, ok := pbkdf2Digests[name]
	if !ok {
		return nil, malformed("digest must be one of sha1, sha224, sha256, sha384, sha512")
	}
	vals, err := parseParams(parts[2], "i", "l")
	if err != nil {
		return nil, err
	}
	iter := vals[0]
	h := &pbkdf2Hash{digest: digest.new}
	if h.salt, err = decodeBase64(parts[3], "salt"); err != nil {
		return nil, err
	}
	if h.key, err = decodeBase64(parts[4], "hash"); err != nil {
		return nil, err
	}
	if err := checkKeyLength(len(h.key)); err != nil {
		return nil, err
	}
	// PBKDF2 runs all its iterations once per digest-sized block of output.
	size := uint64(digest.new().Size())
	blocks := (uint64(len(h.key)) + size - 1) / size
	switch work := mulSat(iter, blocks, digest.weight); {
	case iter < 1:
		return nil, malformed("iterations (i) must be at least 1")
	case work > maxPbkdf2Work:
		return nil, malformed("work of %d (iterations × output blocks × %d for %s) is above the limit of %d", work, digest.weight, name, maxPbkdf2Work)
	}
	h.iterations = int(iter)
	return h, nil
}
