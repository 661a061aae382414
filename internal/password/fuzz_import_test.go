package password

import (
	"crypto/hmac"
	"crypto/md5"  //nolint:gosec // test oracle
	"crypto/sha1" //nolint:gosec // test oracle
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"math/big"
	"strings"
	"testing"

	"golang.org/x/crypto/md4" //nolint:staticcheck // test oracle
)

// Fuzz targets for the kinds Kratos accepts on import. Like the others, each
// builds hashes from fuzzed parts and checks that exactly the ones within
// the rules are accepted, restating the rules apart from the parsers.

// FuzzCrypt builds md5-crypt, sha256-crypt and sha512-crypt hashes under
// both spellings of their prefix.
func FuzzCrypt(f *testing.F) {
	for i, c := range []struct {
		rounds     uint64
		withRounds bool
		salt, key  string
	}{
		{0, false, "TVEiiKNb", "SN6/pUaRQS/E8Jh46As2C/"},
		{0, false, "", "whuMjZj.HMFoaTaZRRtkO0"},
		{535000, true, "05R.9KB6UC2kLI3w", "Q/zslzx./JjkAVPTwp6th7nW5l7JU91Gte/UmIh.U78"},
		{656000, true, "3LVbIAVxR//cRajw", "uuNasMW.RYxlGzIRFU1Was70BPSa933AjxhZIGJdJBOlqJAHlgqa0yuiuq5JHF/ryNGryJkj87G9i3G2HPSXg1"},
		{999, true, "x", "wyUF1cwljYxWm52mSrCNhPis.RDV.T8CKPSQFvQhatb7XvQEuU8MzHV.HKzrzjDG/HEq.wZtbdTlLzrlSjbao/"},
		{1000, true, "roxbtU9ncg1sqQ8m", "TgUkNzRxu.AIBzFBDYPwsC4UX/PhFwCql2KxA8uRgJ9"},
		{1000001, true, "roxbtU9ncg1sqQ8mX", "TgUkNzRxu.AIBzFBDYPwsC4UX/PhFwCql2KxA8uRgJE"},
		{1 << 32, true, "rounds=1000", "SN6/pUaRQS/E8Jh46As2C2"},
	} {
		for v := range uint8(6) {
			f.Add(v, c.rounds, c.withRounds, c.salt, c.key, fmt.Sprint(i))
		}
	}
	type variant struct {
		prefix string
		v      *cryptVariant
	}
	variants := []variant{
		{"$1$", md5Crypt}, {"$md5-crypt$", md5Crypt},
		{"$5$", sha256Crypt}, {"$sha256-crypt$", sha256Crypt},
		{"$6$", sha512Crypt}, {"$sha512-crypt$", sha512Crypt},
	}
	f.Fuzz(func(t *testing.T, which uint8, rounds uint64, withRounds bool, salt, key, password string) {
		v := variants[int(which)%len(variants)]
		// No "$" in the parts, so that the fuzzer cannot move the fields
		// and the rules below can be about each field.
		salt, key = strings.ReplaceAll(salt, "$", "%"), strings.ReplaceAll(key, "$", "%")
		s := v.prefix
		if withRounds {
			s += fmt.Sprintf("rounds=%d$", rounds)
		}
		s += salt + "$" + key
		parsed := checkParse(t, s)
		alphabet := "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		// Key length, bits in the key's last character, salt length: from
		// the algorithms' specifications.
		spec := map[string][3]int{
			"md5-crypt": {22, 2, 8}, "sha256-crypt": {43, 4, 16}, "sha512-crypt": {86, 2, 16},
		}[v.v.name]
		keyChars, lastBits, maxSalt := spec[0], spec[1], spec[2]
		inAlphabet := func(x string) bool {
			for i := range len(x) {
				if !strings.Contains(alphabet, x[i:i+1]) {
					return false
				}
			}
			return true
		}
		roundsOK := !withRounds || (v.v != md5Crypt && rounds >= 1000 && rounds <= 1_000_000)
		want := len(s) <= maxHashLength && roundsOK &&
			len(salt) <= maxSalt && inAlphabet(salt) &&
			len(key) == keyChars && inAlphabet(key) && strings.Index(alphabet, key[len(key)-1:]) < 1<<lastBits
		if got := parsed != nil; got != want {
			t.Fatalf("parse(%q) accepted = %v, want %v", s, got, want)
		}
		if parsed != nil && (!withRounds || rounds <= 5000) {
			parsed.verify([]byte(password)) // must not panic
		}
	})
}

