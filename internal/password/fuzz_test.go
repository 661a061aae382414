package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"testing"

	"github.com/identityd/identityd/model"
)

// Fuzz targets for every imported format's parser. Run one with, e.g.,
//
//	go test -run='^$' -fuzz=FuzzScrypt -fuzztime=30s ./internal/password/
//
// Their seeds run with the ordinary tests. Nothing here derives a key: an
// accepted hash may cost up to the limits, a gigabyte and seconds, so the
// targets check the parse and its bounds and verify only kinds whose cost
// does not grow with their parameters (single digests, HMAC, md5-crypt) or
// whose parameters the target keeps small (sha-crypt up to 5000 rounds).
//
// The bounds are checked against an oracle written apart from the code under
// test, in math/big arithmetic, so that an overflow or a rounding in the
// parsers cannot hide behind the same mistake in the check.

// Hostile hashes from the security review and the cases around them, and one
// valid hash of each kind at or near every limit.
var fuzzSeeds = []string{
	"$scrypt$ln=2,r=1,p=1073741823$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M",
	"$scrypt$ln=2,r=1,p=1073741824$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M",
	"$scrypt$ln=1048576,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M",
	"$scrypt$ln=1048576,r=8,p=2$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M",
	"$scrypt$ln=1048576,r=4294967295,p=4294967295$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M",
	"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M",
	"$argon2id$v=19$m=4294967295,t=4294967295,p=255$cm94YnRVOW5jZzFzcVE4bQ$fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4",
	"$argon2id$v=19$m=1049603,t=1,p=1$cm94YnRVOW5jZzFzcVE4bQ$fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4",
	"$argon2id$v=19$m=1048576,t=4,p=1$cm94YnRVOW5jZzFzcVE4bQ$fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4",
	"$argon2id$v=19$m=128,t=1,p=16$cm94YnRVOW5jZzFzcVE4bQ$fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4",
	"$argon2i$v=19$m=136,t=1,p=17$cm94YnRVOW5jZzFzcVE4bQ$fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4",
	"$2a$16$o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6",
	"$2b$17$o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6",
	"$2y$99$o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6",
	"$pbkdf2-sha224$i=1250000,l=32$cm94YnRVOW5jZzFzcVE4bQ$fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4",
	"$pbkdf2-sha224$i=1250001,l=32$cm94YnRVOW5jZzFzcVE4bQ$fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4",
	"$pbkdf2-sha256$i=4294967295,l=32$cm94YnRVOW5jZzFzcVE4bQ$fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4",
	"$pbkdf2-md5$i=1000,l=32$cm94YnRVOW5jZzFzcVE4bQ$fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4",
	"",
	"$",
	"$$$$$",
	"$argon2id$",
	"$scrypt$ln=,r=,p=$$",
	"$pbkdf2-$i=1,l=1$$",
	"$pbkdf2-sha256$i=1000,l=4294967295$e8/arsEf4cvQihdNgqj0Nw$5xQQKNTyeTHx2Ld5/JDE7A",
	"$firescrypt$ln=31,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaA==$Bw==$a2V5a2V5",
	"$firescrypt$ln=20,r=8,p=1$c2FsdHNhbHRzYWx0$MDEyMzQ1Njc4OWFiY2RlZg==$$MDEyMzQ1Njc4OWFiY2RlZg==",
	"$firescrypt$ln=1,r=1,p=1073741823$c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZg==$Bw==$MDEyMzQ1Njc4OWFiY2RlZg==",
	"$firescrypt$$$$$$",
	"$6$rounds=999999999$3LVbIAVxR//cRajw$uuNasMW.RYxlGzIRFU1Was70BPSa933AjxhZIGJdJBOlqJAHlgqa0yuiuq5JHF/ryNGryJkj87G9i3G2HPSXg1",
	"$6$rounds=1000000$3LVbIAVxR//cRajw$uuNasMW.RYxlGzIRFU1Was70BPSa933AjxhZIGJdJBOlqJAHlgqa0yuiuq5JHF/ryNGryJkj87G9i3G2HPSXg1",
	"$5$rounds=$$",
	"$sha512-crypt$rounds=1000$$",
	"$1$$",
	"$md5-crypt$$$",
	"$sha1$pf=$$",
	"$sha256$pf=e1NBTFR9$$",
	"$md5$pf=e1BBU1NXT1JEfQ==$$CY9rzUYh03PK3k6DJie09g==",
	"$md5$",
	"{SSHA}",
	"{SSHA512}=",
	"$hmac-$$",
	"$hmac-md4$$",
	"$hmac-sha512$" + strings.Repeat("A", 1000) + "$MTIzNDU=",
}

