package mfa

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// MinCipherSecretBytes is the shortest secrets.cipher secret accepted: Kratos
// asks for 32 characters there, and configurations carried over from Kratos
// should keep working unchanged.
const MinCipherSecretBytes = 32

// cipherInfo is the HKDF info: it ties the derived keys to this one use, so
// the same configured secret used elsewhere never yields the same key.
const cipherInfo = "identityd secrets.cipher v1"

// cipherPrefix marks the format of a sealed value, so a later format can be
// told apart and read alongside this one.
const cipherPrefix = "v1."

// Cipher encrypts second-factor secrets at rest. It seals with the key of the
// first configured secret and opens with any of them, so secrets rotate
// without rewriting every row at once: a value opened by an older key is
// reported stale and re-sealed by the caller on its next write.
//
// Keys are derived from the secret strings with HKDF-SHA256 (any length of
// secret gives a uniform 256-bit key); values are sealed with
// XChaCha20-Poly1305 under a random 24-byte nonce, which is large enough that
// random nonces never repeat in practice.
type Cipher struct {
	aeads  []cipher.AEAD
	random io.Reader
}

// NewCipher derives one key from each of secrets (the first seals, all open).
// There must be at least one secret and each must be at least minBytes long:
// callers pass MinCipherSecretBytes for secrets.cipher, or 16 when falling
// back to secrets.default. An empty secret is refused whatever minBytes is.
// random supplies the nonces (crypto/rand.Reader outside tests).
func NewCipher(secrets []string, minBytes int, random io.Reader) (*Cipher, error) {
	if len(secrets) == 0 {
		return nil, errors.New("cipher: no secret is configured")
	}
	if random == nil {
		return nil, errors.New("cipher: no random source")
	}
	minBytes = max(minBytes, 1)
	c := &Cipher{random: random}
	for i, s := range secrets {
		if len(s) < minBytes {
			return nil, fmt.Errorf("cipher: secret %d: too short (%d bytes, at least %d)", i, len(s), minBytes)
		}
		key, err := hkdf.Key(sha256.New, []byte(s), nil, cipherInfo, chacha20poly1305.KeySize)
		if err != nil {
			return nil, fmt.Errorf("cipher: secret %d: deriving the key: %w", i, err)
		}
		aead, err := chacha20poly1305.NewX(key)
		if err != nil {
			return nil, fmt.Errorf("cipher: secret %d: %w", i, err)
		}
		c.aeads = append(c.aeads, aead)
	}
	return c, nil
}

// Encrypt seals plaintext under the first key and returns "v1." followed by
// the unpadded base64url of nonce||ciphertext. ad is authenticated but not
// stored: it binds the value to its place (the caller passes e.g.
// "totp:"+identityID), so a value copied to another identity's row does not
// open there. The same ad must be given to Decrypt.
func (c *Cipher) Encrypt(plaintext, ad []byte) (string, error) {
	aead := c.aeads[0]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := io.ReadFull(c.random, nonce); err != nil {
		return "", fmt.Errorf("cipher: reading a nonce: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, plaintext, ad)
	return cipherPrefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Decrypt opens a value made by Encrypt with the same ad, trying every key.
// stale is true when a key other than the first opened it: the caller should
// encrypt the plaintext again on its next write. A value that is malformed,
// was sealed under no configured key, under another ad, or was altered is an
// error saying which of malformed or unopenable it is; errors never include
// the value, the plaintext or key material.
func (c *Cipher) Decrypt(sealed string, ad []byte) (plaintext []byte, stale bool, err error) {
	rest, ok := strings.CutPrefix(sealed, cipherPrefix)
	if !ok {
		return nil, false, errors.New("cipher: malformed value: not a v1 sealed value")
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, false, errors.New("cipher: malformed value: not unpadded base64url")
	}
	nonceSize := chacha20poly1305.NonceSizeX
	if len(raw) < nonceSize+chacha20poly1305.Overhead {
		return nil, false, fmt.Errorf("cipher: malformed value: %d bytes is shorter than a nonce and a tag", len(raw))
	}
	nonce, box := raw[:nonceSize], raw[nonceSize:]
	for i, aead := range c.aeads {
		if out, err := aead.Open(nil, nonce, box, ad); err == nil {
			return out, i > 0, nil
		}
	}
	return nil, false, errors.New("cipher: value cannot be opened: sealed under another key or for another place, or altered")
}
