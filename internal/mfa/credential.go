package mfa

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// MaxImportedLookupCodes bounds the lookup secrets one import may carry.
const MaxImportedLookupCodes = 100

// maxLookupCodeBytes bounds one imported lookup secret.
const maxLookupCodeBytes = 64

// Secrets is what second factors are kept with: the cipher that seals TOTP
// keys and the keyed hash of lookup secrets.
type Secrets struct {
	Cipher *Cipher
	Lookup *LookupHasher
}

// TOTPConfig is a TOTP credential's stored config. The key's otpauth URL is
// sealed (Cipher), bound to its identity; LastStep is the time step of the
// last code accepted, so that no code is accepted twice (nor an older one
// after it).
type TOTPConfig struct {
	SealedURL string    `json:"sealed_totp_url"`
	LastStep  int64     `json:"last_step,omitempty"`
	SetUpAt   time.Time `json:"set_up_at"`
}

// LookupConfig is a lookup-secret credential's stored config, in Kratos's
// layout (recovery_codes with used_at) but with keyed hashes where Kratos
// keeps the codes.
type LookupConfig struct {
	Codes       []LookupCode `json:"recovery_codes"`
	GeneratedAt time.Time    `json:"generated_at"`
}

// LookupCode is one stored lookup secret.
type LookupCode struct {
	Hash   string     `json:"hash"`
	UsedAt *time.Time `json:"used_at,omitempty"`
}

// Remaining counts the unused codes.
func (c *LookupConfig) Remaining() int {
	n := 0
	for _, code := range c.Codes {
		if code.UsedAt == nil {
			n++
		}
	}
	return n
}

// totpAD binds a sealed key to its identity: a sealed value copied to
// another identity's row does not open.
func totpAD(identityID uuid.UUID) []byte { return []byte("totp:" + identityID.String()) }

// SealTOTP encrypts a key's URL for identityID.
func (s *Secrets) SealTOTP(identityID uuid.UUID, url string) (string, error) {
	return s.Cipher.Encrypt([]byte(url), totpAD(identityID))
}

// OpenTOTP decrypts a key's URL sealed for identityID; stale says a key
// other than the first opened it (write it again sealed with the first).
func (s *Secrets) OpenTOTP(identityID uuid.UUID, sealed string) (url string, stale bool, err error) {
	b, stale, err := s.Cipher.Decrypt(sealed, totpAD(identityID))
	if err != nil {
		return "", false, err
	}
	return string(b), stale, nil
}

// TOTPCredential is the stored config of a TOTP key for identityID.
func (s *Secrets) TOTPCredential(identityID uuid.UUID, url string, lastStep int64, setUpAt time.Time) ([]byte, error) {
	sealed, err := s.SealTOTP(identityID, url)
	if err != nil {
		return nil, err
	}
	return json.Marshal(TOTPConfig{SealedURL: sealed, LastStep: lastStep, SetUpAt: setUpAt.UTC()})
}

// LookupCredential is the stored config of a set of lookup secrets for
// identityID: their keyed hashes only. Empty or repeated codes are refused
// with the index of the first.
func (s *Secrets) LookupCredential(identityID uuid.UUID, codes []string, now time.Time) ([]byte, error) {
	if len(codes) == 0 {
		return nil, errors.New("at least one code is needed")
	}
	if len(codes) > MaxImportedLookupCodes {
		return nil, fmt.Errorf("at most %d codes, not %d", MaxImportedLookupCodes, len(codes))
	}
	cfg := LookupConfig{GeneratedAt: now.UTC(), Codes: make([]LookupCode, len(codes))}
	seen := make(map[string]bool, len(codes))
	for i, c := range codes {
		if len(c) > maxLookupCodeBytes {
			return nil, &CodeError{Index: i, Reason: fmt.Sprintf("longer than %d bytes", maxLookupCodeBytes)}
		}
		n := NormalizeLookupCode(c)
		if n == "" {
			return nil, &CodeError{Index: i, Reason: "empty"}
		}
		if seen[n] {
			return nil, &CodeError{Index: i, Reason: "the same code as an earlier one"}
		}
		seen[n] = true
		cfg.Codes[i] = LookupCode{Hash: s.Lookup.Hash(identityID, n)}
	}
	return json.Marshal(cfg)
}

// CodeError is a refused lookup secret of an import: which and why (never
// the code itself).
type CodeError struct {
	Index  int
	Reason string
}

func (e *CodeError) Error() string { return fmt.Sprintf("code %d: %s", e.Index, e.Reason) }
