package mfa

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

const (
	cipherKey1 = "cipher-secret-one-0123456789abcdef"
	cipherKey2 = "cipher-secret-two-0123456789abcdef"
	cipherKey3 = "cipher-secret-three-0123456789abcd"
)

func newCipher(t *testing.T, secrets ...string) *Cipher {
	t.Helper()
	c, err := NewCipher(secrets, MinCipherSecretBytes, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCipherRoundTrip(t *testing.T) {
	c := newCipher(t, cipherKey1)
	ad := []byte("totp:0b5b3a4e-2f1c-4d8e-9a7b-6c5d4e3f2a1b")
	for _, plain := range []string{"", "x", "otpauth://totp/identityd:alice@example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", strings.Repeat("long ", 1000)} {
		sealed, err := c.Encrypt([]byte(plain), ad)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sealed, "v1.") {
			t.Fatalf("sealed %q: want the v1. prefix", sealed)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, "v1."))
		if err != nil {
			t.Fatalf("sealed value is not unpadded base64url: %v", err)
		}
		if got, want := len(raw), 24+len(plain)+16; got != want {
			t.Errorf("sealed %d bytes, want nonce+plaintext+tag = %d", got, want)
		}
		got, stale, err := c.Decrypt(sealed, ad)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != plain || stale {
			t.Errorf("Decrypt = %q, stale %v; want %q, false", got, stale, plain)
		}
	}
}

func TestCipherNoncesDiffer(t *testing.T) {
	c := newCipher(t, cipherKey1)
	a, _ := c.Encrypt([]byte("same"), nil)
	b, _ := c.Encrypt([]byte("same"), nil)
	if a == b {
		t.Fatal("two encryptions of one plaintext are equal: the nonce is not random")
	}
}

func TestCipherRotation(t *testing.T) {
	ad := []byte("totp:id")
	sealed, err := newCipher(t, cipherKey1).Encrypt([]byte("secret"), ad)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		secrets   []string
		wantStale bool
	}{
		{"same key", []string{cipherKey1}, false},
		{"still first", []string{cipherKey1, cipherKey2}, false},
		{"rotated", []string{cipherKey2, cipherKey1}, true},
		{"rotated twice", []string{cipherKey3, cipherKey2, cipherKey1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, stale, err := newCipher(t, tt.secrets...).Decrypt(sealed, ad)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "secret" || stale != tt.wantStale {
				t.Errorf("Decrypt = %q, stale %v; want %q, stale %v", got, stale, "secret", tt.wantStale)
			}
		})
	}
	if _, _, err := newCipher(t, cipherKey2).Decrypt(sealed, ad); err == nil {
		t.Error("a value sealed under a removed key opened")
	}
}

func TestCipherRefuses(t *testing.T) {
	c := newCipher(t, cipherKey1)
	plain := []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	ad := []byte("totp:identity-a")
	sealed, err := c.Encrypt(plain, ad)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, "v1."))
	tampered := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return "v1." + base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct {
		name, sealed, ad, want string
	}{
		{"other identity", sealed, "totp:identity-b", "cannot be opened"},
		{"no ad", sealed, "", "cannot be opened"},
		{"nonce flipped", tampered(0), string(ad), "cannot be opened"},
		{"ciphertext flipped", tampered(30), string(ad), "cannot be opened"},
		{"tag flipped", tampered(len(raw) - 1), string(ad), "cannot be opened"},
		{"truncated", sealed[:len(sealed)-4], string(ad), "cannot be opened"},
		{"no prefix", strings.TrimPrefix(sealed, "v1."), string(ad), "malformed"},
		{"other version", "v2." + strings.TrimPrefix(sealed, "v1."), string(ad), "malformed"},
		{"not base64", "v1.!!!!", string(ad), "malformed"},
		{"padded", sealed + "==", string(ad), "malformed"},
		{"too short", "v1." + base64.RawURLEncoding.EncodeToString(raw[:39]), string(ad), "malformed"},
		{"empty", "", string(ad), "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := c.Decrypt(tt.sealed, []byte(tt.ad))
			if err == nil {
				t.Fatalf("Decrypt = %q, want an error", got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			for _, leak := range []string{string(plain), cipherKey1, tt.sealed} {
				if leak != "" && strings.Contains(err.Error(), leak) {
					t.Errorf("error %q repeats %q", err, leak)
				}
			}
		})
	}
}

func TestCiphertextHidesPlaintext(t *testing.T) {
	c := newCipher(t, cipherKey1)
	plain := []byte(strings.Repeat("JBSWY3DPEHPK3PXP", 4))
	sealed, err := c.Encrypt(plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, "v1."))
	for _, haystack := range [][]byte{[]byte(sealed), raw} {
		if bytes.Contains(haystack, plain[:8]) || bytes.Contains(haystack, []byte(base64.RawURLEncoding.EncodeToString(plain)[:8])) {
			t.Fatalf("sealed value %q contains the plaintext", sealed)
		}
	}
	if strings.Contains(sealed, cipherKey1) {
		t.Fatal("sealed value contains the secret")
	}
}

func TestNewCipherRefuses(t *testing.T) {
	tests := []struct {
		name     string
		secrets  []string
		minBytes int
		want     string
	}{
		{"none", nil, MinCipherSecretBytes, "no secret"},
		{"first short", []string{"k3y-x"}, MinCipherSecretBytes, "secret 0: too short (5 bytes, at least 32)"},
		{"third short", []string{cipherKey1, cipherKey2, strings.Repeat("s", 31)}, MinCipherSecretBytes, "secret 2: too short (31 bytes, at least 32)"},
		{"default fallback", []string{strings.Repeat("s", 15)}, 16, "secret 0: too short (15 bytes, at least 16)"},
		{"empty with no minimum", []string{""}, 0, "secret 0: too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCipher(tt.secrets, tt.minBytes, rand.Reader)
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
	if _, err := NewCipher([]string{strings.Repeat("s", 16)}, 16, rand.Reader); err != nil {
		t.Errorf("a 16-byte secrets.default fallback was refused: %v", err)
	}
	if _, err := NewCipher([]string{cipherKey1}, MinCipherSecretBytes, nil); err == nil {
		t.Error("a nil random source was accepted")
	}
}

// TestCipherRandomFailure: a nonce that cannot be read is an error, never a
// zero nonce.
func TestCipherRandomFailure(t *testing.T) {
	c, err := NewCipher([]string{cipherKey1}, MinCipherSecretBytes, bytes.NewReader(make([]byte, 10)))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Encrypt([]byte("x"), nil); err == nil {
		t.Fatalf("Encrypt = %q with a random source that ran dry", got)
	}
}
