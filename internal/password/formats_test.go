package password

import (
	"crypto/sha1" //nolint:gosec // test vectors
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/identityd/identityd/model"
)

// importVectors are known hashes of every kind added for Kratos's import
// formats, each with the password it was made from. They are facts from
// outside this package, never made by it:
//
//   - "kratos": ory/kratos hash/hasher_test.go (TestCompare), the hashes and
//     passwords its comparator is tested with;
//   - "kratos docs": the examples in Kratos's "import identities" page
//     (their password is 123456, the one given for the pbkdf2 example);
//   - "firebase": the example in the README of github.com/firebase/scrypt,
//     Firebase's published algorithm;
//   - "crypt(3)": a Kratos vector under the crypt(3) prefix Kratos rewrites
//     its own to before comparing ($md5-crypt$ → $1$, …), cross-checked
//     with libxcrypt's crypt(3); hashes written by OpenSSL's implementation
//     (`openssl passwd -1|-5|-6 -salt SALT PASSWORD`), which cover the
//     default rounds; and ones written by libxcrypt's crypt(3) (Python's
//     crypt.crypt(PASSWORD, "$6$rounds=1000$SALT")), which cover the
//     lowest rounds.
//
// costly marks the ones whose comparison takes a noticeable time, so that the
// wrong-password check runs once rather than for every wrong password.
var importVectors = []struct {
	source, password, hash, algorithm string
	costly                            bool
}{
	// The examples of Kratos's import page, all of the password 123456;
	// pbkdf2's l= is ignored as Kratos does (l=128, a 16-byte key).
	{"kratos docs", "123456", "$pbkdf2-sha256$i=1000,l=128$e8/arsEf4cvQihdNgqj0Nw$5xQQKNTyeTHx2Ld5/JDE7A", "pbkdf2", false},
	{"kratos docs", "123456", "$scrypt$ln=16384,r=8,p=1$ZtQva9xCHzlSELH/mA7Kj5KjH2tCrkbwYzdxknkL0QQ=$pnTcXKaWVT+FwFDdk3vO1K0J7ZgOxdSU1tCJNYmn8zI=", "scrypt", true},
	{"kratos docs", "123456", "$argon2id$v=19$m=16,t=2,p=1$bVI1aE1SaTV6SGQ3bzdXdw$fnjCcZYmEPOUOjYXsT92Cg", "argon2id", false},
	{"kratos docs", "123456", "$2a$10$ZsCsoVQ3xfBG/K2z2XpBf.tm90GZmtOqtqWcB5.pYd5Eq8y7RlDyq", "bcrypt", true},

	// Firebase scrypt.
	{"kratos", "8x4WjoDbSxJZdR", "$firescrypt$ln=14,r=8,p=1$sPtDhWcd1MfdAw==$xbSou7FOl6mChCyzpCPIQ7tku7nsQMTFtyOZSXXd7tjBa4NtimOx7v42Gv2SfzPQu1oxM2/k4SsbOu73wlKe1A==$Bw==$YE0dO4bwD4JnJafh6lZZfkp1MtKzuKAXQcDCJNJNyeCHairWHKENOkbh3dzwaCdizzOspwr/FITUVlnOAwPKyw==", "firescrypt", true},
	{"firebase", "user1password", "$firescrypt$ln=14,r=8,p=1$42xEC+ixf3L2lw==$lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==$Bw==$jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==", "firescrypt", true},

	// md5-crypt.
	{"kratos", "test", "$md5-crypt$TVEiiKNb$SN6/pUaRQS/E8Jh46As2C/", "md5-crypt", false},
	{"kratos", "test", "$md5-crypt$$whuMjZj.HMFoaTaZRRtkO0", "md5-crypt", false},
	{"kratos", "ory", "$md5-crypt$xWMlm2eL$GGTOpgZu4p2k6ORprAu3b.", "md5-crypt", false},
	{"crypt(3)", "test", "$1$TVEiiKNb$SN6/pUaRQS/E8Jh46As2C/", "md5-crypt", false},
	{"crypt(3)", "test", "$1$$whuMjZj.HMFoaTaZRRtkO0", "md5-crypt", false},
	{"crypt(3)", "correct horse", "$1$roxbtU9n$VSyS4sgOwNzUyKZduN/cQ.", "md5-crypt", false},

	// sha256-crypt.
	{"kratos", "test", "$sha256-crypt$rounds=535000$05R.9KB6UC2kLI3w$Q/zslzx./JjkAVPTwp6th7nW5l7JU91Gte/UmIh.U78", "sha256-crypt", true},
	{"kratos", "ory", "$sha256-crypt$rounds=535000$awpcR7lDlnK/S7WE$vHU7KkQwyjfGz6u4MUi7.lH9htK/l63HloTsX1ZMz.3", "sha256-crypt", true},
	{"crypt(3)", "correct horse", "$5$rounds=1000$roxbtU9ncg1sqQ8m$TgUkNzRxu.AIBzFBDYPwsC4UX/PhFwCql2KxA8uRgJ9", "sha256-crypt", false},
	{"crypt(3)", "correct horse", "$5$roxbtU9ncg1sqQ8m$L0nWm9I8g3.XvmP8OlNOA2PgujCBKNHG8ap6Pcyn3HA", "sha256-crypt", false},

	// sha512-crypt.
	{"kratos", "test", "$sha512-crypt$rounds=656000$3LVbIAVxR//cRajw$uuNasMW.RYxlGzIRFU1Was70BPSa933AjxhZIGJdJBOlqJAHlgqa0yuiuq5JHF/ryNGryJkj87G9i3G2HPSXg1", "sha512-crypt", true},
	{"kratos", "ory", "$sha512-crypt$rounds=656000$0baQbxBrfpKqvizk$Q9cYk1MeNAlECPgpG3jjfNI2DumLqd0yHbxzLdxiX6nsSD5i9n0awcbiCf8R5DzpIYxeBPznPcb1wtzlgUKtH0", "sha512-crypt", true},
	{"crypt(3)", "correct horse", "$6$rounds=1000$roxbtU9ncg1sqQ8m$FHXJkvfQXdLjdRaRBZB6WYNPOmOzbqZY7gpDXqzqfkTa1V68swWnvcW5o4ZZZqpikvDot.QU3dihlLIV.D6m40", "sha512-crypt", false},
	{"crypt(3)", "correct horse", "$6$roxbtU9ncg1sqQ8m$1dun5QpM1LFO2pqZTd8MS3tzjYEoevPgBrRQNveb0Udy3374.IQ9JhBLdAUAiDEiacAwSvmSkatGyRLR693gb0", "sha512-crypt", false},
	{"crypt(3)", "correct horse", "$6$x$wyUF1cwljYxWm52mSrCNhPis.RDV.T8CKPSQFvQhatb7XvQEuU8MzHV.HKzrzjDG/HEq.wZtbdTlLzrlSjbao/", "sha512-crypt", false},

	// Salted SHA with Kratos's pf= patterns.
	{"kratos", "test", "$sha1$pf=e1NBTFR9e1BBU1NXT1JEfQ==$NW9wbWtnejAzcg==$2qU2SGWP8viTM1md3FiI3+rjWXQ=", "sha1", false},                     // {SALT}{PASSWORD}
	{"kratos", "BwS^514g^cv@Z", "$sha1$pf=e1NBTFR9e1BBU1NXT1JEfQ==$NW9wbWtnejAzcg==$99h9net4BXl7qdTRaiGUobLROxM=", "sha1", false},            // {SALT}{PASSWORD}
	{"kratos", "test", "$sha1$pf=Pz9zdGF0aWNQcmVmaXg/P3tTQUxUfXtQQVNTV09SRH0=$NW9wbWtnejAzcg==$SAAxMUn7jxckQXkBmsVF0nHwqso=", "sha1", false}, // ??staticPrefix??{SALT}{PASSWORD}
	{"kratos", "test", "$sha1$pf=e1BBU1NXT1JEfSUle1NBTFR9$NW9wbWtnejAzcg==$YX0AW8/MW5ojUlnzTaR43ucHCog=", "sha1", false},                     // {PASSWORD}%%{SALT}
	{"kratos", "test", "$sha1$pf=JHtQQVNTV09SRH0ke1NBTFR9JA==$NW9wbWtnejAzcg==$iE5n1yjX3oAdxRHwZ4u57I4LpQo=", "sha1", false},                 // ${PASSWORD}${SALT}$
	{"kratos", "test", "$sha256$pf=e1NBTFR9e1BBU1NXT1JEfQ==$NW9wbWtnejAzcg==$0gfRVLCvtBCk20udLDEY5vNhujWx7RGjwRIS1ebMsLY=", "sha256", false},
	{"kratos", "test", "$sha256$pf=e1NBTFR9JCR7UEFTU1dPUkR9$NW9wbWtnejAzcg==$HokCOi9OtiZaZRvnkgemV3B4UUHpI7kA8zq/EZWH2NY=", "sha256", false}, // {SALT}$${PASSWORD}
	{"kratos", "test", "$sha512$pf=e1NBTFR9e1BBU1NXT1JEfQ==$NW9wbWtnejAzcg==$6ctpVuApMNp0CgBXcdHw/GC562eFEFGr4gpgANX8ZYsX+j5B19IkdmOY2Fytsz3QUwSWdGcUjbqwgJGTH0UYvw==", "sha512", false},
	{"kratos", "test", "$sha512$pf=e1NBTFR9JCR7UEFTU1dPUkR9$NW9wbWtnejAzcg==$1F9BPW8UtdJkZ9Dhlf+D4X4dJ9xfuH8y04EfuCP2k4aGPPq/aWxU9/xe3LydHmYW1/K3zu3NFO9ETVrZettz3w==", "sha512", false},

	// LDAP salted SHA.
	{"kratos", "test123", "{SSHA}JFZFs0oHzxbMwkSJmYVeI8MnTDy/276a", "ssha", false},
	{"kratos", "test123", "{SSHA256}czO44OTV17PcF1cRxWrLZLy9xHd7CWyVYplr1rOhuMlx/7IK", "ssha256", false},
	{"kratos", "test123", "{SSHA512}xPUl/px+1cG55rUH4rzcwxdOIPSB2TingLpiJJumN2xyDWN4Ix1WQG3ihnvHaWUE8MYNkvMi5rf0C9NYixHsE6Yh59M=", "ssha512", false},

	// MD5, unsalted and with pf=.
	{"kratos", "test", "$md5$CY9rzUYh03PK3k6DJie09g==", "md5", false},
	{"kratos", "ory", "$md5$ptoWyof5SobW+pbZu2QXoQ==", "md5", false},
	{"kratos", "test", "$md5$pf=e1NBTFR9e1BBU1NXT1JEfQ==$MTIz$q+RdKCgc+ipCAcm5ChQwlQ==", "md5", false},        // {SALT}{PASSWORD}, salt 123
	{"kratos", "test", "$md5$pf=e1NBTFR9JCR7UEFTU1dPUkR9$MTIzNA==$ud392Z8rfZ+Ou7ZFXYLKbA==", "md5", false},    // {SALT}$${PASSWORD}, salt 1234
	{"kratos", "ory", "$md5$pf=e1BBU1NXT1JEfXtTQUxUfSQ/$MTIzNDU2Nzg5$8PhwWanVRnpJAFK4NUjR0w==", "md5", false}, // {PASSWORD}{SALT}$?, salt 123456789

	// HMAC, key "12345".
	{"kratos", "test", "$hmac-md4$MWQ5ZTI4Nzc2Zjg4YmE2MTQ5YjQ0OTMyOGE4NWU4YjA=$MTIzNDU=", "hmac-md4", false},
	{"kratos", "test", "$hmac-md5$ZmU4Njk3Zjc0MmQwODA0MDVkMTI3MGU2MTYzMzE2Zjk=$MTIzNDU=", "hmac-md5", false},
	{"kratos", "test", "$hmac-sha1$NDMyNjcxZTUyY2Y2YTBmYjZjZDE2NjQxYjAwNjFiZjAwOGEzNWM5MA==$MTIzNDU=", "hmac-sha1", false},
	{"kratos", "test", "$hmac-sha224$YmUwYmYzM2EwNGRlNDE0YjQzNjBhNmIyOThmNmIyYzI4OWQyMzk3MDUwZDFjMzliYjVmMDMyOTQ=$MTIzNDU=", "hmac-sha224", false},
	{"kratos", "test", "$hmac-sha256$ZTAzMWJhMWMyOTM4YjFkMjgzZjkxOWExZGY5YWM2NmMxOTJhN2RkNzQ0MzJkNWZkNGFkYTI5OTk0MWJhMTA5Zg==$MTIzNDU=", "hmac-sha256", false},
	{"kratos", "test", "$hmac-sha384$ZWEyMGM3NGE4Y2UzMTljNTdjZTlhZGQyYTZjNDE0MGQ4YjMwYWIwOWM4OTRiNWQ4MmZjODlhMzBhMmQzNGE5NmQ0NDY1NWRhYjQ2ZjhiYjBkNTRmYjk5YWZkZTA1MGY1$MTIzNDU=", "hmac-sha384", false},
	{"kratos", "test", "$hmac-sha512$OTFmODY0ZTI1NmU0ZjVhYjhiMDViZGFmNGVmNGZmMGVlNTY4ODYwNWJhYTk4MTk2OTgyMzc3NzI1YTc4MzcxMTMzNzZmY2YxYTk5MGMxM2RiZDk2MGFmMmQ1YzRmODdlMGMwYTNkYjcyNjY0NjM4NGE4YzQ2MjNhZDZkN2UxZTE=$MTIzNDU=", "hmac-sha512", false},
}

