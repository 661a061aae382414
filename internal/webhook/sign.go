package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SecretPrefix starts every signing secret, as Standard Webhooks libraries
// make and read them.
const SecretPrefix = "whsec_"

// Bounds of a secret's key, in bytes: the Standard Webhooks spec asks for
// 24 to 64 random bytes.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// ParseSecret returns the key of a secret in the Standard Webhooks format:
// "whsec_" and the base64 (standard alphabet, padded) of 24 to 64 bytes.
// Its errors never repeat the secret.
func ParseSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errors.New(`must start with "whsec_" (the Standard Webhooks format: whsec_ and base64 of 24 to 64 random bytes)`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New(`the part after "whsec_" is not standard base64`)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("the key is %d bytes; it must be %d to %d", len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// Sign is the webhook-signature header of a message: "v1," and the base64
// HMAC-SHA256, keyed by key, of "id.timestamp.body" (the Standard Webhooks
// signed content; timestamp in unix seconds).
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
