package password

import (
	"crypto/subtle"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// scryptHash is Kratos's scrypt format.
type scryptHash struct {
	n, r, p   int
	salt, key []byte
}

func (h *scryptHash) algorithm() string { return "scrypt" }

// memory is scrypt's 128·N·r bytes, which x/crypto allocates for every key.
func (h *scryptHash) memory() uint64 { return 128 * uint64(h.n) * uint64(h.r) }

func (h *scryptHash) verify(password []byte) bool {
	got, err := scrypt.Key(password, h.salt, h.n, h.r, h.p, len(h.key))
	// parseScrypt has checked everything scrypt.Key checks.
	return err == nil && subtle.ConstantTimeCompare(got, h.key) == 1
}

// parseScrypt decodes "$scrypt$ln=<N>,r=<r>,p=<p>$<salt>$<key>" with padded
// standard base64, as Kratos reads it. Note that Kratos's "ln" holds the cost
// N itself (ln=16384), not its logarithm as in passlib's format (ln=14): a
// passlib hash is therefore refused here, since 14 is not a power of two.
func parseScrypt(s string) (*scryptHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 || parts[0] != "" {
		return nil, malformed("expected $scrypt$ln=…,r=…,p=…$salt$hash")
	}
	vals, err := parseParams(parts[2], "ln", "r", "p")
	if err != nil {
		return nil, err
	}
	n, r, p := vals[0], vals[1], vals[2]
	if n < 2 || n&(n-1) != 0 {
		return nil, malformed("cost (ln) must be a power of two greater than 1, such as 16384 (Kratos writes N itself, not its logarithm)")
	}
	if n > maxScryptN {
		return nil, malformed("cost (ln) of %d is above the limit of %d", n, maxScryptN)
	}
	if r < 1 || p < 1 {
		return nil, malformed("block size (r) and parallelism (p) must be at least 1")
	}
	// scrypt needs 128·N·r bytes and sweeps them p times. With N and r
	// bounded to 2^20 and 2^32 these products cannot overflow.
	if memKiB := 128 * n * r / 1024; memKiB > maxMemoryKiB {
		return nil, malformed("memory 128×N×r of %d KiB is above the limit of %d KiB", memKiB, maxMemoryKiB)
	} else if memKiB*p > maxWorkKiB {
		return nil, malformed("memory × parallelism of %d KiB is above the limit of %d KiB", memKiB*p, maxWorkKiB)
	}
	h := &scryptHash{n: int(n), r: int(r), p: int(p)}
	if h.salt, err = decodeBase64(parts[3], "salt"); err != nil {
		return nil, err
	}
	if h.key, err = decodeBase64(parts[4], "hash"); err != nil {
		return nil, err
	}
	if err := checkKeyLength(len(h.key)); err != nil {
		return nil, err
	}
	return h, nil
}
