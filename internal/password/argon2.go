package password

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id parameters for new hashes (config keys
// hashers.argon2.*). They are written into every hash, so changing them only
// affects new hashes; NeedsRehash reports the old ones so a login can upgrade
// them.
type Params struct {
	// Memory is the memory cost in KiB, the main defence against GPU and
	// ASIC guessing: every guess needs this much memory for its whole run.
	Memory uint32
	// Iterations is the number of passes over the memory.
	Iterations uint32
	// Parallelism is the number of lanes. It is part of the hash, so it is
	// fixed rather than derived from the machine's CPU count: a hash must not
	// need a rehash because the service moved to a bigger machine.
	Parallelism uint8
	// SaltLength is the length of the random salt in bytes.
	SaltLength uint32
	// KeyLength is the length of the derived key in bytes.
	KeyLength uint32
}

// DefaultParams returns 64 MiB, 2 passes, 1 lane, a 16-byte salt and a
// 32-byte key. That is above OWASP's argon2id baseline on both axes (its
// first option is 46 MiB with 1 pass, all with 1 lane) and close to Kratos's
// default cost (128 MB, 1 pass), and takes about 100 ms on one core, which
// keeps logins quick while a guess costs an attacker 64 MiB for that long.
// One lane keeps the hash independent of the machine; throughput comes from
// hashing several passwords at once (see NewHasher), not from lanes.
func DefaultParams() Params {
	return Params{Memory: 64 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}

// withDefaults fills zero fields from DefaultParams, so a config that leaves a
// key out gets the default rather than an unusable zero.
func (p Params) withDefaults() Params {
	d := DefaultParams()
	if p.Memory == 0 {
		p.Memory = d.Memory
	}
	if p.Iterations == 0 {
		p.Iterations = d.Iterations
	}
	if p.Parallelism == 0 {
		p.Parallelism = d.Parallelism
	}
	if p.SaltLength == 0 {
		p.SaltLength = d.SaltLength
	}
	if p.KeyLength == 0 {
		p.KeyLength = d.KeyLength
	}
	return p
}

// Validate reports parameters that would make hashes this package cannot
// read back or that are too weak to be worth storing. Zero fields are taken
// as their defaults, as NewHasher does. It has no upper bound on cost: that is
// the operator's choice, and the Hasher accepts its own hashes whatever their
// cost.
func (p Params) Validate() error {
	p = p.withDefaults()
	switch {
	case p.Memory < 8*uint32(p.Parallelism):
		return fmt.Errorf("password: argon2 memory must be at least 8 KiB per lane")
	case p.SaltLength < minArgon2Salt:
		return fmt.Errorf("password: argon2 salt must be at least %d bytes", minArgon2Salt)
	case p.SaltLength > maxSaltOrKey:
		return fmt.Errorf("password: argon2 salt must be at most %d bytes", maxSaltOrKey)
	case p.KeyLength < minKeyLength:
		return fmt.Errorf("password: argon2 key must be at least %d bytes", minKeyLength)
	case p.KeyLength > maxSaltOrKey:
		return fmt.Errorf("password: argon2 key must be at most %d bytes", maxSaltOrKey)
	}
	return nil
}

// argon2Hash is a decoded argon2id or argon2i PHC string.
type argon2Hash struct {
	variant   string // "argon2id" or "argon2i"
	p         Params // SaltLength and KeyLength are those of salt and key
	salt, key []byte
}

func (h *argon2Hash) algorithm() string { return h.variant }

// memory is the blocks x/crypto allocates afresh for every key.
func (h *argon2Hash) memory() uint64 {
	return argon2Blocks(uint64(h.p.Memory), uint64(h.p.Parallelism)) * argon2BlockSize
}

// argon2BlockSize is the size of one argon2 block, the unit of m.
const argon2BlockSize = 1024

// argon2Blocks is the number of blocks x/crypto allocates for m KiB and p
// lanes: m rounded down to a multiple of 4·p (the lanes × the 4 sync
// points), and at least 8·p. It is not m: m=100, p=3 allocates 96 blocks.
func argon2Blocks(m, p uint64) uint64 {
	const syncPoints = 4
	blocks := m / (syncPoints * p) * (syncPoints * p)
	return max(blocks, 2*syncPoints*p)
}

func (h *argon2Hash) verify(password []byte) bool {
	return subtle.ConstantTimeCompare(h.derive(password, uint32(len(h.key))), h.key) == 1
}

// derive computes the key for password with h's variant, parameters and salt.
func (h *argon2Hash) derive(password []byte, keyLen uint32) []byte {
	if h.variant == "argon2i" {
		return argon2.Key(password, h.salt, h.p.Iterations, h.p.Memory, h.p.Parallelism, keyLen)
	}
	return argon2.IDKey(password, h.salt, h.p.Iterations, h.p.Memory, h.p.Parallelism, keyLen)
}

// encode writes the PHC string Kratos writes: unpadded standard base64.
func (h *argon2Hash) encode() string {
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", h.variant, argon2.Version,
		h.p.Memory, h.p.Iterations, h.p.Parallelism,
		base64.RawStdEncoding.EncodeToString(h.salt), base64.RawStdEncoding.EncodeToString(h.key))
}

// parseArgon2 decodes "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>"
// (and the same with argon2i) and refuses parameters beyond lim.
func parseArgon2(s string, lim limits) (parsedHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return nil, malformed("expected $%s$v=19$m=…,t=…,p=…$salt$hash", parts[1])
	}
	h := &argon2Hash{variant: parts[1]}
	if parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return nil, malformed("only version 19 (v=19) is supported")
	}
	vals, err := parseParams(parts[3], "m", "t", "p")
	if err != nil {
		return nil, err
	}
	m, t, p := vals[0], vals[1], vals[2]
	// The bounds are on the blocks x/crypto allocates, not on m as written:
	// that is what the memory costs. parseParams keeps every value below
	// 2^32, and the lanes bound keeps p within x/crypto's uint8.
	mem := mulSat(argon2Blocks(m, max(p, 1)), argon2BlockSize)
	switch {
	case t < 1:
		return nil, malformed("iterations (t) must be at least 1")
	case p < 1 || p > lim.argon2Lanes:
		return nil, malformed("parallelism (p) of %d is outside 1 to %d", p, lim.argon2Lanes)
	case m < 8*p:
		return nil, malformed("memory (m) must be at least 8 KiB per lane")
	case mem > lim.argon2Memory:
		return nil, malformed("memory (m) of %d KiB is above the limit of %d KiB", mem/argon2BlockSize, lim.argon2Memory/argon2BlockSize)
	case mulSat(mem, t) > lim.argon2Work:
		return nil, malformed("memory × iterations (m×t) of %d KiB is above the limit of %d KiB",
			mulSat(mem, t)/argon2BlockSize, lim.argon2Work/argon2BlockSize)
	}
	h.p = Params{Memory: uint32(m), Iterations: uint32(t), Parallelism: uint8(p)}
	if h.salt, err = decodeBase64(parts[4], "salt"); err != nil {
		return nil, err
	}
	if h.key, err = decodeBase64(parts[5], "hash"); err != nil {
		return nil, err
	}
	if len(h.salt) < minArgon2Salt {
		return nil, malformed("salt must be at least %d bytes", minArgon2Salt)
	}
	if err := checkKeyLength(len(h.key)); err != nil {
		return nil, err
	}
	h.p.SaltLength, h.p.KeyLength = uint32(len(h.salt)), uint32(len(h.key))
	return h, nil
}