// FuzzFirescrypt does for Firebase scrypt what FuzzScrypt does for scrypt.
func FuzzFirescrypt(f *testing.F) {
	salt, sep, key := []byte("saltsalt"), []byte{7}, []byte("0123456789abcdef0123456789abcdef")
	for _, c := range [][3]uint64{
		{14, 8, 1}, {20, 8, 1}, {21, 1, 1}, {0, 8, 1}, {31, 8, 1}, {20, 16, 1}, {20, 8, 2},
		{1, 1, 2500000}, {1, 1, 2500001}, {1, 1, 1073741823}, {1, 1, 1 << 30}, {14, 0, 1}, {64, 1, 1},
	} {
		f.Add(c[0], c[1], c[2], salt, key, sep, key, true)
		f.Add(c[0], c[1], c[2], salt, key[:16], []byte{}, key[:16], false)
	}
	f.Add(uint64(14), uint64(8), uint64(1), salt, key[:31], sep, key, true)
	f.Fuzz(func(t *testing.T, logN, r, p uint64, salt, hashed, sep, signer []byte, padded bool) {
		enc := base64.RawStdEncoding
		if padded {
			enc = base64.StdEncoding
		}
		s := fmt.Sprintf("$firescrypt$ln=%d,r=%d,p=%d$%s$%s$%s$%s", logN, r, p,
			enc.EncodeToString(salt), enc.EncodeToString(hashed), enc.EncodeToString(sep), enc.EncodeToString(signer))
		parsed := checkParse(t, s)
		n := new(big.Int).Lsh(big.NewInt(1), uint(min(logN, 64)))
		want := len(s) <= maxHashLength && fits32(logN, r, p) && logN >= 1 && logN <= 20 && r >= 1 && p >= 1 &&
			bigLeq(new(big.Int).Add(bigMul(big.NewInt(128), n, bigU(r)), bigMul(big.NewInt(128), bigU(r), new(big.Int).Add(bigU(p), big.NewInt(2)))), maxMemory) &&
			bigLeq(bigMul(new(big.Int).Add(n, big.NewInt(2)), bigU(r), bigU(p)), maxScryptWork) &&
			len(salt) >= 1 && len(salt) <= maxSaltOrKey && len(sep) <= maxSaltOrKey &&
			len(hashed) >= minKeyLength && len(hashed) <= maxSaltOrKey && len(signer) == len(hashed)
		if got := parsed != nil; got != want {
			t.Fatalf("parse(%q) accepted = %v, want %v", s, got, want)
		}
	})
}

// oracleDigests are the digests of the salted layouts, restated.
var oracleDigests = map[string]func([]byte) []byte{
	"md5":    func(b []byte) []byte { s := md5.Sum(b); return s[:] },  //nolint:gosec // test oracle
	"sha1":   func(b []byte) []byte { s := sha1.Sum(b); return s[:] }, //nolint:gosec // test oracle
	"sha256": func(b []byte) []byte { s := sha256.Sum256(b); return s[:] },
	"sha512": func(b []byte) []byte { s := sha512.Sum512(b); return s[:] },
}

// oracleSubstitute fills a pattern by scanning it once, left to right, which
// is what Kratos's strings.Replacer does, written differently.
func oracleSubstitute(pattern, salt, password []byte) []byte {
	var out []byte
	for i := 0; i < len(pattern); {
		switch {
		case strings.HasPrefix(string(pattern[i:]), "{SALT}"):
			out, i = append(out, salt...), i+len("{SALT}")
		case strings.HasPrefix(string(pattern[i:]), "{PASSWORD}"):
			out, i = append(out, password...), i+len("{PASSWORD}")
		default:
			out, i = append(out, pattern[i]), i+1
		}
	}
	return out
}

