package password

import (
	"crypto/hmac"
	"crypto/md5"  //nolint:gosec // only to read imported hashes
	"crypto/sha1" //nolint:gosec // only to read imported hashes
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"strings"

	"golang.org/x/crypto/md4" //nolint:staticcheck // MD4 only to read imported hashes
)

// hmacDigests are the digests of "$hmac-<digest>$", as Kratos maps them: here
// sha224 and sha384 are SHA-2 (pbkdf2's are SHA-3 in Kratos).
var hmacDigests = map[string]func() hash.Hash{
	"md4":    md4.New,
	"md5":    md5.New,
	"sha1":   sha1.New,
	"sha224": sha256.New224,
	"sha256": sha256.New,
	"sha384": sha512.New384,
	"sha512": sha512.New,
}

// hmacNames lists hmacDigests for messages, in a fixed order.
const hmacNames = "md4, md5, sha1, sha224, sha256, sha384, sha512"

// hmacHash is a keyed digest in Kratos's layout.
type hmacHash struct {
	name     string // "hmac-sha256", …
	digest   func() hash.Hash
	key, mac []byte
}

func (h *hmacHash) algorithm() string { return h.name }

// memory is 0: one HMAC.
func (h *hmacHash) memory() uint64 { return 0 }

func (h *hmacHash) verify(password []byte) bool {
	m := hmac.New(h.digest, h.key)
	m.Write(password)
	return hmac.Equal(m.Sum(nil), h.mac) // constant time
}

// parseHMAC decodes "$hmac-<digest>$<hash>$<key>", Kratos's layout: the key
// is the secret the old system keyed its HMAC with, in standard base64, and
// the hash is the HMAC as hexadecimal text, that text again in base64 (so
// "$hmac-md5$ZmU4Njk3…$MTIzNDU=" holds the hex "fe8697…" and the key
// "12345"). Kratos compares with lower-case hex; upper-case is read too, as
// it is the same HMAC.
func parseHMAC(s string, _ limits) (parsedHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 4 || parts[0] != "" {
		return nil, malformed("expected $hmac-<digest>$hash$key, the hash being the hex HMAC in base64 and the key in base64")
	}
	name := strings.TrimPrefix(parts[1], "hmac-")
	digest, ok := hmacDigests[name]
	if !ok {
		return nil, malformed("digest must be one of %s", hmacNames)
	}
	h := &hmacHash{name: "hmac-" + name, digest: digest}
	text, err := decodeBase64(parts[2], "hash")
	if err != nil {
		return nil, err
	}
	size := digest().Size()
	if h.mac, err = hex.DecodeString(string(text)); err != nil || len(h.mac) != size {
		return nil, malformed("hash must be the base64 of %d hexadecimal digits (an HMAC-%s)", 2*size, strings.ToUpper(name))
	}
	if parts[3] == "" {
		return nil, malformed("the key is missing")
	}
	if h.key, err = decodeBase64(parts[3], "key"); err != nil {
		return nil, err
	}
	return h, nil
}