// kratosWrongPairs are the mismatches Kratos's tests assert: a password with
// a hash made from another password, or with another key or salt.
var kratosWrongPairs = []struct{ password, hash string }{
	{"badtest", "{SSHA}JFZFs0oHzxbMwkSJmYVeI8MnTDy/276a"},
	{"badtest", "{SSHA256}czO44OTV17PcF1cRxWrLZLy9xHd7CWyVYplr1rOhuMlx/7IK"},
	{"badtest", "{SSHA512}xPUl/px+1cG55rUH4rzcwxdOIPSB2TingLpiJJumN2xyDWN4Ix1WQG3ihnvHaWUE8MYNkvMi5rf0C9NYixHsE6Yh59M="},
	{"wrongpass", "$sha1$pf=e1NBTFR9e1BBU1NXT1JEfQ==$NW9wbWtnejAzcg==$2qU2SGWP8viTM1md3FiI3+rjWXQ="},
	{"tset", "$sha1$pf=e1NBTFR9e1BBU1NXT1JEfQ==$NW9wbWtnejAzcg==$2qU2SGWP8viTM1md3FiI3+rjWXQ="},
	{"test", "$sha1$pf=e1NBTFR9e1BBU1NXT1JEfQ==$cDJvb3ZrZGJ6cQ==$2qU2SGWP8viTM1md3FiI3+rjWXQ="}, // wrong salt
	{"wrongpass", "$sha256$pf=e1NBTFR9e1BBU1NXT1JEfQ==$NW9wbWtnejAzcg==$0gfRVLCvtBCk20udLDEY5vNhujWx7RGjwRIS1ebMsLY="},
	{"wrongpass", "$sha512$pf=e1NBTFR9e1BBU1NXT1JEfQ==$NW9wbWtnejAzcg==$6ctpVuApMNp0CgBXcdHw/GC562eFEFGr4gpgANX8ZYsX+j5B19IkdmOY2Fytsz3QUwSWdGcUjbqwgJGTH0UYvw=="},
	{"test", "$md5$WhBei51A4TKXgNYuoiZdig=="},
	{"test", "$md5$Dk/E5LQLsx4yt8QbUbvpdg=="},
	{"ory", "$md5$4skj967KRHFsnPFoL5dMMw=="},
	{"test", "$md5$pf=e1NBTFR9e1BBU1NXT1JEfQ==$MTIz$hh8ZTp1hGPPZQqcr4+UXSQ=="},
	{"test1", "$md5$pf=e1NBTFR9JCR7UEFTU1dPUkR9$MTIzNA==$ud392Z8rfZ+Ou7ZFXYLKbA=="},
	{"ory1", "$md5$pf=e1BBU1NXT1JEfXtTQUxUfSQ/$MTIzNDU2Nzg5$8PhwWanVRnpJAFK4NUjR0w=="},
	{"test", "$md5-crypt$xWMlm2eL$GGTOpgZu4p2k6ORprAu3b."},
	{"ory", "$md5-crypt$E7zjruqF$RTglYR1CzBHwwiTk9nVzx1"},
	{"test", "$sha256-crypt$rounds=535000$awpcR7lDlnK/S7WE$vHU7KkQwyjfGz6u4MUi7.lH9htK/l63HloTsX1ZMz.3"},
	{"ory", "$sha512-crypt$rounds=656000$hNcDLFO63bkYVDZf$Mt9dhH0xqfxWZ6Pu8zXw.Ku5f15IRTweuaDcUc.ObXWGn7B1h8YIWLmArZd8psd2mrUVswCXLAVptmISr.8iI/"},
	{"test", "$hmac-md4$MWQ5ZTI4Nzc2Zjg4YmE2MTQ5YjQ0OTMyOGE4NWU4YjA=$MTIzNA=="}, // wrong key
	{"ory", "$hmac-md4$MWQ5ZTI4Nzc2Zjg4YmE2MTQ5YjQ0OTMyOGE4NWU4YjA=$MTIzNDU="},
	{"test", "$hmac-md5$ZmU4Njk3Zjc0MmQwODA0MDVkMTI3MGU2MTYzMzE2Zjk=$MTIzNA=="},
	{"test", "$hmac-sha256$ZTAzMWJhMWMyOTM4YjFkMjgzZjkxOWExZGY5YWM2NmMxOTJhN2RkNzQ0MzJkNWZkNGFkYTI5OTk0MWJhMTA5Zg==$MTIzNA=="},
	{"ory", "$hmac-sha512$OTFmODY0ZTI1NmU0ZjVhYjhiMDViZGFmNGVmNGZmMGVlNTY4ODYwNWJhYTk4MTk2OTgyMzc3NzI1YTc4MzcxMTMzNzZmY2YxYTk5MGMxM2RiZDk2MGFmMmQ1YzRmODdlMGMwYTNkYjcyNjY0NjM4NGE4YzQ2MjNhZDZkN2UxZTE=$MTIzNDU="},
	// Firebase's README password with Kratos's firescrypt hash.
	{"user1password", "$firescrypt$ln=14,r=8,p=1$sPtDhWcd1MfdAw==$xbSou7FOl6mChCyzpCPIQ7tku7nsQMTFtyOZSXXd7tjBa4NtimOx7v42Gv2SfzPQu1oxM2/k4SsbOu73wlKe1A==$Bw==$YE0dO4bwD4JnJafh6lZZfkp1MtKzuKAXQcDCJNJNyeCHairWHKENOkbh3dzwaCdizzOspwr/FITUVlnOAwPKyw=="},
}

