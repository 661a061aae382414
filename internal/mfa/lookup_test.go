package mfa

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
)

const (
	lookupKey1 = "lookup-secret-one-0123456789"
	lookupKey2 = "lookup-secret-two-0123456789"
)

func newHasher(t *testing.T, secrets ...string) *LookupHasher {
	t.Helper()
	h, err := NewLookupHasher(secrets)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestNewLookupCodes(t *testing.T) {
	format := regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$`)
	seen := map[string]bool{}
	letters := map[rune]int{}
	for range 50 {
		codes, err := NewLookupCodes(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(codes) != LookupCodeCount {
			t.Fatalf("%d codes, want %d", len(codes), LookupCodeCount)
		}
		for _, c := range codes {
			if !format.MatchString(c) {
				t.Fatalf("code %q is not xxxxx-xxxxx of lower-case Crockford base32", c)
			}
			if seen[c] {
				t.Fatalf("code %q was made twice", c)
			}
			seen[c] = true
			for _, r := range strings.ReplaceAll(c, "-", "") {
				letters[r]++
			}
		}
	}
	// 6,000 characters, about 187 of each of 32: every one is drawn, none
	// far more than the rest.
	if len(letters) != 32 {
		t.Errorf("%d distinct characters drawn, want 32", len(letters))
	}
	for r, n := range letters {
		if n < 100 || n > 300 {
			t.Errorf("%q drawn %d times of 6000", r, n)
		}
	}
}

// TestNewLookupCodesAlphabet: each random byte's low five bits pick the
// character, so the whole alphabet is reachable in order.
func TestNewLookupCodesAlphabet(t *testing.T) {
	feed := make([]byte, LookupCodeCount*10)
	for i := range feed {
		feed[i] = byte(i + 128*(i%2)) // high bits set and not, distinct codes
	}
	codes, err := NewLookupCodes(bytes.NewReader(feed))
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, c := range codes {
		all.WriteString(strings.ReplaceAll(c, "-", ""))
	}
	for i, r := range all.String() {
		if want := lookupAlphabet[feed[i]&31]; byte(r) != want {
			t.Fatalf("character %d is %q, want %q", i, r, want)
		}
	}
}

func TestNewLookupCodesRefuses(t *testing.T) {
	if codes, err := NewLookupCodes(bytes.NewReader(make([]byte, LookupCodeCount*10-1))); err == nil {
		t.Errorf("a random source that ran dry gave %q", codes)
	}
	if codes, err := NewLookupCodes(bytes.NewReader(make([]byte, LookupCodeCount*10))); err == nil || !strings.Contains(err.Error(), "same code twice") {
		t.Errorf("a random source of zeros gave %q, %v", codes, err)
	}
}

func TestNormalizeLookupCode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abcde-fghjk", "abcdefghjk"},
		{"ABCDE-FGHJK", "abcdefghjk"},
		{"abcde fghjk", "abcdefghjk"},
		{"  AbCdE - FgHjK\t\n", "abcdefghjk"},
		{"abcdefghjk", "abcdefghjk"},
		{"a-b-c-d-e-f-g-h-j-k", "abcdefghjk"},
		{"kratos12", "kratos12"}, // an imported Kratos code, unchanged
		{"ILO0", "ilo0"},         // look-alikes are not folded
		{"", ""},
		{" - ", ""},
	}
	for _, tt := range tests {
		if got := NormalizeLookupCode(tt.in); got != tt.want {
			t.Errorf("NormalizeLookupCode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLookupHash(t *testing.T) {
	h := newHasher(t, lookupKey1)
	id := uuid.MustParse("0b5b3a4e-2f1c-4d8e-9a7b-6c5d4e3f2a1b")
	got := h.Hash(id, "ABCDE-FGHJK")
	raw, err := base64.RawURLEncoding.DecodeString(got)
	if err != nil || len(raw) != 32 {
		t.Fatalf("hash %q is not the unpadded base64url of 32 bytes (%v)", got, err)
	}
	for _, same := range []string{"abcde-fghjk", "abcdefghjk", "abcde fghjk"} {
		if h.Hash(id, same) != got {
			t.Errorf("Hash(%q) differs from Hash(%q)", same, "ABCDE-FGHJK")
		}
	}
	if h.Hash(uuid.New(), "abcdefghjk") == got {
		t.Error("the hash does not depend on the identity")
	}
	if newHasher(t, lookupKey2).Hash(id, "abcdefghjk") == got {
		t.Error("the hash does not depend on the secret")
	}
	if strings.Contains(got, "abcdefghjk") {
		t.Error("the hash contains the code")
	}
}

func TestLookupMatch(t *testing.T) {
	alice, bob := uuid.New(), uuid.New()
	codes, err := NewLookupCodes(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	old := newHasher(t, lookupKey1)
	var hashes []string
	for _, c := range codes {
		hashes = append(hashes, old.Hash(alice, c))
	}
	bobsHash := old.Hash(bob, codes[3])

	tests := []struct {
		name   string
		hasher *LookupHasher
		id     uuid.UUID
		code   string
		hashes []string
		want   int
	}{
		{"first", old, alice, codes[0], hashes, 0},
		{"last", old, alice, codes[11], hashes, 11},
		{"upper case, no hyphen", old, alice, strings.ToUpper(strings.ReplaceAll(codes[5], "-", "")), hashes, 5},
		{"with spaces", old, alice, strings.ReplaceAll(codes[7], "-", " "), hashes, 7},
		{"rotated: old secret second", newHasher(t, lookupKey2, lookupKey1), alice, codes[4], hashes, 4},
		{"rotated away", newHasher(t, lookupKey2), alice, codes[4], hashes, -1},
		{"wrong code", old, alice, "00000-00000", hashes, -1},
		{"one character off", old, alice, codes[2][:10] + string(lookupAlphabet[(strings.IndexByte(lookupAlphabet, codes[2][10])+1)%32]), hashes, -1},
		{"empty code", old, alice, "", hashes, -1},
		{"another identity's hash", old, alice, codes[3], []string{bobsHash}, -1},
		{"a hash moved to another identity", old, bob, codes[0], hashes, -1},
		{"bob's own", old, bob, codes[3], []string{"not base64!", "", bobsHash}, 2},
		{"no hashes", old, alice, codes[0], nil, -1},
		{"used codes removed", old, alice, codes[1], append([]string{}, hashes[2:]...), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.hasher.Match(tt.id, tt.code, tt.hashes); got != tt.want {
				t.Errorf("Match(%q) = %d, want %d", tt.code, got, tt.want)
			}
		})
	}
}

// TestLookupMatchNewHashes: codes hashed after a rotation are hashed under
// the new first secret, and match under the rotated hasher only.
func TestLookupMatchNewHashes(t *testing.T) {
	id := uuid.New()
	rotated := newHasher(t, lookupKey2, lookupKey1)
	hash := rotated.Hash(id, "abcde-fghjk")
	if hash != newHasher(t, lookupKey2).Hash(id, "abcde-fghjk") {
		t.Error("the first secret does not hash")
	}
	if got := newHasher(t, lookupKey1).Match(id, "abcde-fghjk", []string{hash}); got != -1 {
		t.Errorf("a hash under the new secret matched under the old one only: %d", got)
	}
	if got := rotated.Match(id, "abcde-fghjk", []string{hash, hash}); got != 0 {
		t.Errorf("Match over a duplicated hash = %d, want the first, 0", got)
	}
}

func TestNewLookupHasherRefuses(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		want    string
	}{
		{"none", nil, "no secret"},
		{"empty", []string{""}, "secret 0: too short (0 bytes, at least 16)"},
		{"second short", []string{lookupKey1, "k3y-of-15-bytes"}, "secret 1: too short (15 bytes, at least 16)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewLookupHasher(tt.secrets)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
			for _, s := range tt.secrets {
				if s != "" && strings.Contains(err.Error(), s) {
					t.Errorf("error %q repeats a secret", err)
				}
			}
		})
	}
}
