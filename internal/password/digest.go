package password

import (
	"crypto/md5"  //nolint:gosec // only to read imported hashes
	"crypto/sha1" //nolint:gosec // only to read imported hashes
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"strings"
)

// Single salted digests, in the layouts Kratos's hash comparator reads:
//
//   - "$sha1$", "$sha256$", "$sha512$": "$sha1$pf=<pattern>$<salt>$<digest>",
//     where pattern says how the salt and the password are put together
//     (e.g. "{SALT}{PASSWORD}"), all three in standard base64;
//   - "{SSHA}", "{SSHA256}", "{SSHA512}": the LDAP userPassword scheme,
//     base64(digest(password ‖ salt) ‖ salt);
//   - "$md5$": "$md5$<digest>" (unsalted) or "$md5$pf=<pattern>$<salt>$<digest>".
//
// One digest costs nothing worth bounding; what is bounded is the input:
// the pattern and the salt (maxSaltOrKey each), so the text hashed is at
// most about the pattern's length times the password's.

// digestAlgorithm is one of the digests these layouts use.
type digestAlgorithm struct {
	name string // as in the layouts: "sha1", "sha256", …
	size int
	sum  func([]byte) []byte
}

var (
	digestMD5    = &digestAlgorithm{"md5", md5.Size, func(b []byte) []byte { s := md5.Sum(b); return s[:] }}    //nolint:gosec // imported hashes
	digestSHA1   = &digestAlgorithm{"sha1", sha1.Size, func(b []byte) []byte { s := sha1.Sum(b); return s[:] }} //nolint:gosec // imported hashes
	digestSHA256 = &digestAlgorithm{"sha256", sha256.Size, func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }}
	digestSHA512 = &digestAlgorithm{"sha512", sha512.Size, func(b []byte) []byte { s := sha512.Sum512(b); return s[:] }}
)

// The pattern's placeholders.
const (
	placeholderSalt     = "{SALT}"
	placeholderPassword = "{PASSWORD}"
)

// digestHash is a decoded salted (or, for $md5$, unsalted) digest.
type digestHash struct {
	name   string // the algorithm Recognise reports
	digest *digestAlgorithm
	// pattern is the decoded pf=, or nil for password ‖ salt (SSHA, and
	// unsalted $md5$ with an empty salt).
	pattern    []byte
	salt, hash []byte
}

func (h *digestHash) algorithm() string { return h.name }

// memory is 0: one digest of a short input.
func (h *digestHash) memory() uint64 { return 0 }

func (h *digestHash) verify(password []byte) bool {
	var input []byte
	if h.pattern == nil {
		input = append(append(make([]byte, 0, len(password)+len(h.salt)), password...), h.salt...)
	} else {
		// One pass, left to right, as Kratos does: a "{SALT}" inside the
		// password is not replaced again.
		r := strings.NewReplacer(placeholderSalt, string(h.salt), placeholderPassword, string(password))
		input = []byte(r.Replace(string(h.pattern)))
	}
	return subtle.ConstantTimeCompare(h.digest.sum(input), h.hash) == 1
}

// patternFormat is a "$<digest>$pf=…" layout.
type patternFormat struct {
	name   string
	digest *digestAlgorithm
}

var (
	saltedSHA1   = &patternFormat{"sha1", digestSHA1}
	saltedSHA256 = &patternFormat{"sha256", digestSHA256}
	saltedSHA512 = &patternFormat{"sha512", digestSHA512}
)

// parse decodes "$<digest>$pf=<pattern>$<salt>$<digest>".
func (f *patternFormat) parse(s string, _ limits) (parsedHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 || parts[0] != "" {
		return nil, malformed("expected $%s$pf=<pattern>$salt$hash, each part in base64", f.name)
	}
	return parsePatternDigest(f.name, f.digest, parts[2], parts[3], parts[4])
}

// parsePatternDigest decodes the pf=, salt and digest fields of a pattern
// layout.
func parsePatternDigest(name string, d *digestAlgorithm, pf, salt, digest string) (parsedHash, error) {
	enc, ok := strings.CutPrefix(pf, "pf=")
	if !ok || enc == "" {
		return nil, malformed("the pattern (pf=…) is missing")
	}
	h := &digestHash{name: name, digest: d}
	var err error
	if h.pattern, err = decodeBase64(enc, "pattern (pf)"); err != nil {
		return nil, err
	}
	// Without the password in it, the digest would be the same whatever
	// the password, and every password would match.
	if !strings.Contains(string(h.pattern), placeholderPassword) {
		return nil, malformed("the pattern (pf) must contain %s", placeholderPassword)
	}
	if h.salt, err = decodeBase64Empty(salt, "salt"); err != nil {
		return nil, err
	}
	if h.hash, err = decodeDigest(digest, d); err != nil {
		return nil, err
	}
	return h, nil
}

// decodeDigest decodes a base64 digest and checks its length.
func decodeDigest(s string, d *digestAlgorithm) ([]byte, error) {
	b, err := decodeBase64(s, "hash")
	if err != nil {
		return nil, err
	}
	if len(b) != d.size {
		return nil, malformed("hash must be %d bytes (a %s digest)", d.size, d.name)
	}
	return b, nil
}

// parseMD5 decodes "$md5$<digest>" and "$md5$pf=<pattern>$<salt>$<digest>".
func parseMD5(s string, _ limits) (parsedHash, error) {
	parts := strings.Split(s, "$")
	switch {
	case len(parts) == 3 && parts[0] == "":
		h := &digestHash{name: "md5", digest: digestMD5}
		var err error
		if h.hash, err = decodeDigest(parts[2], digestMD5); err != nil {
			return nil, err
		}
		return h, nil
	case len(parts) == 5 && parts[0] == "":
		return parsePatternDigest("md5", digestMD5, parts[2], parts[3], parts[4])
	}
	return nil, malformed("expected $md5$hash or $md5$pf=<pattern>$salt$hash, each part in base64")
}

// sshaFormat is an LDAP salted-digest scheme.
type sshaFormat struct {
	name, prefix string
	digest       *digestAlgorithm
}

var (
	ssha1   = &sshaFormat{"ssha", "{SSHA}", digestSHA1}
	ssha256 = &sshaFormat{"ssha256", "{SSHA256}", digestSHA256}
	ssha512 = &sshaFormat{"ssha512", "{SSHA512}", digestSHA512}
)

// parse decodes "{SSHA…}" followed by base64(digest ‖ salt): standard
// base64, padded as LDAP writes it (unpadded is read too). The salt is
// whatever follows the digest and must not be empty; with the digest it is at
// most maxSaltOrKey bytes.
func (f *sshaFormat) parse(s string, _ limits) (parsedHash, error) {
	b, err := decodeBase64(strings.TrimPrefix(s, f.prefix), "value after "+f.prefix)
	if err != nil {
		return nil, err
	}
	if len(b) <= f.digest.size {
		return nil, malformed("the salt is missing: the decoded value must be longer than a %d-byte %s digest", f.digest.size, f.digest.name)
	}
	return &digestHash{name: f.name, digest: f.digest, hash: b[:f.digest.size], salt: b[f.digest.size:]}, nil
}