func TestCompareImportVectors(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 4)
	for _, v := range importVectors {
		t.Run(v.source+" "+v.hash[:min(len(v.hash), 24)], func(t *testing.T) {
			t.Parallel()
			if got, err := Recognise(v.hash); err != nil || got != v.algorithm {
				t.Errorf("Recognise = %q, %v; want %q", got, err, v.algorithm)
			}
			var wrong []string
			for _, pw := range []string{v.password + "x", strings.ToUpper(v.password), ""} {
				if pw != v.password {
					wrong = append(wrong, pw)
				}
			}
			if v.costly {
				wrong = wrong[:1]
			}
			if got, err := h.Compare(t.Context(), v.password, v.hash); err != nil || !got {
				t.Errorf("Compare(right password) = %v, %v; want true", got, err)
			}
			for _, pw := range wrong {
				if got, err := h.Compare(t.Context(), pw, v.hash); err != nil || got {
					t.Errorf("Compare(%q) = %v, %v; want false", pw, got, err)
				}
			}
			if !h.NeedsRehash(v.hash) {
				t.Errorf("NeedsRehash = false for an imported %s hash", v.algorithm)
			}
		})
	}
}

func TestCompareKratosMismatches(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 4)
	for _, c := range kratosWrongPairs {
		t.Run(c.hash[:min(len(c.hash), 24)], func(t *testing.T) {
			t.Parallel()
			if got, err := h.Compare(t.Context(), c.password, c.hash); err != nil || got {
				t.Errorf("Compare(%q) = %v, %v; want false, nil", c.password, got, err)
			}
		})
	}
}

