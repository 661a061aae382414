package password

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
)

// reclaimEvery is how much memory finished hash computations may leave for
// the garbage collector before the Hasher asks for a collection. argon2 and
// scrypt allocate their whole memory cost afresh on every call
// (x/crypto takes no buffer), so without this a login flood leaves dead
// 64 MiB blocks until the runtime's own pacing or memory limit catches up:
// the heap then holds several times the live hashes, and under a memory
// limit the runtime returns the dead blocks to the OS only for the next hash
// to fault 64 MiB back in. Collecting once this much is dead keeps the heap
// at about the running hashes plus reclaimEvery, and a block freed that way
// is reused by the next hash without page faults. A collection costs a few
// milliseconds of marking, so at 64 MiB it happens after every default
// (64 MiB) hash, about 100 ms of work, but only after every eighth 8 MiB one.
const reclaimEvery = 64 << 20

// Hasher hashes new passwords with argon2id and compares passwords with any
// supported hash. Every hash computation (argon2, bcrypt, pbkdf2 or scrypt)
// takes one of a fixed number of slots; callers beyond that wait, giving up
// when their context ends, so that a burst of logins cannot exhaust memory:
// with the default parameters each running argon2id hash holds 64 MiB.
// A Hasher is safe for concurrent use.
type Hasher struct {
	params Params
	limits limits
	slots  chan struct{}
	// dummy is a current-params hash that no password matches, for
	// CompareDummy.
	dummy *argon2Hash
	// rand is the salt source: crypto/rand, or a fixed one in tests so that
	// an encoding can be checked against a known vector.
	rand io.Reader
	// hook, when a test sets it, is handed each computation to run inside
	// its slot, to observe that a real one happens and how many run at once.
	hook func(compute func())
	// dead is the memory of computations finished since the last
	// collection the Hasher asked for; see reclaimEvery.
	dead atomic.Uint64
	// collect runs a garbage collection: runtime.GC, or a counter in tests.
	collect func()
}

// NewHasher returns a Hasher that writes hashes with p and runs at most
// maxConcurrent hash computations at once (runtime.NumCPU() when it is 0 or
// less: more would only queue for the CPUs while each holding its memory).
// Zero fields of p take their DefaultParams values. p must pass Validate,
// which configuration loading is expected to call; NewHasher panics otherwise,
// as that is a wiring bug found at start, not a runtime condition.
func NewHasher(p Params, maxConcurrent int) *Hasher {
	p = p.withDefaults()
	if err := p.Validate(); err != nil {
		panic(err)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.NumCPU()
	}
	lim := defaultLimits
	lim.argon2MemoryKiB = max(lim.argon2MemoryKiB, p.Memory)
	lim.argon2WorkKiB = max(lim.argon2WorkKiB, uint64(p.Memory)*uint64(p.Iterations))
	h := &Hasher{params: p, limits: lim, slots: make(chan struct{}, maxConcurrent), rand: rand.Reader, collect: runtime.GC}
	// The dummy needs no derivation: a random key under the current
	// parameters costs a comparison exactly what a real hash costs, and no
	// password can be expected to match it.
	h.dummy = &argon2Hash{variant: "argon2id", p: p, salt: make([]byte, p.SaltLength), key: make([]byte, p.KeyLength)}
	// crypto/rand.Read never returns an error (since Go 1.24 it crashes the
	// program instead), so there is nothing to handle.
	_, _ = rand.Read(h.dummy.salt)
	_, _ = rand.Read(h.dummy.key)
	return h
}

// Hash returns a new argon2id hash of password as a PHC string,
// "$argon2id$v=19$m=…,t=…,p=…$<salt>$<key>" in unpadded standard base64,
// the format Kratos writes. It fails only when ctx ends while it waits for a
// slot (or if the salt cannot be read).
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	a := &argon2Hash{variant: "argon2id", p: h.params, salt: make([]byte, h.params.SaltLength)}
	if _, err := io.ReadFull(h.rand, a.salt); err != nil {
		return "", fmt.Errorf("password: reading a salt: %w", err)
	}
	err := h.compute(ctx, a.memory(), func() {
		a.key = a.derive([]byte(password), h.params.KeyLength)
	})
	if err != nil {
		return "", err
	}
	return a.encode(), nil
}

// Compare reports whether password matches hash, in constant time for a
// given hash. A mismatch is (false, nil). The error is for a hash that is not
// supported or is malformed (wrapping ErrUnsupportedHash; it says why, never
// what the hash was) and for ctx ending while waiting for a slot.
func (h *Hasher) Compare(ctx context.Context, password, hash string) (ok bool, err error) {
	parsed, err := parse(hash, h.limits)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnsupportedHash, err)
	}
	err = h.compute(ctx, parsed.memory(), func() { ok = parsed.verify([]byte(password)) })
	return ok, err
}

// NeedsRehash reports whether hash should be replaced by Hash's output at the
// next successful login: true for anything that is not argon2id, version 19,
// with exactly the current parameters (bcrypt, pbkdf2, scrypt, argon2i, an
// argon2id with other costs or lengths, or a hash that cannot be read).
func (h *Hasher) NeedsRehash(hash string) bool {
	parsed, err := parse(hash, h.limits)
	if err != nil {
		return true
	}
	a, ok := parsed.(*argon2Hash)
	return !ok || a.variant != "argon2id" || a.p != h.params
}

// CompareDummy compares password with a hash under the current parameters
// that nothing matches, and ignores the result. A login for an unknown
// identifier calls it so that it takes as long as a wrong password for a
// known one, and the answer time does not tell which identifiers exist. It
// waits for a slot like Compare and returns early only if ctx ends.
func (h *Hasher) CompareDummy(ctx context.Context, password string) {
	_ = h.compute(ctx, h.dummy.memory(), func() { h.dummy.verify([]byte(password)) })
}

// compute runs fn, which allocates about mem bytes and drops them when it
// returns, in a slot, waiting for one unless ctx ends first.
func (h *Hasher) compute(ctx context.Context, mem uint64, fn func()) error {
	// A context that has already ended gets no slot even if one is free:
	// select would pick at random between the two ready cases.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("password: waiting to hash: %w", err)
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("password: waiting to hash: %w", ctx.Err())
	}
	defer func() { <-h.slots }()
	if h.hook != nil {
		h.hook(fn)
	} else {
		fn()
	}
	// Collect while still holding the slot, so that the next computation in
	// it finds this one's memory free: the heap then never holds more than
	// the slots' memory plus less than reclaimEvery of dead computations.
	// Resetting the count before collecting loses only memory that other
	// slots added after their computations ended, which this collection
	// frees too.
	if h.dead.Add(mem) >= reclaimEvery {
		h.dead.Store(0)
		h.collect()
	}
	return nil
}
