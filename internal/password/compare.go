package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/bits"
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
// be able to make one comparison take gigabytes or minutes, or crash the
// process by asking the runtime for more memory than it has. Every kind is
// held to one standard: a comparison allocates at most about 1 GiB and takes
// at most a few seconds of one core. The bounds are on what x/crypto and
// crypto/pbkdf2 actually allocate and do, computed in exact, saturating
// arithmetic (see mulSat), and are checked at import (Recognise) and again
// before every comparison, so that a hash that reached the store some other
// way is refused rather than run. The times quoted were measured on a shared
// 2-core amd64 VM with Go 1.26.
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
	// maxMemory bounds the bytes one comparison allocates: 1 GiB for its main
	// buffer (argon2's blocks, scrypt's V) and 1 MiB for what comes beside it
	// (scrypt's B and XY, a few KiB with ordinary parameters), so that
	// scrypt's "sensitive" setting, N=2^20, r=8, p=1 (1 GiB + 3 KiB), fits.
	maxMemory = 1<<30 + 1<<20
	// maxArgon2Work bounds the bytes argon2 sweeps in all its passes
	// (blocks × passes × 1 KiB): 1 GiB × 4 or 64 MiB × 64. 128 MiB take
	// 160 ms, so this is about 5 s; it is the bound this package has always
	// had, kept so that no hash it accepted before breaks.
	maxArgon2Work = 4 << 30
	// maxArgon2Lanes bounds argon2's parallelism p at what Kratos can
	// write (a uint8): Kratos's default is 2 × the CPUs of the host that
	// made the hash, so hashes from big hosts carry large p, and importing
	// them unchanged is the point. p does not change the total work
	// (blocks × passes, bounded above); x/crypto runs each lane as a
	// goroutine, but the Go scheduler still runs at most GOMAXPROCS of them
	// at once, so a large p spreads one comparison over the cores the
	// process has, for the same bounded total, and adds p small stacks.
	maxArgon2Lanes = 255
	// maxBcryptCost: each step doubles the time; cost 10 takes 60 ms, so
	// cost 16 takes about 4 s, and cost 31 (bcrypt's own limit) would take
	// days. bcrypt's state is 4 KiB whatever the cost.
	maxBcryptCost = 16
	// maxPbkdf2Work bounds iterations × output blocks × the digest's weight
	// (pbkdf2Digests): with weight 1, 10 million HMAC-SHA-1 iterations take
	// 3.5 s (HMAC-SHA-256 1.6 s, with the CPU's SHA extensions).
	maxPbkdf2Work = 10_000_000
	// maxScryptN is N = 2^20, scrypt's "sensitive" setting.
	maxScryptN = 1 << 20
	// maxScryptWork bounds (N+2)·r·p: each of the p passes runs 2·N BlockMix
	// rounds over 128·r bytes, and the PBKDF2 that fills B costs about two
	// more per 128·r bytes. One unit takes 0.3 µs, so this is about 3 s, and
	// it admits N=2^20, r=8, p=1.
	maxScryptWork = 10_000_000
)

// limits are the bounds a parse enforces. Recognise uses defaultLimits; a
// Hasher widens the argon2 ones to its own parameters, so that an operator
// who configures more than the import limits can still read their own hashes
// (Params has no upper bound: that is the operator's choice).
type limits struct {
	argon2Memory uint64 // bytes of blocks allocated
	argon2Work   uint64 // bytes of blocks swept in all passes
	argon2Lanes  uint64 // parallelism p
}

var defaultLimits = limits{argon2Memory: maxMemory, argon2Work: maxArgon2Work, argon2Lanes: maxArgon2Lanes}

// mulSat multiplies, saturating at math.MaxUint64 instead of wrapping, so
// that a product of hostile parameters compares as too large rather than as
// whatever it wrapped to. Every limit is far below the saturation point.
func mulSat(xs ...uint64) uint64 {
	p := uint64(1)
	for _, x := range xs {
		hi, lo := bits.Mul64(p, x)
		if hi != 0 {
			return math.MaxUint64
		}
		p = lo
	}
	return p
}

// addSat adds, saturating like mulSat.
func addSat(xs ...uint64) uint64 {
	var s uint64
	for _, x := range xs {
		var carry uint64
		if s, carry = bits.Add64(s, x, 0); carry != 0 {
			return math.MaxUint64
		}
	}
	return s
}

// parsedHash is a decoded hash of one of the supported algorithms.
type parsedHash interface {
	// algorithm names the algorithm as Recognise reports it.
	algorithm() string
	// verify derives the key for password and compares it in constant time.
	// It is the expensive part, run inside a Hasher's concurrency bound.
	verify(password []byte) bool
	// memory is the bytes of the buffers verify allocates for the hash's
	// cost parameters (and drops when it returns), exactly as x/crypto
	// sizes them; allocations of a few KiB that do not grow with the
	// parameters are left out. The Hasher uses it to decide when to
	// collect, and the limits above bound it.
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