// TestEveryFormatHasVectors: the table is the one place a kind is added, and
// a kind without a vector for each of its prefixes is not tested; the table
// must also stay free of prefixes that start one another, so that its order
// never decides which entry a hash belongs to.
func TestEveryFormatHasVectors(t *testing.T) {
	t.Parallel()
	var all []string
	for _, v := range vectors {
		all = append(all, v.hash)
	}
	for _, v := range importVectors {
		all = append(all, v.hash)
	}
	names := map[string]bool{}
	for _, f := range formats {
		if names[f.name] {
			t.Errorf("two entries are named %q", f.name)
		}
		names[f.name] = true
		for _, p := range f.prefixes {
			found := false
			for _, h := range all {
				found = found || strings.HasPrefix(h, p)
			}
			if !found {
				t.Errorf("%s: no test vector starts with %q", f.name, p)
			}
			for _, g := range formats {
				for _, q := range g.prefixes {
					if p != q && strings.HasPrefix(q, p) {
						t.Errorf("prefix %q (%s) starts prefix %q (%s)", p, f.name, q, g.name)
					}
					if p == q && f.name != g.name {
						t.Errorf("prefix %q is in %s and %s", p, f.name, g.name)
					}
				}
			}
		}
	}
}

// TestUnrecognisedMessage: the message lists every kind by its prefixes,
// yet no part of it is a hash (answers are checked for hashes, and this
// message is one of them).
func TestUnrecognisedMessage(t *testing.T) {
	t.Parallel()
	_, err := Recognise("$yescrypt$")
	var e *model.Error
	if !errors.As(err, &e) || !strings.HasPrefix(e.Message, "unrecognised password hash format (supported: argon2id, ") {
		t.Fatalf("Recognise = %v", err)
	}
	for _, f := range formats {
		if f.name == "argon2id" || f.name == "argon2i" || f.name == "pbkdf2" || f.name == "scrypt" {
			continue // listed by name: their prefixes look like a hash's start
		}
		for _, p := range f.prefixes {
			if !strings.Contains(e.Message, p) {
				t.Errorf("message does not list %q (%s)", p, f.name)
			}
		}
	}
	for i := range e.Message {
		if c := e.Message[i]; c == '$' || c == '{' {
			if _, err := parse(e.Message[i:], defaultLimits); err == nil {
				t.Errorf("message contains a hash at %d: %q", i, e.Message[i:])
			}
		}
	}
}