// FuzzRecognise feeds arbitrary strings to Recognise and parse.
func FuzzRecognise(f *testing.F) {
	for _, v := range vectors {
		f.Add(v.hash)
	}
	for _, v := range importVectors {
		f.Add(v.hash)
	}
	for _, c := range kratosWrongPairs {
		f.Add(c.hash)
	}
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkParse(t, s)
	})
}

// FuzzArgon2 builds argon2 hashes from fuzzed parameters, salt and key, so
// that the fuzzer spends its time on the arithmetic rather than the syntax,
// and checks that exactly the ones within the bounds are accepted.
func FuzzArgon2(f *testing.F) {
	salt, key := []byte("roxbtU9ncg1sqQ8m"), []byte("0123456789abcdef0123456789abcdef")
	for _, c := range [][3]uint64{
		{32, 2, 4}, {65536, 3, 4}, {64, 1, 1}, {100, 1, 3}, {511, 1, 16},
		{128, 1, 16}, {136, 1, 17}, {4096, 1, 256},
		{1049600, 1, 1}, {1049603, 1, 1}, {1049604, 1, 1}, {1048576, 4, 1}, {1048576, 5, 1},
		{1<<32 - 1, 1<<32 - 1, 1<<32 - 1}, {1 << 32, 1, 1}, {0, 0, 0}, {7, 1, 1},
	} {
		f.Add(true, c[0], c[1], c[2], salt, key)
		f.Add(false, c[0], c[1], c[2], salt[:8], key[:16])
	}
	f.Fuzz(func(t *testing.T, id bool, m, iter, p uint64, salt, key []byte) {
		variant := "argon2i"
		if id {
			variant = "argon2id"
		}
		s := fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$%s$%s", variant, m, iter, p,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
		parsed := checkParse(t, s)
		blocks := oracleArgon2Blocks(m, p)
		want := len(s) <= maxHashLength && fits32(m, iter, p) &&
			iter >= 1 && p >= 1 && p <= maxArgon2Lanes && m >= 8*p &&
			bigLeq(bigMul(blocks, big.NewInt(1024)), maxMemory) &&
			bigLeq(bigMul(blocks, big.NewInt(1024), bigU(iter)), maxArgon2Work) &&
			len(salt) >= minArgon2Salt && len(salt) <= maxSaltOrKey && len(key) >= minKeyLength && len(key) <= maxSaltOrKey
		if got := parsed != nil; got != want {
			t.Fatalf("parse(%q) accepted = %v, want %v", s, got, want)
		}
	})
}

