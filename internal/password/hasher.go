package password

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
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
// supported hash. Every hash computation (of any kind, however cheap)
// takes one of a fixed number of slots; callers beyond that wait, giving up
// when their context ends, so that a burst of logins cannot exhaust memory:
// with the default parameters each running argon2id hash holds 64 MiB.
//
// A failed comparison takes at least as long as one with the current
// parameters (see Compare), so that the answer time of a wrong password
// tells neither that an account's hash was imported with cheaper parameters
// nor which identifiers exist. A Hasher is safe for concurrent use.
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

	// estimate is how long a comparison with the current parameters takes,
	// in nanoseconds, for Compare's padding: the median of the last
	// estimateWindow timings of the dummy and of current-params hashes, so
	// that it follows the machine's load. 0 until the first one is timed.
	// It is written under timingsMu and read without it.
	estimate  atomic.Int64
	timingsMu sync.Mutex
	timings   []time.Duration // the last estimateWindow, oldest first
	// now and sleep are time.Now and sleepCtx, or a fake clock in tests, so
	// that the padding decision can be tested without timing anything.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration)
}

// estimateWindow is how many timings estimate is the median of. A median,
// not a moving average: the first comparison after start is several times
// slower than the rest (fresh pages, cold caches), and a GC pause can land in
// any one, and an average would carry such an outlier for dozens of
// comparisons, padding every wrong password on an imported hash well past
// what an unknown identifier costs, which shows as much as padding too
// little. A median ignores outliers yet follows a lasting change of load
// within half a window.
const estimateWindow = 15

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
	own := argon2Blocks(uint64(p.Memory), uint64(p.Parallelism)) * argon2BlockSize
	lim.argon2Memory = max(lim.argon2Memory, own)
	lim.argon2Work = max(lim.argon2Work, mulSat(own, uint64(p.Iterations)))
	lim.argon2Lanes = max(lim.argon2Lanes, uint64(p.Parallelism))
	h := &Hasher{
		params: p, limits: lim, slots: make(chan struct{}, maxConcurrent), rand: rand.Reader,
		collect: runtime.GC, now: time.Now, sleep: sleepCtx,
	}
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
	_, err := h.compute(ctx, a.memory(), func() {
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
//
// A mismatch that took less time than a comparison with the current
// parameters is padded to it: an imported bcrypt-10 hash compares in half
// the time of the default argon2id, and an unknown identifier costs the
// latter (CompareDummy), so without the padding a wrong password would tell
// the imported accounts from the rest and from the unknown identifiers. The
// padding is a sleep after the slot is given back, so it costs no CPU and
// holds up no other computation; it ends early when ctx does. A match is
// not padded: it tells the caller nothing they did not know. A mismatch
// slower than the estimate is not padded either, so a hash costlier than
// the current parameters still shows in the time.
func (h *Hasher) Compare(ctx context.Context, password, hash string) (ok bool, err error) {
	parsed, err := parse(hash, h.limits)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnsupportedHash, err)
	}
	elapsed, err := h.compute(ctx, parsed.memory(), func() { ok = parsed.verify([]byte(password)) })
	if err != nil {
		return false, err
	}
	if h.current(parsed) {
		h.observe(elapsed)
	}
	if !ok {
		h.pad(ctx, password, elapsed)
	}
	return ok, nil
}

// pad waits out the rest of the estimated current-params comparison time
// after a mismatch that took elapsed.
func (h *Hasher) pad(ctx context.Context, password string, elapsed time.Duration) {
	est := time.Duration(h.estimate.Load())
	if est == 0 {
		// Nothing has been timed yet: run the dummy, which costs exactly
		// what the padding should and gives the estimate its first sample.
		// It happens once, so timing a dummy at start (slowing every start
		// and every test by a hash) is not worth it.
		h.CompareDummy(ctx, password)
		return
	}
	if elapsed < est {
		h.sleep(ctx, est-elapsed)
	}
}

// observe adds the duration of a current-params comparison to estimate.
func (h *Hasher) observe(d time.Duration) {
	h.timingsMu.Lock()
	defer h.timingsMu.Unlock()
	if len(h.timings) == estimateWindow {
		h.timings = slices.Delete(h.timings, 0, 1)
	}
	h.timings = append(h.timings, d)
	sorted := slices.Sorted(slices.Values(h.timings))
	// The lower median, when the count is even: two timings are the cold
	// first one and a warm one, and the warm one is the better guess. A
	// zero (from a coarse or fake clock) must not read as "not yet timed".
	h.estimate.Store(max(int64(sorted[(len(sorted)-1)/2]), 1))
}

// sleepCtx sleeps for d or until ctx ends, whichever is first.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// NeedsRehash reports whether hash should be replaced by Hash's output at the
// next successful login: true for anything that is not argon2id, version 19,
// with exactly the current parameters (any imported kind, argon2i, an
// argon2id with other costs or lengths, or a hash that cannot be read).
func (h *Hasher) NeedsRehash(hash string) bool {
	parsed, err := parse(hash, h.limits)
	return err != nil || !h.current(parsed)
}

// current reports whether p is argon2id with exactly the current parameters.
func (h *Hasher) current(p parsedHash) bool {
	a, ok := p.(*argon2Hash)
	return ok && a.variant == "argon2id" && a.p == h.params
}

// CompareDummy compares password with a hash under the current parameters
// that nothing matches, and ignores the result. A login for an unknown
// identifier calls it so that it takes as long as a wrong password for a
// known one, and the answer time does not tell which identifiers exist. It
// waits for a slot like Compare and returns early only if ctx ends. Its time
// is what Compare pads mismatches to.
func (h *Hasher) CompareDummy(ctx context.Context, password string) {
	elapsed, err := h.compute(ctx, h.dummy.memory(), func() { h.dummy.verify([]byte(password)) })
	if err == nil {
		h.observe(elapsed)
	}
}

// compute runs fn, which allocates about mem bytes and drops them when it
// returns, in a slot, waiting for one unless ctx ends first. It returns how
// long fn ran, without the wait: the wait is the same for every kind of
// hash, so only fn's time can tell them apart.
func (h *Hasher) compute(ctx context.Context, mem uint64, fn func()) (time.Duration, error) {
	// A context that has already ended gets no slot even if one is free:
	// select would pick at random between the two ready cases.
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("password: waiting to hash: %w", err)
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("password: waiting to hash: %w", ctx.Err())
	}
	defer func() { <-h.slots }()
	start := h.now()
	if h.hook != nil {
		h.hook(fn)
	} else {
		fn()
	}
	elapsed := h.now().Sub(start)
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
	return elapsed, nil
}