func TestRecogniseRefusesImportKinds(t *testing.T) {
	t.Parallel()
	const (
		b64salt  = "NW9wbWtnejAzcg=="                            // "5opmkgz03r"
		pfSP     = "pf=e1NBTFR9e1BBU1NXT1JEfQ=="                 // {SALT}{PASSWORD}
		sha1Hash = "2qU2SGWP8viTM1md3FiI3+rjWXQ="                // 20 bytes
		shaKey43 = "Q/zslzx./JjkAVPTwp6th7nW5l7JU91Gte/UmIh.U78" // sha256-crypt
		shaKey86 = "uuNasMW.RYxlGzIRFU1Was70BPSa933AjxhZIGJdJBOlqJAHlgqa0yuiuq5JHF/ryNGryJkj87G9i3G2HPSXg1"
		md5Key   = "SN6/pUaRQS/E8Jh46As2C/"
		hmacMD5  = "ZmU4Njk3Zjc0MmQwODA0MDVkMTI3MGU2MTYzMzE2Zjk=" // hex of a 16-byte HMAC, in base64
		fireSalt = "sPtDhWcd1MfdAw=="
		fireHash = "xbSou7FOl6mChCyzpCPIQ7tku7nsQMTFtyOZSXXd7tjBa4NtimOx7v42Gv2SfzPQu1oxM2/k4SsbOu73wlKe1A=="
		fireKey  = "YE0dO4bwD4JnJafh6lZZfkp1MtKzuKAXQcDCJNJNyeCHairWHKENOkbh3dzwaCdizzOspwr/FITUVlnOAwPKyw=="
		unrecog  = "unrecognised password hash format"
	)
	fire := func(params, sep string) string {
		return "$firescrypt$" + params + "$" + fireSalt + "$" + fireHash + "$" + sep + "$" + fireKey
	}
	for _, c := range []struct {
		name, hash, want string
	}{
		// Not recognised: near misses of the new prefixes.
		{"yescrypt", "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$tnSYvahCwPBHKZUspmcxMfb0.WiB9W.zEaKlOBL35rC", unrecog},
		{"apr1", "$apr1$roxbtU9n$VSyS4sgOwNzUyKZduN/cQ.", unrecog},
		{"sha384 pattern", "$sha384$" + pfSP + "$" + b64salt + "$" + sha1Hash, unrecog},
		{"unsalted {SHA}", "{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", unrecog},
		{"ssha lower case", "{ssha}JFZFs0oHzxbMwkSJmYVeI8MnTDy/276a", unrecog},
		{"{SSHAnotExistent} (kratos)", "{SSHAnotExistent}xPUl/px+1cG55rUH4rzcwxdOIPSB2TingLpiJJumN2xyDWN4Ix1WQG3ihnvHaWUE8MYNkvMi5rf0C9NYixHsE6Yh59M=", unrecog},
		{"{CRYPT} wrapper", "{CRYPT}$1$TVEiiKNb$SN6/pUaRQS/E8Jh46As2C/", unrecog},
		{"$hmac$ without digest (kratos)", "$hmac$" + hmacMD5 + "$MTIzNDU=", unrecog},
		{"$shaNotExistent$ (kratos)", "$shaNotExistent$" + pfSP + "$" + b64salt + "$" + sha1Hash, unrecog},

		// md5-crypt
		{"md5-crypt no salt part (kratos)", "$md5-crypt$whuMjZj.HMFoaTaZRRtkO0", "malformed md5-crypt password hash: expected $<salt>$<hash>"},
		{"md5-crypt empty (kratos)", "$md5-crypt$$", "malformed md5-crypt password hash: hash must be 22 characters"},
		{"md5-crypt $$$ (kratos)", "$md5-crypt$$$", "expected $<salt>$<hash>"},
		{"md5-crypt rounds", "$1$rounds=5000$TVEiiKNb$" + md5Key, "expected $<salt>$<hash>"},
		{"md5-crypt long salt", "$1$TVEiiKNbX$" + md5Key, "salt must be at most 8 characters"},
		{"md5-crypt salt alphabet", "$1$TVEi:KNb$" + md5Key, "salt must be at most 8 characters of crypt's alphabet"},
		{"md5-crypt short hash", "$1$TVEiiKNb$" + md5Key[1:], "hash must be 22 characters"},
		{"md5-crypt hash alphabet", "$1$TVEiiKNb$" + md5Key[:21] + "+", "hash must be 22 characters of crypt's alphabet"},
		{"md5-crypt non-canonical", "$1$TVEiiKNb$" + md5Key[:21] + "2", "not canonical"},

		// sha256-crypt and sha512-crypt
		{"sha256-crypt $$ (kratos)", "$sha256-crypt$$", "malformed sha256-crypt password hash: hash must be 43 characters"},
		{"sha512-crypt $$$ (kratos)", "$sha512-crypt$$$", "malformed sha512-crypt password hash: expected $[rounds=<N>$]<salt>$<hash>"},
		{"sha256-crypt rounds 999", "$5$rounds=999$05R.9KB6UC2kLI3w$" + shaKey43, "rounds of 999 is outside 1000 to 1000000"},
		{"sha512-crypt rounds past the limit", "$6$rounds=1000001$3LVbIAVxR//cRajw$" + shaKey86, "rounds of 1000001 is outside 1000 to 1000000"},
		{"sha512-crypt rounds glibc max", "$6$rounds=999999999$3LVbIAVxR//cRajw$" + shaKey86, "outside 1000 to 1000000"},
		{"sha512-crypt rounds overflow", "$6$rounds=99999999999$3LVbIAVxR//cRajw$" + shaKey86, "parameter rounds is too large"},
		{"sha512-crypt rounds sign", "$6$rounds=+5000$3LVbIAVxR//cRajw$" + shaKey86, "parameters must be rounds=…"},
		{"sha512-crypt rounds twice", "$6$rounds=5000$rounds=5000$3LVbIAVxR//cRajw$" + shaKey86, "expected $[rounds=<N>$]<salt>$<hash>"},
		{"sha256-crypt salt 17", "$5$05R.9KB6UC2kLI3wX$" + shaKey43, "salt must be at most 16 characters"},
		{"sha512-crypt sha256 key", "$6$3LVbIAVxR//cRajw$" + shaKey43, "hash must be 86 characters"},
		{"sha256-crypt non-canonical", "$5$05R.9KB6UC2kLI3w$" + shaKey43[:42] + "E", "not canonical"},
		{"sha512-crypt non-canonical", "$6$3LVbIAVxR//cRajw$" + shaKey86[:85] + "2", "not canonical"},

		// Salted SHA ($sha1$, $sha256$, $sha512$)
		{"sha1 no pf (kratos)", "$sha1$" + b64salt + "$" + sha1Hash, "malformed sha1 password hash: expected $sha1$pf=<pattern>$salt$hash"},
		{"sha1 pf= empty (kratos)", "$sha1$pf=$" + b64salt + "$" + sha1Hash, "the pattern (pf=…) is missing"},
		{"sha1 empty pf field (kratos)", "$sha1$$" + b64salt + "$" + sha1Hash, "the pattern (pf=…) is missing"},
		{"sha1 salt not base64 (kratos)", "$sha1$" + pfSP + "$5opmkgz03r$" + sha1Hash, "salt is not valid base64"},
		{"sha1 pattern not base64", "$sha1$pf={SALT}{PASSWORD}$" + b64salt + "$" + sha1Hash, "pattern (pf) is not valid base64"},
		{"sha1 pattern without password", "$sha1$pf=e1NBTFR9$" + b64salt + "$" + sha1Hash, "the pattern (pf) must contain {PASSWORD}"},
		{"sha256 with a sha1 digest", "$sha256$" + pfSP + "$" + b64salt + "$" + sha1Hash, "malformed sha256 password hash: hash must be 32 bytes (a sha256 digest)"},
		{"sha512 hash missing", "$sha512$" + pfSP + "$" + b64salt + "$", "hash is not valid base64"},

		// SSHA
		{"ssha too short (kratos)", "{SSHA}tooshort", "the salt is missing"},
		{"ssha no salt", "{SSHA}2qU2SGWP8viTM1md3FiI3+rjWXQ=", "malformed ssha password hash: the salt is missing"},
		{"ssha512 sha1-sized", "{SSHA512}JFZFs0oHzxbMwkSJmYVeI8MnTDy/276a", "malformed ssha512 password hash: the salt is missing"},
		{"ssha not base64", "{SSHA256}czO44OTV17PcF1cRxWrLZLy9xHd7CWyVYplr1rOhuMlx/7IK!", "is not valid base64"},
		{"ssha empty", "{SSHA}", "is not valid base64"},

		// MD5
		{"md5 empty", "$md5$", "malformed md5 password hash: hash is not valid base64"},
		{"md5 $$ (kratos)", "$md5$$", "malformed md5 password hash: expected $md5$hash or $md5$pf=<pattern>$salt$hash"},
		{"md5 $$$ (kratos)", "$md5$$$", "the pattern (pf=…) is missing"},
		{"md5 pf=$$ (kratos)", "$md5$pf=$$", "the pattern (pf=…) is missing"},
		{"md5 pf salt Z (kratos)", "$md5$pf=MTIz$Z$", "the pattern (pf) must contain {PASSWORD}"},
		{"md5 hash Z (kratos)", "$md5$pf=e1BBU1NXT1JEfQ==$MTIz$Z", "hash is not valid base64"},
		{"md5 sha1-sized", "$md5$" + sha1Hash, "hash must be 16 bytes (a md5 digest)"},

		// HMAC
		{"hmac missing key (kratos)", "$hmac-md5$" + hmacMD5, "malformed hmac password hash: expected $hmac-<digest>$hash$key"},
		{"hmac empty key (kratos)", "$hmac-md5$" + hmacMD5 + "$", "the key is missing"},
		{"hmac missing hash (kratos)", "$hmac-md5$MTIzNDU=", "expected $hmac-<digest>$hash$key"},
		{"hmac empty hash (kratos)", "$hmac-md5$$MTIzNDU=", "hash is not valid base64"},
		{"hmac nothing (kratos)", "$hmac-md5$", "expected $hmac-<digest>$hash$key"},
		{"hmac invalid digest (kratos)", "$hmac-invalid$" + hmacMD5 + "$MTIzNDU=", "digest must be one of md4, md5, sha1, sha224, sha256, sha384, sha512"},
		{"hmac raw digest, not hex", "$hmac-md5$CY9rzUYh03PK3k6DJie09g==$MTIzNDU=", "hash must be the base64 of 32 hexadecimal digits (an HMAC-MD5)"},
		{"hmac sha1 with md5-sized hex", "$hmac-sha1$" + hmacMD5 + "$MTIzNDU=", "hash must be the base64 of 40 hexadecimal digits"},
		{"hmac key not base64", "$hmac-md5$" + hmacMD5 + "$12345", "key is not valid base64"},

		// Firebase scrypt
		{"firescrypt parts", "$firescrypt$ln=14,r=8,p=1$" + fireSalt + "$" + fireHash, "malformed firescrypt password hash: expected $firescrypt$ln=…,r=…,p=…$salt$hash$salt separator$signer key"},
		{"firescrypt ln=0", fire("ln=0,r=8,p=1", "Bw=="), "memory cost (ln) of 0 is outside 1 to 20"},
		{"firescrypt ln=31 (kratos)", fire("ln=31,r=8,p=1", "Bw=="), "memory cost (ln) of 31 is outside 1 to 20"},
		{"firescrypt ln=16384 (scrypt's N)", fire("ln=16384,r=8,p=1", "Bw=="), "memory cost (ln) of 16384"},
		{"firescrypt memory", fire("ln=20,r=16,p=1", "Bw=="), "memory 128×r×(N+p+2) of 2147489792 bytes is above the limit"},
		{"firescrypt work", fire("ln=20,r=8,p=2", "Bw=="), "work (N+2)×r×p of 16777248 is above the limit"},
		{"firescrypt r=0", fire("ln=14,r=0,p=1", "Bw=="), "must be at least 1"},
		{"firescrypt hostile p", fire("ln=1,r=1,p=1073741823", "Bw=="), "memory 128×r×(N+p+2)"},
		{"firescrypt param order", fire("r=8,ln=14,p=1", "Bw=="), "parameters must be ln=…,r=…,p=…"},
		{"firescrypt signer key not base64", "$firescrypt$ln=14,r=8,p=1$" + fireSalt + "$" + fireHash + "$Bw==$!", "signer key is not valid base64"},
		// Kratos's mismatch case changes the signer key's last character,
		// which leaves bits set past its end: malformed, not a mismatch.
		{"firescrypt non-canonical signer key (kratos)", "$firescrypt$ln=14,r=8,p=1$" + fireSalt + "$" + fireHash + "$Bw==$" + fireKey[:86] + "c==", "signer key is not valid base64"},
		{"firescrypt separator not base64", fire("ln=14,r=8,p=1", "B"), "salt separator is not valid base64"},
		{"firescrypt short signer key", "$firescrypt$ln=14,r=8,p=1$" + fireSalt + "$" + fireHash + "$Bw==$a2V5a2V5", "hash must be as long as the signer key"},
		{"firescrypt short hash (kratos)", "$firescrypt$ln=14,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaA==$Bw==$a2V5a2V5", "hash must be at least 16 bytes"},

		// pbkdf2: l= must still be a number.
		{"pbkdf2 l not a number", "$pbkdf2-sha256$i=1000,l=x$e8/arsEf4cvQihdNgqj0Nw$5xQQKNTyeTHx2Ld5/JDE7A", "parameters must be i=…,l=…"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := Recognise(c.hash)
			var e *model.Error
			if !errors.As(err, &e) {
				t.Fatalf("Recognise = %q, %v; want a *model.Error", got, err)
			}
			if e.Code != model.CodeValidationFailed || !strings.Contains(e.Message, c.want) {
				t.Errorf("Recognise error = %s %q; want %s containing %q", e.Code, e.Message, model.CodeValidationFailed, c.want)
			}
			// The first field is the kind's name, which the message may give.
			for i, part := range strings.FieldsFunc(c.hash, func(r rune) bool { return r == '$' || r == '}' }) {
				if i > 0 && len(part) >= 12 && strings.Contains(e.Message, part) {
					t.Errorf("message %q repeats part of the hash", e.Message)
				}
			}
		})
	}
}