// FuzzDigest builds the salted-digest layouts ($sha1$, $sha256$, $sha512$,
// $md5$ with and without pf=, {SSHA…}); with real set, the digest is the
// right one for password, which must then verify, and a changed password must
// not.
func FuzzDigest(f *testing.F) {
	pf := []byte("{SALT}{PASSWORD}")
	for layout := range uint8(8) {
		f.Add(layout, pf, []byte("5opmkgz03r"), []byte("0123456789abcdef0123456789abcdef"), []byte("test"), true)
		f.Add(layout, []byte("{SALT}"), []byte{}, []byte("0123"), []byte(""), false)
		f.Add(layout, []byte("??{PASSWORD}{PASSWORD}{SALT}{SALT}$"), []byte("{PASSWORD}"), []byte{}, []byte("{SALT}"), true)
	}
	type layout struct {
		kind, digest string // kind: "pf", "plain" ($md5$<digest>), "ssha"
		prefix       string
	}
	layouts := []layout{
		{"pf", "sha1", "$sha1$"}, {"pf", "sha256", "$sha256$"}, {"pf", "sha512", "$sha512$"}, {"pf", "md5", "$md5$"},
		{"plain", "md5", "$md5$"}, {"ssha", "sha1", "{SSHA}"}, {"ssha", "sha256", "{SSHA256}"}, {"ssha", "sha512", "{SSHA512}"},
	}
	f.Fuzz(func(t *testing.T, which uint8, pattern, salt, digest, password []byte, real bool) {
		l := layouts[int(which)%len(layouts)]
		sum := oracleDigests[l.digest]
		size := len(sum(nil))
		if real {
			switch l.kind {
			case "pf":
				digest = sum(oracleSubstitute(pattern, salt, password))
			case "plain":
				digest = sum(password)
			case "ssha":
				digest = sum(append(append([]byte{}, password...), salt...))
			}
		}
		enc := base64.StdEncoding.EncodeToString
		var s string
		var want bool
		switch l.kind {
		case "pf":
			s = l.prefix + "pf=" + enc(pattern) + "$" + enc(salt) + "$" + enc(digest)
			want = len(pattern) >= 1 && len(pattern) <= maxSaltOrKey && strings.Contains(string(pattern), "{PASSWORD}") &&
				len(salt) <= maxSaltOrKey && len(digest) == size
		case "plain":
			s = l.prefix + enc(digest)
			want = len(digest) == size
		case "ssha":
			// The digest is the first size bytes of the value and the salt
			// the rest, however the fuzzer split them.
			s = l.prefix + enc(append(append([]byte{}, digest...), salt...))
			total := len(digest) + len(salt)
			want = total > size && total <= maxSaltOrKey
		}
		want = want && len(s) <= maxHashLength
		parsed := checkParse(t, s)
		if got := parsed != nil; got != want {
			t.Fatalf("parse(%q) accepted = %v, want %v", s, got, want)
		}
		if parsed == nil {
			return
		}
		if got := parsed.verify(password); real && !got {
			t.Fatalf("parse(%q): the right password does not verify", s)
		}
		if real && parsed.verify(append(append([]byte{}, password...), 'x')) {
			t.Fatalf("parse(%q): a wrong password verifies", s)
		}
	})
}

// oracleHMACs are the HMAC digests, restated.
var oracleHMACs = map[string]func() hash.Hash{
	"md4": md4.New, "md5": md5.New, "sha1": sha1.New, "sha224": sha256.New224,
	"sha256": sha256.New, "sha384": sha512.New384, "sha512": sha512.New,
}

// FuzzHMAC builds "$hmac-…$" hashes; with real set, the MAC is the right one
// for password, which must then verify.
func FuzzHMAC(f *testing.F) {
	for _, d := range []string{"md4", "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sha3", "", "MD5"} {
		f.Add(d, []byte("0123456789abcdef"), false, []byte("12345"), []byte("test"), true)
		f.Add(d, []byte("0123456789abcdef"), true, []byte{}, []byte("test"), false)
	}
	f.Fuzz(func(t *testing.T, digest string, mac []byte, upper bool, key, password []byte, real bool) {
		newHash, known := oracleHMACs[digest]
		if real && known {
			m := hmac.New(newHash, key)
			m.Write(password)
			mac = m.Sum(nil)
		}
		text := hex.EncodeToString(mac)
		if upper {
			text = strings.ToUpper(text)
		}
		enc := base64.StdEncoding.EncodeToString
		s := "$hmac-" + digest + "$" + enc([]byte(text)) + "$" + enc(key)
		parsed := checkParse(t, s)
		want := known && len(s) <= maxHashLength && len(mac) == newHash().Size() && len(key) >= 1 && len(key) <= maxSaltOrKey
		if got := parsed != nil; got != want {
			t.Fatalf("parse(%q) accepted = %v, want %v", s, got, want)
		}
		if parsed == nil {
			return
		}
		if got := parsed.verify(password); real && !got {
			t.Fatalf("parse(%q): the right password does not verify", s)
		}
	})
}
