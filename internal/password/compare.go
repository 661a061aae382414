package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/identityd/identityd/model"
)

// ErrUnsupportedHash is wrapped by Compare's error when a stored hash is not in
// a supported format or is outside the limits below. It is deliberately not a
// *model.Error: Recognise refuses such hashes at import, so one in the store is
// the server's fault and must surface as an internal error, not as a message
// to the person logging in.
var ErrUnsupportedHash = errors.New("password: unsupported or malformed password hash")

// supported is the list Recognise's message gives, so that whoever prepares an
// import knows what to send.
const supported = "argon2id, argon2i, bcrypt ($2a$, $2b$, $2y$), pbkdf2 (sha1, sha224, sha256, sha384, sha512), scrypt"

// Limits on imported hashes. A hash's parameters decide how much memory and
// CPU every login with it costs, so an import (by mistake or malice) must not
// be able to make one comparison take gigabytes or minutes.
const (
	// maxHashLength bounds the input before anything is parsed or decoded.
	maxHashLength = 1024
	// maxSaltOrKey bounds decoded salts and keys (and our own Params).
	maxSaltOrKey = 512
	// minKeyLength refuses derived keys so short that a random password
	// would match with a real chance: 16 bytes is 128 bits.
	minKeyLength = 16
	// minArgon2Salt is the argon2 specification's minimum; the reference
	// implementation refuses shorter salts, so no genuine hash has one.
	minArgon2Salt = 8
	// maxMemoryKiB (1 GiB) bounds the memory one argon2 or scrypt comparison
	// may use, and maxWorkKiB (4 GiB) the memory it may sweep in all its
	// passes: 64 MiB × 64 passes or 1 GiB × 4, each some seconds at most.
	maxMemoryKiB = 1 << 20
	maxWorkKiB   = 4 << 20
	// maxBcryptCost: each step doubles the time; cost 16 takes seconds,
	// cost 31 (bcrypt's own limit) would take days.
	maxBcryptCost = 16
	// maxPbkdf2Work bounds iterations × output blocks; 10 million
	// HMAC-SHA-256 iterations take a few seconds.
	maxPbkdf2Work = 10_000_000
	// maxScryptN is N = 2^20, scrypt's "sensitive" setting.
	maxScryptN = 1 << 20
)

// limits are the bounds a parse enforces. Recognise uses defaultLimits; a
// Hasher widens the argon2 ones to its own parameters, so that an operator
// who configures more than the import limits can still read their own hashes.
type limits struct {
	argon2MemoryKiB uint32
	argon2WorkKiB   uint64
}

var defaultLimits = limits{argon2MemoryKiB: maxMemoryKiB, argon2WorkKiB: maxWorkKiB}

// parsedHash is a decoded hash of one of the supported algorithms.
type parsedHash interface {
	// algorithm names the algorithm as Recognise reports it.
	algorithm() string
	// verify derives the key for password and compares it in constant time.
	// It is the expensive part, run inside a Hasher's concurrency bound.
	verify(password []byte) bool
	// memory is about how many bytes verify allocates (and drops when it
	// returns); the Hasher uses it to decide when to collect them.
	memory() uint64
}

// formatError says why a hash cannot be used. Its text is safe to show: it
// names the rule that failed and never contains the hash or any part of it.
type formatError struct {
	algorithm string // empty when the format is not recognised
	reason    string // empty when the format is not recognised
}

func (e *formatError) Error() string {
	switch {
	case e.algorithm == "" && e.reason == "":
		return "unrecognised password hash format (supported: " + supported + ")"
	case e.algorithm == "":
		return "password hash " + e.reason
	}
	return "malformed " + e.algorithm + " password hash: " + e.reason
}

// malformed returns a formatError; parse fills in the algorithm.
func malformed(format string, args ...any) *formatError {
	return &formatError{reason: fmt.Sprintf(format, args...)}
}

// parse recognises a hash by its prefix, as Kratos's hash comparator does, and
// decodes it with one parser per algorithm (one file each).
func parse(hash string, lim limits) (parsedHash, error) {
	if len(hash) > maxHashLength {
		return nil, &formatError{reason: fmt.Sprintf("is longer than %d bytes", maxHashLength)}
	}
	var (
		name string
		h    parsedHash
		err  error
	)
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		name = "argon2id"
		h, err = nilIfErr(parseArgon2(hash, lim))
	case strings.HasPrefix(hash, "$argon2i$"):
		name = "argon2i"
		h, err = nilIfErr(parseArgon2(hash, lim))
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		name = "bcrypt"
		h, err = nilIfErr(parseBcrypt(hash))
	case strings.HasPrefix(hash, "$pbkdf2-"):
		name = "pbkdf2"
		h, err = nilIfErr(parsePbkdf2(hash))
	case strings.HasPrefix(hash, "$scrypt$"):
		name = "scrypt"
		h, err = nilIfErr(parseScrypt(hash))
	default:
		return nil, &formatError{}
	}
	var fe *formatError
	if errors.As(err, &fe) && fe.algorithm == "" {
		fe.algorithm = name
	}
	return h, err
}

// nilIfErr turns a typed nil pointer into a nil interface, so that parse never
// returns a non-nil parsedHash holding nil.
func nilIfErr[T parsedHash](h T, err error) (parsedHash, error) {
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Recognise checks an imported hash before it is stored and names its
// algorithm ("argon2id", "argon2i", "bcrypt", "pbkdf2" or "scrypt"). It decodes
// the whole hash and applies the same limits as Compare, but derives nothing,
// so it is cheap. An unrecognised or malformed hash, or one whose parameters
// would make logins too expensive, is a *model.Error with
// CodeValidationFailed whose message says why and never repeats the hash; the
// caller sets its Path.
func Recognise(hash string) (algorithm string, err error) {
	h, err := parse(hash, defaultLimits)
	if err != nil {
		return "", model.Errorf(model.CodeValidationFailed, "%s", err.Error())
	}
	return h.algorithm(), nil
}

// decodeBase64 accepts standard base64 without padding (what Kratos and the
// PHC format write for argon2 and pbkdf2) and with it (what Kratos expects
// for scrypt), strictly in both cases so that a hash has only one spelling.
func decodeBase64(s, what string) ([]byte, error) {
	enc := base64.RawStdEncoding
	if strings.HasSuffix(s, "=") {
		enc = base64.StdEncoding
	}
	b, err := enc.Strict().DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, malformed("%s is not valid base64", what)
	}
	if len(b) > maxSaltOrKey {
		return nil, malformed("%s is longer than %d bytes", what, maxSaltOrKey)
	}
	return b, nil
}

// checkKeyLength refuses derived keys too short to be safe.
func checkKeyLength(n int) error {
	if n < minKeyLength {
		return malformed("hash must be at least %d bytes", minKeyLength)
	}
	return nil
}

// parseParams reads "k1=v1,k2=v2,…" with exactly the given keys in that order
// and decimal values that fit in 32 bits. It is stricter than fmt.Sscanf,
// which would accept signs, spaces and trailing text.
func parseParams(s string, keys ...string) ([]uint64, error) {
	want := strings.Join(keys, "=…,") + "=…"
	fields := strings.Split(s, ",")
	if len(fields) != len(keys) {
		return nil, malformed("parameters must be %s", want)
	}
	vals := make([]uint64, len(keys))
	for i, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k != keys[i] || v == "" || strings.TrimLeft(v, "0123456789") != "" {
			return nil, malformed("parameters must be %s", want)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, malformed("parameter %s is too large", k)
		}
		vals[i] = n
	}
	return vals, nil
}
