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
	// maxFirescryptLogN bounds Firebase scrypt's mem_cost, the log2 of N,
	// at maxScryptN: Firebase writes 14. Its memory and work are held to
	// the scrypt bounds above.
	maxFirescryptLogN = 20
	// minShaCryptRounds and maxShaCryptRounds bound sha256-crypt's and
	// sha512-crypt's rounds=. The specification clamps rounds below 1000 up
	// to 1000 and libxcrypt refuses them, so no genuine hash has fewer; its
	// upper clamp, 999,999,999, would make one comparison take minutes.
	// Each round hashes the password about twice, so its cost grows with the
	// password's length (bounded by maxCryptPassword): with sha512-crypt,
	// 1,000,000 rounds take 0.4 s for a 16-byte password and 2.3 s for a
	// 511-byte one (sha256-crypt is faster with the CPU's SHA extensions and
	// up to twice as slow without). That admits passlib's defaults (535,000
	// for sha256-crypt, 656,000 for sha512-crypt) and glibc's 5,000.
	minShaCryptRounds = 1000
	maxShaCryptRounds = 1_000_000
	// maxCryptPassword is the longest password the crypt(3) family
	// (md5-crypt, sha256-crypt, sha512-crypt) is compared with: libxcrypt,
	// the crypt(3) of current Linux systems, refuses passphrases of 512
	// bytes or more (CRYPT_MAX_PASSPHRASE_SIZE), so no hash it wrote has
	// one; sha-crypt's cost grows with the square of the password's length
	// (its step 14 hashes the password once per byte of it).
	maxCryptPassword = 511
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

// format is one entry of the table that parse recognises hashes with: how a
// kind of hash is recognised (its prefixes), parsed and bounded (parse), and
// named. Comparing is the parsed hash's verify. Adding a kind is adding an
// entry here, its parser in the file of its family, and its test vectors
// (TestEveryFormatHasVectors checks that every prefix has some).
type format struct {
	// name is the algorithm a malformed hash's message names.
	name string
	// prefixes recognise the kind: a hash is of it when it starts with one
	// of them. No prefix in the table starts another (a test checks), so
	// the order of the table does not matter.
	prefixes []string
	// listed is how the message for an unrecognised hash lists the kind;
	// empty when an entry before it lists it too.
	listed string
	// parse decodes a hash that starts with one of prefixes, checks every
	// parameter against its bounds before anything is derived, and returns
	// a hash ready to verify, or a *formatError saying what is wrong.
	parse func(hash string, lim limits) (parsedHash, error)
}

// formats are the kinds of hash this package compares: the ones Kratos writes
// and the ones its hash comparator accepts on import, under Kratos's names
// and, for the crypt(3) family, under crypt(3)'s own prefixes too.
var formats = []format{
	{"argon2id", []string{"$argon2id$"}, "argon2id", parseArgon2},
	{"argon2i", []string{"$argon2i$"}, "argon2i", parseArgon2},
	{"bcrypt", []string{"$2a$", "$2b$", "$2y$"}, "bcrypt ($2a$, $2b$, $2y$)", parseBcrypt},
	{"pbkdf2", []string{"$pbkdf2-"}, "pbkdf2 (sha1, sha224, sha256, sha384, sha512)", parsePbkdf2},
	{"scrypt", []string{"$scrypt$"}, "scrypt", parseScrypt},
	{"firescrypt", []string{"$firescrypt$"}, "Firebase scrypt ($firescrypt$)", parseFirescrypt},
	{"md5-crypt", []string{"$1$", "$md5-crypt$"}, "md5-crypt ($1$, $md5-crypt$)", md5Crypt.parse},
	{"sha256-crypt", []string{"$5$", "$sha256-crypt$"}, "sha256-crypt ($5$, $sha256-crypt$)", sha256Crypt.parse},
	{"sha512-crypt", []string{"$6$", "$sha512-crypt$"}, "sha512-crypt ($6$, $sha512-crypt$)", sha512Crypt.parse},
	{"sha1", []string{"$sha1$"}, "salted sha1, sha256, sha512 ($sha1$, $sha256$, $sha512$ with pf=)", saltedSHA1.parse},
	{"sha256", []string{"$sha256$"}, "", saltedSHA256.parse},
	{"sha512", []string{"$sha512$"}, "", saltedSHA512.parse},
	{"ssha", []string{"{SSHA}"}, "ssha ({SSHA}, {SSHA256}, {SSHA512})", ssha1.parse},
	{"ssha256", []string{"{SSHA256}"}, "", ssha256.parse},
	{"ssha512", []string{"{SSHA512}"}, "", ssha512.parse},
	{"md5", []string{"$md5$"}, "md5 ($md5$, with or without pf=)", parseMD5},
	{"hmac", []string{"$hmac-"}, "hmac ($hmac-md4$, $hmac-md5$, $hmac-sha1$, $hmac-sha224$, $hmac-sha256$, $hmac-sha384$, $hmac-sha512$)", parseHMAC},
}

// supported is the list the message for an unrecognised hash gives, so that
// whoever prepares an import knows what to send. It names prefixes but never
// writes a whole hash, so it cannot be mistaken for one.
var supported = func() string {
	var names []string
	for _, f := range formats {
		if f.listed != "" {
			names = append(names, f.listed)
		}
	}
	return strings.Join(names, ", ")
}()

// lookup returns the entry whose prefix hash starts with, or nil.
func lookup(hash string) *format {
	for i := range formats {
		for _, p := range formats[i].prefixes {
			if strings.HasPrefix(hash, p) {
				return &formats[i]
			}
		}
	}
	return nil
}

// parse recognises a hash by its prefix, as Kratos's hash comparator does, and
// decodes it with its entry's parser.
func parse(hash string, lim limits) (parsedHash, error) {
	if len(hash) > maxHashLength {
		return nil, &formatError{reason: fmt.Sprintf("is longer than %d bytes", maxHashLength)}
	}
	f := lookup(hash)
	if f == nil {
		return nil, &formatError{}
	}
	h, err := f.parse(hash, lim)
	if err != nil {
		var fe *formatError
		if errors.As(err, &fe) && fe.algorithm == "" {
			fe.algorithm = f.name
		}
		return nil, err
	}
	return h, nil
}

// Recognise checks an imported hash before it is stored and names its
// algorithm (an entry's name, or for pbkdf2 and hmac the family's with the
// digest, e.g. "hmac-sha256"). It decodes the whole hash and applies the same
// limits as Compare, but derives nothing, so it is cheap. An unrecognised or
// malformed hash, or one whose parameters would make logins too expensive,
// is a *model.Error with CodeValidationFailed whose message says why and
// never repeats the hash; the caller sets its Path.
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

// decodeBase64Empty is decodeBase64 for a field that may be empty, such as
// the salt of a layout whose pattern does not use it.
func decodeBase64Empty(s, what string) ([]byte, error) {
	if s == "" {
		return []byte{}, nil
	}
	return decodeBase64(s, what)
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