// FuzzScrypt does for scrypt what FuzzArgon2 does for argon2.
func FuzzScrypt(f *testing.F) {
	salt, key := []byte("0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef")
	for _, c := range [][3]uint64{
		{2, 1, 1073741823}, {2, 1, 1 << 30}, {16384, 8, 1}, {1024, 2, 3}, {2, 1, 100000},
		{1 << 20, 8, 1}, {1 << 20, 8, 2}, {1 << 21, 1, 1}, {2, 1, 2500000}, {2, 1, 2500001},
		{2, 8, 1049600}, {1 << 17, 8, 9}, {1 << 20, 1<<32 - 1, 1<<32 - 1}, {14, 8, 1}, {0, 0, 0},
	} {
		f.Add(c[0], c[1], c[2], salt, key, true)
		f.Add(c[0], c[1], c[2], salt, key, false)
	}
	f.Fuzz(func(t *testing.T, cost, r, p uint64, salt, key []byte, padded bool) {
		enc := base64.RawStdEncoding
		if padded {
			enc = base64.StdEncoding
		}
		s := fmt.Sprintf("$scrypt$ln=%d,r=%d,p=%d$%s$%s", cost, r, p, enc.EncodeToString(salt), enc.EncodeToString(key))
		parsed := checkParse(t, s)
		want := len(s) <= maxHashLength && fits32(cost, r, p) &&
			cost >= 2 && cost&(cost-1) == 0 && cost <= maxScryptN && r >= 1 && p >= 1 &&
			bigLeq(oracleScryptMemory(cost, r, p), maxMemory) &&
			bigLeq(bigMul(bigU(cost+2), bigU(r), bigU(p)), maxScryptWork) &&
			len(salt) >= 1 && len(salt) <= maxSaltOrKey && len(key) >= minKeyLength && len(key) <= maxSaltOrKey
		if got := parsed != nil; got != want {
			t.Fatalf("parse(%q) accepted = %v, want %v", s, got, want)
		}
	})
}

