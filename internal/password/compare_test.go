package password

import (
	"errors"
	"strings"
	"testing"

	"github.com/identityd/identityd/model"
)

func TestRecogniseKnownVectors(t *testing.T) {
	t.Parallel()
	for _, v := range vectors {
		got, err := Recognise(v.hash)
		if err != nil || got != v.algorithm {
			t.Errorf("%s: Recognise = %q, %v; want %q, nil", v.name, got, err, v.algorithm)
		}
	}
}

func TestRecogniseRefuses(t *testing.T) {
	t.Parallel()
	const (
		salt16       = "cm94YnRVOW5jZzFzcVE4bQ"                      // 16 bytes
		key32        = "fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4" // 32 bytes
		bcryptTail   = "o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6"
		unrecognised = "unrecognised password hash format (supported: argon2id, argon2i, bcrypt ($2a$, $2b$, $2y$), pbkdf2 (sha1, sha224, sha256, sha384, sha512), scrypt, Firebase scrypt ($firescrypt$), md5-crypt ($1$, $md5-crypt$), "
	)
	argon := func(variant, params string) string {
		return "$" + variant + "$v=19$" + params + "$" + salt16 + "$" + key32
	}
	pbkdf := func(digest, params string) string {
		return "$pbkdf2-" + digest + "$" + params + "$" + salt16 + "$" + key32
	}
	scrypt := func(params string) string {
		return "$scrypt$" + params + "$" + salt16 + "$" + key32
	}
	for _, c := range []struct {
		name, hash, want string // want: the message, or a part of it after "malformed <alg> password hash: "
	}{
		// Not recognised at all.
		{"empty", "", unrecognised},
		{"plaintext", "hunter2", unrecognised},
		{"argon2d", argon("argon2d", "m=64,t=1,p=1"), unrecognised},
		{"bcrypt $2x$", "$2x$10$" + bcryptTail, unrecognised},
		{"bcrypt without $", "2a$10$" + bcryptTail, unrecognised},
		{"des-crypt", "saHW9GdxihkGQ", unrecognised},
		{"too long", "$argon2id$" + strings.Repeat("A", 2000), "password hash is longer than 1024 bytes"},

		// argon2
		{"argon2 parts", "$argon2id$v=19$m=64,t=1,p=1$" + salt16, "malformed argon2id password hash: expected"},
		{"argon2 v=16", strings.Replace(argon("argon2id", "m=64,t=1,p=1"), "v=19", "v=16", 1), "only version 19"},
		{"argon2 no version", "$argon2id$m=64,t=1,p=1$" + salt16 + "$" + key32, "expected"},
		{"argon2 param order", argon("argon2id", "t=1,m=64,p=1"), "parameters must be m=…,t=…,p=…"},
		{"argon2 param sign", argon("argon2id", "m=+64,t=1,p=1"), "parameters must be"},
		{"argon2 param space", argon("argon2id", "m=64, t=1,p=1"), "parameters must be"},
		{"argon2 extra param", argon("argon2id", "m=64,t=1,p=1,keyid=x"), "parameters must be"},
		{"argon2 t=0", argon("argon2id", "m=64,t=0,p=1"), "iterations (t) must be at least 1"},
		{"argon2 p=0", argon("argon2id", "m=64,t=1,p=0"), "parallelism (p)"},
		{"argon2 p=256", argon("argon2id", "m=4096,t=1,p=256"), "parallelism (p)"},
		{"argon2 p=2^32-1", argon("argon2id", "m=4294967295,t=1,p=4294967295"), "parallelism (p) of 4294967295 is outside 1 to 255"},
		{"argon2 memory per lane", argon("argon2id", "m=16,t=1,p=4"), "at least 8 KiB per lane"},
		{"argon2 memory 2 GiB", argon("argon2id", "m=2097152,t=1,p=1"), "memory (m) of 2097152 KiB is above the limit of 1049600 KiB"},
		{"argon2 memory just over", argon("argon2id", "m=1049604,t=1,p=1"), "memory (m) of 1049604 KiB is above the limit"},
		{"argon2 memory 4 GiB+", argon("argon2i", "m=4294967295,t=1,p=1"), "above the limit"},
		{"argon2 work", argon("argon2id", "m=1048576,t=8,p=1"), "memory × iterations (m×t) of 8388608 KiB is above the limit"},
		{"argon2 overflow", argon("argon2id", "m=64,t=99999999999,p=1"), "parameter t is too large"},
		{"argon2 bad base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt16 + "$" + key32 + "!", "hash is not valid base64"},
		{"argon2 non-canonical base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt16[:21] + "R$" + key32, "salt is not valid base64"},
		{"argon2 short salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key32, "salt must be at least 8 bytes"},
		{"argon2 short key", "$argon2id$v=19$m=64,t=1,p=1$" + salt16 + "$c2hvcnRrZXk", "hash must be at least 16 bytes"},

		// bcrypt
		{"bcrypt short", "$2a$10$" + bcryptTail[:52], "expected $2a$, $2b$ or $2y$"},
		{"bcrypt long", "$2a$10$" + bcryptTail + "x", "expected"},
		{"bcrypt cost 3", "$2a$03$" + bcryptTail, "cost 3 is outside 4 to 16"},
		{"bcrypt cost 17", "$2b$17$" + bcryptTail, "cost 17 is outside 4 to 16"},
		{"bcrypt cost 31", "$2y$31$" + bcryptTail, "cost 31 is outside"},
		{"bcrypt cost letters", "$2a$1x$" + bcryptTail, "cost must be two digits"},
		{"bcrypt cost sign", "$2a$+9$" + bcryptTail, "cost must be two digits"},
		{"bcrypt alphabet", "$2a$10$" + bcryptTail[:52] + "+", "bcrypt's base64 alphabet"},

		// pbkdf2
		{"pbkdf2 md5", pbkdf("md5", "i=1000,l=32"), "digest must be one of"},
		{"pbkdf2 sha3", pbkdf("sha3", "i=1000,l=32"), "digest must be one of"},
		{"pbkdf2 no params", "$pbkdf2-sha256$" + salt16 + "$" + key32, "expected"},
		{"pbkdf2 uppercase I", pbkdf("sha512", "I=1000,l=32"), "parameters must be i=…,l=…"},
		{"pbkdf2 i=0", pbkdf("sha256", "i=0,l=32"), "iterations (i) must be at least 1"},
		{"pbkdf2 20M iterations", pbkdf("sha256", "i=20000000,l=32"), "above the limit of 10000000"},
		{"pbkdf2 work by blocks", pbkdf("sha1", "i=5000001,l=32"), "work of 10000002 (iterations × output blocks × 1 for sha1) is above the limit"},
		{"pbkdf2 sha3-224 work", pbkdf("sha224", "i=1250001,l=32"), "work of 10000008 (iterations × output blocks × 4 for sha224) is above the limit of 10000000"},
		{"pbkdf2 sha512 work", pbkdf("sha512", "i=5000001,l=32"), "work of 10000002 (iterations × output blocks × 2 for sha512)"},
		{"pbkdf2 l not a number", pbkdf("sha256", "i=1000,l=-1"), "parameters must be i=…,l=…"},
		{"pbkdf2 padded salt stays strict", "$pbkdf2-sha256$i=1000,l=32$" + salt16 + "=$" + key32, "salt is not valid base64"},

		// scrypt
		{"scrypt log2 cost (passlib)", scrypt("ln=14,r=8,p=1"), "power of two"},
		{"scrypt N=1", scrypt("ln=1,r=8,p=1"), "power of two"},
		{"scrypt N=2^21", scrypt("ln=2097152,r=8,p=1"), "cost (ln) of 2097152 is above the limit of 1048576"},
		{"scrypt r=0", scrypt("ln=16384,r=0,p=1"), "at least 1"},
		{"scrypt memory", scrypt("ln=1048576,r=16,p=1"), "memory 128×r×(N+p+2) of 2147489792 bytes is above the limit of 1074790400 bytes"},
		{"scrypt work", scrypt("ln=1048576,r=8,p=5"), "work (N+2)×r×p of 41943120 is above the limit of 10000000"},
		{"scrypt work just over", scrypt("ln=1048576,r=8,p=2"), "work (N+2)×r×p of 16777248 is above the limit"},
		{"scrypt huge r", scrypt("ln=1048576,r=4294967295,p=4294967295"), "(r×p) is too large"},
		// The security review's case: x/crypto's r×p < 2^30 passes, and it
		// would allocate 128·p bytes, 128 GiB, before anything else.
		{"scrypt huge p", scrypt("ln=2,r=1,p=1073741823"), "memory 128×r×(N+p+2) of 137438953856 bytes is above the limit"},
		{"scrypt r×p = 2^30", scrypt("ln=2,r=1,p=1073741824"), "(r×p) is too large"},
		{"scrypt p alone over memory", scrypt("ln=2,r=8,p=1049600"), "memory 128×r×(N+p+2) of 1074794496 bytes"},
		{"scrypt p alone over work", scrypt("ln=2,r=1,p=2500001"), "work (N+2)×r×p of 10000004"},
		{"scrypt bad base64", "$scrypt$ln=16384,r=8,p=1$(2npRo7P03Mt8keSoMbyD/tKFWyUzjiQf2svUaNDSrhA=$MiCzNcIplSMqSBrm4HckjYqYhaVPPjTARTzwB1cVNYE=", "salt is not valid base64"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Recognise(c.hash)
			var e *model.Error
			if !errors.As(err, &e) {
				t.Fatalf("Recognise = %q, %v; want a *model.Error", got, err)
			}
			if e.Code != model.CodeValidationFailed || !strings.Contains(e.Message, c.want) {
				t.Errorf("Recognise error = %s %q; want %s containing %q", e.Code, e.Message, model.CodeValidationFailed, c.want)
			}
			if got != "" {
				t.Errorf("algorithm = %q with an error", got)
			}
			// No part of the hash beyond its algorithm and parameters may
			// appear in the message.
			for _, part := range strings.Split(c.hash, "$") {
				if len(part) >= 12 && strings.Contains(e.Message, part) {
					t.Errorf("message %q repeats part of the hash", e.Message)
				}
			}
		})
	}
}

// TestLimitsAreExact: every bound admits a hash exactly at it and refuses
// one just past it, counting what x/crypto allocates and does rather than
// the parameters as written (argon2's m is rounded down to whole lanes ×
// sync points; scrypt's p allocates 128·r bytes each).
func TestLimitsAreExact(t *testing.T) {
	t.Parallel()
	const (
		salt16 = "cm94YnRVOW5jZzFzcVE4bQ"
		key32  = "fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4"
		tail   = "o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6"
	)
	for _, c := range []struct {
		name, hash string
		ok         bool
	}{
		{"argon2 memory at the limit", "$argon2id$v=19$m=1049600,t=1,p=1$" + salt16 + "$" + key32, true},
		{"argon2 memory rounded down to the limit", "$argon2id$v=19$m=1049603,t=1,p=1$" + salt16 + "$" + key32, true},
		{"argon2 memory past the limit", "$argon2id$v=19$m=1049604,t=1,p=1$" + salt16 + "$" + key32, false},
		{"argon2 work at the limit", "$argon2id$v=19$m=1048576,t=4,p=1$" + salt16 + "$" + key32, true},
		{"argon2 work past the limit", "$argon2id$v=19$m=1048576,t=5,p=1$" + salt16 + "$" + key32, false},
		{"argon2 work rounded down", "$argon2id$v=19$m=1048579,t=4,p=1$" + salt16 + "$" + key32, true},
		{"argon2 255 lanes", "$argon2id$v=19$m=2040,t=1,p=255$" + salt16 + "$" + key32, true},
		{"argon2 256 lanes", "$argon2id$v=19$m=2048,t=1,p=256$" + salt16 + "$" + key32, false},
		{"bcrypt cost 16", "$2a$16$" + tail, true},
		{"bcrypt cost 17", "$2a$17$" + tail, false},
		{"pbkdf2 sha1 at the limit", "$pbkdf2-sha1$i=5000000,l=32$" + salt16 + "$" + key32, true},
		{"pbkdf2 sha1 past the limit", "$pbkdf2-sha1$i=5000001,l=32$" + salt16 + "$" + key32, false},
		{"pbkdf2 sha256 at the limit", "$pbkdf2-sha256$i=10000000,l=32$" + salt16 + "$" + key32, true},
		{"pbkdf2 sha256 past the limit", "$pbkdf2-sha256$i=10000001,l=32$" + salt16 + "$" + key32, false},
		{"pbkdf2 sha3-224 at the limit", "$pbkdf2-sha224$i=1250000,l=32$" + salt16 + "$" + key32, true},
		{"pbkdf2 sha3-224 past the limit", "$pbkdf2-sha224$i=1250001,l=32$" + salt16 + "$" + key32, false},
		{"pbkdf2 sha3-384 at the limit", "$pbkdf2-sha384$i=5000000,l=32$" + salt16 + "$" + key32, true},
		{"pbkdf2 sha3-384 past the limit", "$pbkdf2-sha384$i=5000001,l=32$" + salt16 + "$" + key32, false},
		{"pbkdf2 sha512 at the limit", "$pbkdf2-sha512$i=5000000,l=32$" + salt16 + "$" + key32, true},
		{"pbkdf2 sha512 past the limit", "$pbkdf2-sha512$i=5000001,l=32$" + salt16 + "$" + key32, false},
		{"scrypt sensitive (1 GiB + 3 KiB)", "$scrypt$ln=1048576,r=8,p=1$" + salt16 + "$" + key32, true},
		{"scrypt work at the limit", "$scrypt$ln=2,r=1,p=2500000$" + salt16 + "$" + key32, true},
		{"scrypt work past the limit", "$scrypt$ln=2,r=1,p=2500001$" + salt16 + "$" + key32, false},
		{"scrypt many passes", "$scrypt$ln=131072,r=8,p=9$" + salt16 + "$" + key32, true},
		{"scrypt hostile p", "$scrypt$ln=2,r=1,p=1073741823$" + salt16 + "$" + key32, false},
	} {
		_, err := Recognise(c.hash)
		if (err == nil) != c.ok {
			t.Errorf("%s: Recognise = %v, want ok=%v", c.name, err, c.ok)
		}
		// Compare's parse holds stored hashes to the same bounds.
		if _, err := parse(c.hash, NewHasher(fast, 1).limits); (err == nil) != c.ok {
			t.Errorf("%s: parse with a Hasher's limits = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// TestCompareRefusesStoredHostileHash: a hash that reached the store without
// Recognise (an older version, a direct write) is refused before anything
// is allocated for it.
func TestCompareRefusesStoredHostileHash(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 1)
	h.hook = func(func()) { t.Errorf("a computation ran for a refused hash") }
	for _, hash := range []string{
		"$scrypt$ln=2,r=1,p=1073741823$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M",
		"$argon2id$v=19$m=4194304,t=1,p=1$cm94YnRVOW5jZzFzcVE4bQ$fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4",
	} {
		if ok, err := h.Compare(t.Context(), "pw", hash); ok || !errors.Is(err, ErrUnsupportedHash) {
			t.Errorf("Compare(%.20q…) = %v, %v; want false, ErrUnsupportedHash", hash, ok, err)
		}
	}
}
