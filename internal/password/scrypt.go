package password

import (
	"crypto/subtle"
	"math"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// scryptHash is Kratos's scrypt format.
type scryptHash struct {
	n, r, p   int
	salt, key []byte
}

func (h *scryptHash) algorithm() string { return "scrypt" }

// memory is what x/crypto allocates for every key: V (128·N·r bytes), XY
// (256·r) and B (128·r·p, one 128·r block per pass). B is why p is not free:
// with N and r small, a large p alone asks for gigabytes up front.
func (h *scryptHash) memory() uint64 {
	return scryptMemory(uint64(h.n), uint64(h.r), uint64(h.p))
}

// scryptMemory is memory for parameters not yet known to be sane.
func scryptMemory(n, r, p uint64) uint64 {
	return addSat(mulSat(128, n, r), mulSat(256, r), mulSat(128, r, p))
}

// scryptWork is the CPU cost bounded by maxScryptWork: (N+2)·r·p.
func scryptWork(n, r, p uint64) uint64 {
	return mulSat(addSat(n, 2), r, p)
}

// checkScryptCost checks r and p, and the memory and work of N, r and p,
// against the limits, for scrypt and Firebase scrypt alike; N must already be
// a power of two within maxScryptN.
func checkScryptCost(n, r, p uint64) error {
	if r < 1 || p < 1 {
		return malformed("block size (r) and parallelism (p) must be at least 1")
	}
	// x/crypto's own checks, word for word, so that verify can never meet
	// its error (which would read as a wrong password). The bounds below
	// imply them, but r×p < 2^30 is exactly the check the hostile p=2^30-1
	// passed, so they are spelled out rather than left to arithmetic.
	if r*p >= 1<<30 || r > math.MaxInt/128/p || r > math.MaxInt/256 || n > math.MaxInt/128/r {
		return malformed("block size × parallelism (r×p) is too large")
	}
	if mem := scryptMemory(n, r, p); mem > maxMemory {
		return malformed("memory 128×r×(N+p+2) of %d bytes is above the limit of %d bytes", mem, maxMemory)
	}
	if work := scryptWork(n, r, p); work > maxScryptWork {
		return malformed("work (N+2)×r×p of %d is above the limit of %d", work, maxScryptWork)
	}
	return nil
}

func (h *scryptHash) verify(password []byte) bool {
	got, err := scrypt.Key(password, h.salt, h.n, h.r, h.p, len(h.key))
	// parseScrypt has checked everything scrypt.Key checks.
	return err == nil && subtle.ConstantTimeCompare(got, h.key) == 1
}

// parseScrypt decodes "$scrypt$ln=<N>,r=<r>,p=<p>$<salt>$<key>" with padded
// standard base64, as Kratos reads it. Note that Kratos's "ln" holds the cost
// N itself (ln=16384), not its logarithm as in passlib's format (ln=14): a
// passlib hash is therefore refused here, since 14 is not a power of two.
func parseScrypt(s string, _ limits) (parsedHash, error) {
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
	if err := checkScryptCost(n, r, p); err != nil {
		return nil, err
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