// FuzzPbkdf2 does for pbkdf2 what FuzzArgon2 does for argon2.
func FuzzPbkdf2(f *testing.F) {
	salt, key := []byte("0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef")
	for _, c := range []struct {
		digest string
		i      uint64
	}{
		{"sha1", 5000000}, {"sha1", 5000001}, {"sha256", 10000000}, {"sha256", 10000001},
		{"sha224", 1250000}, {"sha224", 1250001}, {"sha384", 5000000}, {"sha384", 5000001},
		{"sha512", 5000000}, {"sha512", 5000001}, {"sha256", 0}, {"sha256", 1<<32 - 1}, {"md5", 1000},
	} {
		f.Add(c.digest, c.i, uint64(len(key)), salt, key)
	}
	// l= is ignored, as Kratos ignores it: its import example has l=128
	// with a 16-byte key.
	f.Add("sha256", uint64(1000), uint64(128), salt, key[:16])
	f.Add("sha1", uint64(5000001), uint64(1), salt, key[:20])
	f.Fuzz(func(t *testing.T, digest string, iter, keyLen uint64, salt, key []byte) {
		s := fmt.Sprintf("$pbkdf2-%s$i=%d,l=%d$%s$%s", digest, iter, keyLen,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
		parsed := checkParse(t, s)
		size, weight, known := oraclePbkdf2Digest(digest)
		blocks := (uint64(len(key)) + size - 1) / size
		want := known && len(s) <= maxHashLength && fits32(iter, keyLen) && iter >= 1 &&
			bigLeq(bigMul(bigU(iter), bigU(blocks), bigU(weight)), maxPbkdf2Work) &&
			len(salt) >= 1 && len(salt) <= maxSaltOrKey && len(key) >= minKeyLength && len(key) <= maxSaltOrKey
		if got := parsed != nil; got != want {
			t.Fatalf("parse(%q) accepted = %v, want %v", s, got, want)
		}
	})
}

// FuzzBcrypt does for bcrypt what FuzzArgon2 does for argon2.
func FuzzBcrypt(f *testing.F) {
	const tail = "o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6"
	for _, c := range []struct {
		minor byte
		cost  string
	}{
		{'a', "12"}, {'b', "04"}, {'y', "16"}, {'a', "17"}, {'a', "03"}, {'a', "31"}, {'a', "+9"},
		{'a', "-1"}, {'a', "1x"}, {'x', "10"}, {'a', "1"}, {'a', "100"},
	} {
		f.Add(c.minor, c.cost, tail)
	}
	f.Add(byte('y'), "07", "BCryptRequires22Chrcte/VlQH0piJtjXl.0t1XkA8pw9dMXTpOq")
	f.Add(byte('a'), "10", tail[:52]+"+")
	f.Fuzz(func(t *testing.T, minor byte, cost, tail string) {
		s := "$2" + string([]byte{minor}) + "$" + cost + "$" + tail
		parsed := checkParse(t, s)
		c, err := strconv.Atoi(cost)
		want := strings.ContainsRune("aby", rune(minor)) && len(cost) == 2 &&
			cost[0] >= '0' && cost[0] <= '9' && cost[1] >= '0' && cost[1] <= '9' &&
			err == nil && c >= 4 && c <= maxBcryptCost &&
			len(tail) == 53 && strings.Trim(tail, bcryptAlphabet) == ""
		if got := parsed != nil; got != want {
			t.Fatalf("parse(%q) accepted = %v, want %v", s, got, want)
		}
	})
}

// checkParse asserts that parse does not panic, that Recognise agrees with
// it, and that whatever it accepts is within the bounds. It returns the
// parsed hash, or nil if refused.
func checkParse(t *testing.T, s string) parsedHash {
	t.Helper()
	alg, rerr := Recognise(s)
	p, perr := parse(s, defaultLimits)
	if perr != nil {
		var fe *formatError
		if !errors.As(perr, &fe) {
			t.Fatalf("parse(%q) error %v is not a *formatError", s, perr)
		}
		var me *model.Error
		if !errors.As(rerr, &me) || me.Code != model.CodeValidationFailed || me.Message != perr.Error() || alg != "" {
			t.Fatalf("parse(%q) refused (%v) but Recognise = %q, %v", s, perr, alg, rerr)
		}
		if p != nil {
			t.Fatalf("parse(%q) returned a hash with its error", s)
		}
		return nil
	}
	if rerr != nil || alg != p.algorithm() {
		t.Fatalf("parse(%q) accepted %s but Recognise = %q, %v", s, p.algorithm(), alg, rerr)
	}
	checkBounds(t, s, p)
	return p
}

// checkBounds recomputes an accepted hash's memory and work with the oracle.
func checkBounds(t *testing.T, s string, p parsedHash) {
	t.Helper()
	var memory *big.Int
	switch h := p.(type) {
	case *argon2Hash:
		m, iter, lanes := uint64(h.p.Memory), uint64(h.p.Iterations), uint64(h.p.Parallelism)
		memory = bigMul(oracleArgon2Blocks(m, lanes), big.NewInt(1024))
		if iter < 1 || lanes < 1 || lanes > maxArgon2Lanes || m < 8*lanes || !bigLeq(bigMul(memory, bigU(iter)), maxArgon2Work) {
			t.Fatalf("parse(%q) accepted argon2 m=%d, t=%d, p=%d", s, m, iter, lanes)
		}
	case *scryptHash:
		cost, r, lanes := uint64(h.n), uint64(h.r), uint64(h.p)
		memory = oracleScryptMemory(cost, r, lanes)
		if cost < 2 || cost&(cost-1) != 0 || r < 1 || lanes < 1 || r*lanes >= 1<<30 ||
			!bigLeq(bigMul(bigU(cost+2), bigU(r), bigU(lanes)), maxScryptWork) {
			t.Fatalf("parse(%q) accepted scrypt N=%d, r=%d, p=%d", s, cost, r, lanes)
		}
	case *pbkdf2Hash:
		memory = new(big.Int)
		size := uint64(h.digest().Size())
		weight := map[uint64]uint64{20: 1, 28: 4, 32: 1, 48: 2, 64: 2}[size]
		blocks := (uint64(len(h.key)) + size - 1) / size
		if weight == 0 || h.iterations < 1 || !bigLeq(bigMul(bigU(uint64(h.iterations)), bigU(blocks), bigU(weight)), maxPbkdf2Work) {
			t.Fatalf("parse(%q) accepted pbkdf2 i=%d with a %d-byte digest", s, h.iterations, size)
		}
	case *bcryptHash:
		memory = new(big.Int)
		if c, err := strconv.Atoi(string(h.encoded[4:6])); err != nil || c < 4 || c > maxBcryptCost {
			t.Fatalf("parse(%q) accepted bcrypt cost %q", s, h.encoded[4:6])
		}
	case *firescryptHash:
		cost, r, lanes := uint64(h.n), uint64(h.r), uint64(h.p)
		memory = oracleScryptMemory(cost, r, lanes)
		if cost < 2 || cost&(cost-1) != 0 || cost > maxScryptN || r < 1 || lanes < 1 || r*lanes >= 1<<30 ||
			!bigLeq(bigMul(bigU(cost+2), bigU(r), bigU(lanes)), maxScryptWork) ||
			len(h.hash) != len(h.signerKey) || len(h.hash) < minKeyLength {
			t.Fatalf("parse(%q) accepted firescrypt N=%d, r=%d, p=%d", s, cost, r, lanes)
		}
	case *cryptHash:
		memory = new(big.Int)
		rounded := h.variant == sha256Crypt || h.variant == sha512Crypt
		if len(h.salt) > 16 || (rounded && (h.rounds < 1000 || h.rounds > 1_000_000)) || (!rounded && h.variant != md5Crypt) {
			t.Fatalf("parse(%q) accepted %s with rounds %d, a %d-byte salt", s, h.variant.name, h.rounds, len(h.salt))
		}
	case *digestHash:
		memory = new(big.Int)
		if len(h.hash) != h.digest.size || (h.pattern != nil && !strings.Contains(string(h.pattern), "{PASSWORD}")) {
			t.Fatalf("parse(%q) accepted a %d-byte %s digest with pattern %q", s, len(h.hash), h.digest.name, h.pattern)
		}
	case *hmacHash:
		memory = new(big.Int)
		if len(h.key) < 1 || len(h.key) > maxSaltOrKey || len(h.mac) != h.digest().Size() {
			t.Fatalf("parse(%q) accepted %s with a %d-byte key and %d-byte MAC", s, h.name, len(h.key), len(h.mac))
		}
	default:
		t.Fatalf("parse(%q) returned a %T", s, p)
	}
	if !bigLeq(memory, maxMemory) || memory.Cmp(bigU(p.memory())) != 0 {
		t.Fatalf("parse(%q): memory() = %d, want %d, at most %d", s, p.memory(), memory, maxMemory)
	}
}

// oracleArgon2Blocks is what x/crypto's deriveKey allocates, restated.
func oracleArgon2Blocks(m, p uint64) *big.Int {
	if p == 0 {
		return new(big.Int)
	}
	lanes4 := bigMul(bigU(p), big.NewInt(4))
	blocks := bigMul(new(big.Int).Quo(bigU(m), lanes4), lanes4)
	if least := bigMul(lanes4, big.NewInt(2)); blocks.Cmp(least) < 0 {
		return least
	}
	return blocks
}

// oracleScryptMemory is what x/crypto's scrypt.Key allocates, restated: V,
// XY and B.
func oracleScryptMemory(cost, r, p uint64) *big.Int {
	v := bigMul(big.NewInt(128), bigU(cost), bigU(r))
	xy := bigMul(big.NewInt(256), bigU(r))
	b := bigMul(big.NewInt(128), bigU(r), bigU(p))
	return v.Add(v, xy).Add(v, b)
}

// oraclePbkdf2Digest is the output size and weight of a digest name.
func oraclePbkdf2Digest(name string) (size, weight uint64, ok bool) {
	switch name {
	case "sha1":
		return 20, 1, true
	case "sha224":
		return 28, 4, true
	case "sha256":
		return 32, 1, true
	case "sha384":
		return 48, 2, true
	case "sha512":
		return 64, 2, true
	}
	return 1, 0, false
}

func bigU(x uint64) *big.Int { return new(big.Int).SetUint64(x) }

func bigMul(xs ...*big.Int) *big.Int {
	p := big.NewInt(1)
	for _, x := range xs {
		p.Mul(p, x)
	}
	return p
}

func bigLeq(x *big.Int, limit uint64) bool { return x.Cmp(bigU(limit)) <= 0 }

func fits32(xs ...uint64) bool {
	for _, x := range xs {
		if x >= 1<<32 {
			return false
		}
	}
	return true
}