// TestImportLimitsAreExact: the new bounds admit a hash exactly at them.
func TestImportLimitsAreExact(t *testing.T) {
	t.Parallel()
	const (
		key86    = "uuNasMW.RYxlGzIRFU1Was70BPSa933AjxhZIGJdJBOlqJAHlgqa0yuiuq5JHF/ryNGryJkj87G9i3G2HPSXg1"
		fireRest = "$sPtDhWcd1MfdAw==$xbSou7FOl6mChCyzpCPIQ7tku7nsQMTFtyOZSXXd7tjBa4NtimOx7v42Gv2SfzPQu1oxM2/k4SsbOu73wlKe1A==$Bw==$YE0dO4bwD4JnJafh6lZZfkp1MtKzuKAXQcDCJNJNyeCHairWHKENOkbh3dzwaCdizzOspwr/FITUVlnOAwPKyw=="
	)
	for _, c := range []struct {
		name, hash string
		ok         bool
	}{
		{"sha-crypt rounds 1000", "$6$rounds=1000$3LVbIAVxR//cRajw$" + key86, true},
		{"sha-crypt rounds 999", "$6$rounds=999$3LVbIAVxR//cRajw$" + key86, false},
		{"sha-crypt rounds 1000000", "$6$rounds=1000000$3LVbIAVxR//cRajw$" + key86, true},
		{"sha-crypt rounds 1000001", "$6$rounds=1000001$3LVbIAVxR//cRajw$" + key86, false},
		{"sha-crypt salt 16", "$6$3LVbIAVxR//cRajw$" + key86, true},
		{"sha-crypt salt 17", "$6$3LVbIAVxR//cRajwx$" + key86, false},
		{"md5-crypt salt 8", "$1$TVEiiKNb$SN6/pUaRQS/E8Jh46As2C/", true},
		{"md5-crypt salt 9", "$1$TVEiiKNbb$SN6/pUaRQS/E8Jh46As2C/", false},
		{"firescrypt ln=20 (N=2^20, r=8, p=1)", "$firescrypt$ln=20,r=8,p=1" + fireRest, true},
		{"firescrypt ln=21", "$firescrypt$ln=21,r=1,p=1" + fireRest, false},
		{"firescrypt work at the limit", "$firescrypt$ln=1,r=1,p=2500000" + fireRest, true},
		{"firescrypt work past the limit", "$firescrypt$ln=1,r=1,p=2500001" + fireRest, false},
		{"ssha digest and salt of 512 bytes", "{SSHA}" + b64(make([]byte, maxSaltOrKey)), true},
		{"ssha digest and salt of 513 bytes", "{SSHA}" + b64(make([]byte, maxSaltOrKey+1)), false},
	} {
		if _, err := Recognise(c.hash); (err == nil) != c.ok {
			t.Errorf("%s: Recognise = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// TestCryptLongPassword: crypt(3) refuses passwords of 512 bytes or more, so
// one that long never matches, even when its first 511 bytes do; up to 511
// bytes it matches as usual.
func TestCryptLongPassword(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 2)
	pw511 := strings.Repeat("a", 511)
	// python3 -c 'import crypt; print(crypt.crypt("a"*511, "$1$abc"))'
	// (libxcrypt; it answers "*0", a failure, for 512 bytes).
	const hash511 = "$1$abc$za/2Pp6It1mWG34xFO60r0"
	for _, c := range []struct {
		password string
		want     bool
	}{
		{pw511, true},
		{pw511 + "a", false},
		{pw511 + "b", false},
		{pw511[:510], false},
	} {
		if got, err := h.Compare(t.Context(), c.password, hash511); err != nil || got != c.want {
			t.Errorf("Compare(len %d) = %v, %v; want %v", len(c.password), got, err, c.want)
		}
	}
}

// TestPatternReplacesOnce: a "{SALT}" typed into a password stays text, as in
// Kratos's one-pass replacement, so it cannot pull the salt into the input.
func TestPatternReplacesOnce(t *testing.T) {
	t.Parallel()
	p, err := parse("$sha1$pf=e1BBU1NXT1JEfQ==$c2FsdA==$"+b64(sha1Sum("{SALT}")), defaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !p.verify([]byte("{SALT}")) {
		t.Errorf("a password containing {SALT} was not hashed as typed")
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func sha1Sum(s string) []byte {
	d := sha1.Sum([]byte(s)) //nolint:gosec // test vectors
	return d[:]
}
