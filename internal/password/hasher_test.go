package password

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fast are argon2id parameters that keep tests quick; nothing here depends
// on their strength.
var fast = Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

func TestHashCompareRoundTrip(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 2)
	for _, pw := range []string{
		"",
		"correct horse battery staple",
		"пароль-密码-🔑",
		strings.Repeat("long", 250),
	} {
		hash, err := h.Hash(t.Context(), pw)
		if err != nil {
			t.Fatalf("Hash: %v", err)
		}
		if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Errorf("Hash = %q, want the PHC argon2id prefix with the configured params", hash)
		}
		if strings.Contains(hash, pw) && pw != "" {
			t.Errorf("hash contains the password")
		}
		for _, c := range []struct {
			password string
			want     bool
		}{
			{pw, true},
			{pw + "x", false},
			{strings.ToUpper(pw) + "!", false},
		} {
			got, err := h.Compare(t.Context(), c.password, hash)
			if err != nil || got != c.want {
				t.Errorf("Compare(len %d) = %v, %v; want %v, nil", len(c.password), got, err, c.want)
			}
		}
	}
}

func TestHashSaltsDiffer(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 1)
	a, _ := h.Hash(t.Context(), "same password")
	b, _ := h.Hash(t.Context(), "same password")
	if a == b {
		t.Errorf("two hashes of one password are equal: the salt is not random")
	}
}

// TestHashEncodingMatchesKratos pins the salt to the one in a hash from
// Kratos's own tests (hash/hasher_test.go) and checks that Hash writes exactly
// that string, so the encoding is verified against an outside source.
func TestHashEncodingMatchesKratos(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{Memory: 32, Iterations: 2, Parallelism: 4, SaltLength: 16, KeyLength: 16}, 1)
	h.rand = strings.NewReader("roxbtU9ncg1sqQ8m") // base64 "cm94YnRVOW5jZzFzcVE4bQ"
	got, err := h.Hash(t.Context(), "test")
	want := "$argon2id$v=19$m=32,t=2,p=4$cm94YnRVOW5jZzFzcVE4bQ$MNzk5BtR2vUhrp6qQEjRNw"
	if err != nil || got != want {
		t.Errorf("Hash = %q, %v; want %q", got, err, want)
	}
}

// Known vectors. Those marked Kratos come from ory/kratos hash/hasher_test.go,
// the PHP one from the PHP manual's password_verify example; the pbkdf2 sha1,
// sha224/sha384 (SHA-3, as Kratos maps them) and scrypt ones were made with
// Python's hashlib (OpenSSL), an implementation independent of this one.
//
// Each costs a real comparison, so a wrong password is tried only where that
// is cheap; the costly ones (bcrypt cost 12, scrypt N=16384, argon2i 64 MiB)
// take seconds under the race detector, and their mismatch path is the same
// code as their cheaper neighbours'.
var vectors = []struct {
	name, password, hash, algorithm string
	costly                          bool
}{
	{"kratos argon2id t=2", "test", "$argon2id$v=19$m=32,t=2,p=4$cm94YnRVOW5jZzFzcVE4bQ$MNzk5BtR2vUhrp6qQEjRNw", "argon2id", false},
	{"kratos argon2id t=5", "test", "$argon2id$v=19$m=32,t=5,p=4$cm94YnRVOW5jZzFzcVE4bQ$fBxypOL0nP/zdPE71JtAV71i487LbX3fJI5PoTN6Lp4", "argon2id", false},
	{"kratos argon2i", "test", "$argon2i$v=19$m=65536,t=3,p=4$kk51rW/vxIVCYn+EG4kTSg$NyT88uraJ6im6dyha/M5jhXvpqlEdlS/9fEm7ScMb8c", "argon2i", true},
	{"kratos bcrypt $2a$", "test", "$2a$12$o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6", "bcrypt", true},
	{"php bcrypt $2y$", "rasmuslerdorf", "$2y$07$BCryptRequires22Chrcte/VlQH0piJtjXl.0t1XkA8pw9dMXTpOq", "bcrypt", false},
	// $2a$, $2b$ and $2y$ differ only for passwords of 256 bytes or more.
	{"bcrypt $2b$", "rasmuslerdorf", "$2b$07$BCryptRequires22Chrcte/VlQH0piJtjXl.0t1XkA8pw9dMXTpOq", "bcrypt", false},
	{"kratos pbkdf2-sha256", "test", "$pbkdf2-sha256$i=100000,l=32$1jP+5Zxpxgtee/iPxGgOz0RfE9/KJuDElP1ley4VxXc$QJxzfvdbHYBpydCbHoFg3GJEqMFULwskiuqiJctoYpI", "pbkdf2", false},
	{"kratos pbkdf2-sha512", "test", "$pbkdf2-sha512$i=100000,l=32$bdHBpn7OWOivJMVJypy2UqR0UnaD5prQXRZevj/05YU$+wArTfv1a+bNGO1iZrmEdVjhA+lL11wF4/IxpgYfPwc", "pbkdf2", false},
	{"python pbkdf2-sha1", "correct horse", "$pbkdf2-sha1$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$aUfE2vx5Q7zgbb0jx49AaNpXUQQVW6pePKN5ab37G40", "pbkdf2", false},
	{"python pbkdf2-sha224 (SHA3)", "correct horse", "$pbkdf2-sha224$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$UrjDZXM1sG0TQTxqIhpBncU/VRCD6TblLyeMhMQfCME", "pbkdf2", false},
	{"python pbkdf2-sha384 (SHA3)", "correct horse", "$pbkdf2-sha384$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$S+KsdiI9hSW1E9Wel0KMjNLLODlvi+nlNRA9/S2RxKA", "pbkdf2", false},
	{"python pbkdf2-sha256", "correct horse", "$pbkdf2-sha256$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$cBg8D2DungRB9k76szThf5ehfyBz991ay6PT8Srwk4M", "pbkdf2", false},
	{"python pbkdf2-sha512", "correct horse", "$pbkdf2-sha512$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$OM0FAoIqCVK1sWtxDiffVlBejtLa+ks4TP71JiecwuQ", "pbkdf2", false},
	{"kratos scrypt", "test", "$scrypt$ln=16384,r=8,p=1$2npRo7P03Mt8keSoMbyD/tKFWyUzjiQf2svUaNDSrhA=$MiCzNcIplSMqSBrm4HckjYqYhaVPPjTARTzwB1cVNYE=", "scrypt", true},
	{"python scrypt padded", "correct horse", "$scrypt$ln=1024,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg==$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M=", "scrypt", false},
	{"python scrypt unpadded", "correct horse", "$scrypt$ln=1024,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M", "scrypt", false},
}

func TestCompareKnownVectors(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 2)
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			cases := []struct {
				password string
				want     bool
			}{
				{v.password, true},
				{v.password + "1", false},
			}
			if v.costly {
				cases = cases[:1]
			}
			for _, c := range cases {
				got, err := h.Compare(t.Context(), c.password, v.hash)
				if err != nil || got != c.want {
					t.Errorf("Compare(%q) = %v, %v; want %v, nil", c.password, got, err, c.want)
				}
			}
		})
	}
}

func TestCompareBcryptLongPassword(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 1)
	pw72 := strings.Repeat("p", 72)
	hash, err := bcrypt.GenerateFromPassword([]byte(pw72), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// bcrypt reads only 72 bytes, so a longer password would match any hash
	// of its first 72: it must not.
	for _, c := range []struct {
		password string
		want     bool
	}{
		{pw72, true},
		{pw72 + "anything", false},
		{pw72[:71], false},
	} {
		got, err := h.Compare(t.Context(), c.password, string(hash))
		if err != nil || got != c.want {
			t.Errorf("Compare(len %d) = %v, %v; want %v, nil", len(c.password), got, err, c.want)
		}
	}
}

func TestCompareMalformedHash(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 1)
	const pw = "hunter2hunter2"
	for _, hash := range []string{
		"",
		"plaintext",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$", // empty key
		"$2a$40$o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6",
	} {
		got, err := h.Compare(t.Context(), pw, hash)
		if got || !errors.Is(err, ErrUnsupportedHash) {
			t.Errorf("Compare(%q) = %v, %v; want false, ErrUnsupportedHash", hash, got, err)
			continue
		}
		if msg := err.Error(); (hash != "" && strings.Contains(msg, hash)) || strings.Contains(msg, pw) {
			t.Errorf("error %q repeats the hash or the password", msg)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := NewHasher(fast, 2)
	hashWith := func(p Params) string {
		s, err := NewHasher(p, 1).Hash(ctx, "pw")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	with := func(f func(*Params)) Params {
		p := fast
		f(&p)
		return p
	}
	current, _ := h.Hash(ctx, "pw")
	for _, c := range []struct {
		name, hash string
		want       bool
	}{
		{"current", current, false},
		{"same params, other hasher", hashWith(fast), false},
		{"less memory", hashWith(with(func(p *Params) { p.Memory = 32 })), true},
		{"more memory", hashWith(with(func(p *Params) { p.Memory = 128 })), true},
		{"other iterations", hashWith(with(func(p *Params) { p.Iterations = 2 })), true},
		{"other parallelism", hashWith(with(func(p *Params) { p.Parallelism = 2 })), true},
		{"shorter salt", hashWith(with(func(p *Params) { p.SaltLength = 8 })), true},
		{"longer key", hashWith(with(func(p *Params) { p.KeyLength = 64 })), true},
		{"argon2i same params", "$argon2i" + strings.TrimPrefix(current, "$argon2id"), true},
		{"bcrypt", vectors[3].hash, true},
		{"pbkdf2", vectors[6].hash, true},
		{"scrypt", vectors[13].hash, true},
		{"garbage", "not a hash", true},
		{"empty", "", true},
	} {
		if got := h.NeedsRehash(c.hash); got != c.want {
			t.Errorf("%s: NeedsRehash = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNewHasherDefaults(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{Memory: 64}, 0)
	if got, want := cap(h.slots), runtime.NumCPU(); got != want {
		t.Errorf("slots = %d, want runtime.NumCPU() = %d", got, want)
	}
	want := DefaultParams()
	want.Memory = 64
	if h.params != want {
		t.Errorf("params = %+v, want zero fields defaulted: %+v", h.params, want)
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Errorf("DefaultParams().Validate() = %v", err)
	}
}

func TestParamsValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		p    Params
		ok   bool
	}{
		{"zero takes defaults", Params{}, true},
		{"fast", fast, true},
		{"memory below 8 KiB per lane", Params{Memory: 16, Parallelism: 4}, false},
		{"short salt", Params{SaltLength: 4}, false},
		{"short key", Params{KeyLength: 8}, false},
		{"huge key", Params{KeyLength: 4096}, false},
	} {
		if err := c.p.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
	}
	defer func() {
		if recover() == nil {
			t.Errorf("NewHasher with invalid params did not panic")
		}
	}()
	NewHasher(Params{KeyLength: 8}, 1)
}

// TestHasherOwnHashesAboveImportLimits: an operator may configure more
// memory than an import may ask for; the Hasher must still read its hashes.
func TestHasherOwnHashesAboveImportLimits(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{Memory: 2 << 20, Iterations: 3}, 1)
	hash := h.dummy.encode()
	if h.NeedsRehash(hash) {
		t.Errorf("NeedsRehash of a current-params hash = true")
	}
	if _, err := parse(hash, h.limits); err != nil {
		t.Errorf("own hash refused: %v", err)
	}
	if _, err := Recognise(hash); err == nil {
		t.Errorf("Recognise accepted 2 GiB argon2 for import")
	}
}

func TestConcurrencyBoundWaitsAndRespectsContext(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 1)
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	h.hook = func(compute func()) {
		if calls.Add(1) == 1 {
			close(started)
			<-release // hold the only slot, as a long hash would
		}
		compute()
	}
	done := make(chan error)
	go func() {
		_, err := h.Hash(context.Background(), "first")
		done <- err
	}()
	<-started

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "second"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Hash while the slot is taken = %v, want DeadlineExceeded", err)
	}
	if _, err := h.Compare(ctx, "second", vectors[0].hash); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Compare while the slot is taken = %v, want DeadlineExceeded", err)
	}
	h.CompareDummy(ctx, "second") // must return, not wait for ever
	if got := calls.Load(); got != 1 {
		t.Errorf("computations started while the slot was taken = %d, want 1", got)
	}

	close(release)
	if err := <-done; err != nil {
		t.Errorf("first Hash = %v", err)
	}
	if _, err := h.Hash(t.Context(), "third"); err != nil {
		t.Errorf("Hash after the slot was freed = %v", err)
	}
}

func TestConcurrencyBoundHolds(t *testing.T) {
	t.Parallel()
	const limit, callers = 2, 8
	h := NewHasher(fast, limit)
	var active, peak atomic.Int32
	h.hook = func(compute func()) {
		n := active.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond) // make overlaps certain
		compute()
		active.Add(-1)
	}
	hash, _ := NewHasher(fast, 1).Hash(t.Context(), "pw")
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			switch i % 3 {
			case 0:
				_, _ = h.Hash(t.Context(), "pw")
			case 1:
				_, _ = h.Compare(t.Context(), "pw", hash)
			default:
				h.CompareDummy(t.Context(), "pw")
			}
		})
	}
	wg.Wait()
	if got := peak.Load(); got != limit {
		t.Errorf("peak concurrent computations = %d, want %d", got, limit)
	}
}

func TestCanceledContextGetsNoSlot(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 4)
	var calls atomic.Int32
	h.hook = func(compute func()) { calls.Add(1); compute() }
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash = %v, want Canceled", err)
	}
	if ok, err := h.Compare(ctx, "test", vectors[0].hash); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("Compare = %v, %v; want false, Canceled", ok, err)
	}
	if calls.Load() != 0 {
		t.Errorf("a computation ran for a canceled context")
	}
}

// TestCompareDummy checks that CompareDummy does the work of a real
// comparison with the current parameters; timings are not asserted.
func TestCompareDummy(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 1)
	var calls atomic.Int32
	h.hook = func(compute func()) { calls.Add(1); compute() }
	h.CompareDummy(t.Context(), "whatever")
	if got := calls.Load(); got != 1 {
		t.Errorf("CompareDummy ran %d computations, want 1", got)
	}
	dummy := h.dummy.encode()
	if h.NeedsRehash(dummy) {
		t.Errorf("the dummy hash does not have the current parameters")
	}
	if ok, err := h.Compare(t.Context(), "", dummy); ok || err != nil {
		t.Errorf("Compare with the dummy = %v, %v; want false, nil", ok, err)
	}
}

func BenchmarkHashDefault(b *testing.B) {
	h := NewHasher(DefaultParams(), 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompareDefault(b *testing.B) {
	h := NewHasher(DefaultParams(), 0)
	ctx := context.Background()
	hash, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := h.Compare(ctx, "correct horse battery staple", hash); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func TestCollectsAfterEnoughHashMemory(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 2)
	var collections atomic.Int32
	h.collect = func() {
		// Collecting before the slot is given back is what keeps the next
		// computation in it from allocating beside the dead memory.
		if n := len(h.slots); n != 1 {
			t.Errorf("collecting with %d slots taken, want its own still held", n)
		}
		collections.Add(1)
	}
	for i, want := range []int32{0, 0, 0, 1, 1, 1, 1, 2, 2} {
		if _, err := h.compute(t.Context(), reclaimEvery/4, func() {}); err != nil {
			t.Fatal(err)
		}
		if got := collections.Load(); got != want {
			t.Errorf("after %d computations of a quarter of reclaimEvery: %d collections, want %d", i+1, got, want)
		}
	}
	if _, err := h.compute(t.Context(), 0, func() {}); err != nil {
		t.Fatal(err)
	}
	if got := collections.Load(); got != 2 {
		t.Errorf("a computation with no memory collected: %d collections, want 2", got)
	}
}

// TestCollectsForEveryKindOfComputation checks that Hash, Compare and
// CompareDummy all count their memory: three hashes of a third of
// reclaimEvery each (rounded up) make one collection.
func TestCollectsForEveryKindOfComputation(t *testing.T) {
	t.Parallel()
	// A third of reclaimEvery rounded up to whole blocks in a multiple of
	// 4 (what x/crypto allocates with one lane), so three reach it.
	h := NewHasher(Params{Memory: (reclaimEvery/3/1024/4 + 1) * 4, Iterations: 1}, 1)
	var collections atomic.Int32
	h.collect = func() { collections.Add(1) }
	hash, err := h.Hash(t.Context(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Compare(t.Context(), "pw", hash); !ok || err != nil {
		t.Fatalf("Compare = %v, %v", ok, err)
	}
	if got := collections.Load(); got != 0 {
		t.Errorf("after two thirds of reclaimEvery: %d collections, want 0", got)
	}
	h.CompareDummy(t.Context(), "pw")
	if got := collections.Load(); got != 1 {
		t.Errorf("after all of reclaimEvery: %d collections, want 1", got)
	}
}

func TestMemory(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		hash string
		want uint64
	}{
		{vectors[0].hash, 32 << 10}, // argon2id m=32
		{vectors[2].hash, 64 << 20}, // argon2i m=65536
		{vectors[4].hash, 0},        // bcrypt
		{vectors[6].hash, 0},        // pbkdf2
		// scrypt N=16384, r=8, p=1: V, XY and B.
		{vectors[13].hash, 128*16384*8 + 256*8 + 128*8*1},
		{"$scrypt$ln=1024,r=2,p=3$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M", 128*1024*2 + 256*2 + 128*2*3},
		// p large and N, r small: B is all there is.
		{"$scrypt$ln=2,r=1,p=100000$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M", 128*2 + 256 + 128*100000},
		// argon2 m=100, p=3: x/crypto rounds down to a multiple of 4×3.
		{"$argon2id$v=19$m=100,t=1,p=3$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M", 96 << 10},
	} {
		p, err := parse(c.hash, defaultLimits)
		if err != nil {
			t.Fatalf("parse(%.30q…): %v", c.hash, err)
		}
		if got := p.memory(); got != c.want {
			t.Errorf("memory of %.30q… = %d, want %d", c.hash, got, c.want)
		}
	}
}

// fakeClock is a Hasher's clock and sleep for tests of the padding: each
// computation advances it by the next of costs, and sleeps are recorded,
// not slept, so nothing here is timed.
type fakeClock struct {
	now    time.Time
	costs  []time.Duration
	slept  []time.Duration
	ranFor []time.Duration
}

func newFakeClock(t *testing.T, h *Hasher) *fakeClock {
	c := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	h.now = func() time.Time { return c.now }
	h.hook = func(compute func()) {
		compute()
		if len(c.costs) == 0 {
			t.Fatalf("a computation beyond the costs given")
		}
		c.now = c.now.Add(c.costs[0])
		c.ranFor = append(c.ranFor, c.costs[0])
		c.costs = c.costs[1:]
	}
	h.sleep = func(ctx context.Context, d time.Duration) {
		if n := len(h.slots); n != 0 {
			t.Errorf("padding while holding %d slots: it must give its slot back first", n)
		}
		if ctx.Value(fakeClockKey{}) == nil {
			t.Errorf("padding without the caller's context: it could not end with it")
		}
		c.slept = append(c.slept, d)
	}
	return c
}

type fakeClockKey struct{}

// TestComparePadsMismatchesToTheDummysCost: a wrong password on an imported
// hash cheaper than the current parameters (bcrypt-10 answers in 60 ms, the
// default argon2id in 120 ms, and an unknown identifier costs the latter)
// must take as long as one on a current hash, or the answer time tells
// imported accounts from the rest and from unknown identifiers.
func TestComparePadsMismatchesToTheDummysCost(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	ctx := context.WithValue(t.Context(), fakeClockKey{}, true)
	bc, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	imported := string(bc)
	h := NewHasher(fast, 1)
	current, err := NewHasher(fast, 1).Hash(ctx, "right")
	if err != nil {
		t.Fatal(err)
	}
	c := newFakeClock(t, h)

	for _, step := range []struct {
		name      string
		run       func()
		costs     []time.Duration // of each computation, in order
		wantSleep []time.Duration // nil: none
		wantEst   time.Duration
	}{
		{
			// Nothing timed yet: the mismatch runs the dummy, which both pads
			// and gives the first estimate.
			name:    "first mismatch runs the dummy",
			run:     func() { mustCompare(t, h, ctx, "wrong", imported, false) },
			costs:   []time.Duration{30 * ms, 100 * ms},
			wantEst: 100 * ms,
		},
		{
			name:      "fast mismatch sleeps the difference",
			run:       func() { mustCompare(t, h, ctx, "wrong", imported, false) },
			costs:     []time.Duration{30 * ms},
			wantSleep: []time.Duration{70 * ms},
			wantEst:   100 * ms,
		},
		{
			name:    "a match is not padded",
			run:     func() { mustCompare(t, h, ctx, "right", imported, true) },
			costs:   []time.Duration{30 * ms},
			wantEst: 100 * ms,
		},
		{
			name:    "a mismatch slower than the estimate is not padded",
			run:     func() { mustCompare(t, h, ctx, "wrong", imported, false) },
			costs:   []time.Duration{150 * ms},
			wantEst: 100 * ms,
		},
		{
			// The cold first comparison after start, or a GC pause.
			name:    "one slow timing does not move the estimate",
			run:     func() { h.CompareDummy(ctx, "anything") },
			costs:   []time.Duration{400 * ms},
			wantEst: 100 * ms,
		},
		{
			name:      "padded to the estimate still",
			run:       func() { mustCompare(t, h, ctx, "wrong", imported, false) },
			costs:     []time.Duration{30 * ms},
			wantSleep: []time.Duration{70 * ms},
			wantEst:   100 * ms,
		},
		{
			// Timings 100, 400, 70: the median stays.
			name:      "a current hash's mismatch is timed, then padded",
			run:       func() { mustCompare(t, h, ctx, "wrong", current, false) },
			costs:     []time.Duration{70 * ms},
			wantSleep: []time.Duration{30 * ms},
			wantEst:   100 * ms,
		},
		{
			// Timings 100, 400, 70, 60: the lower median.
			name:    "a current hash's match is timed, not padded",
			run:     func() { mustCompare(t, h, ctx, "right", current, true) },
			costs:   []time.Duration{60 * ms},
			wantEst: 70 * ms,
		},
		{
			name: "a lasting change of load moves it",
			run: func() {
				for range 8 {
					h.CompareDummy(ctx, "anything")
				}
			},
			costs:   slices.Repeat([]time.Duration{200 * ms}, 8),
			wantEst: 200 * ms,
		},
		{
			name: "the window forgets",
			run: func() {
				for range estimateWindow {
					h.CompareDummy(ctx, "anything")
				}
			},
			costs:   slices.Repeat([]time.Duration{50 * ms}, estimateWindow),
			wantEst: 50 * ms,
		},
		{
			name:      "padded to the new estimate",
			run:       func() { mustCompare(t, h, ctx, "wrong", imported, false) },
			costs:     []time.Duration{30 * ms},
			wantSleep: []time.Duration{20 * ms},
			wantEst:   50 * ms,
		},
	} {
		c.costs, c.slept, c.ranFor = step.costs, nil, nil
		step.run()
		if len(c.costs) != 0 {
			t.Errorf("%s: %d computations did not run", step.name, len(c.costs))
		}
		if !slices.Equal(c.slept, step.wantSleep) {
			t.Errorf("%s: slept %v, want %v", step.name, c.slept, step.wantSleep)
		}
		if got := time.Duration(h.estimate.Load()); got != step.wantEst {
			t.Errorf("%s: estimate %v, want %v", step.name, got, step.wantEst)
		}
	}
}

func mustCompare(t *testing.T, h *Hasher, ctx context.Context, password, hash string, want bool) {
	t.Helper()
	if ok, err := h.Compare(ctx, password, hash); ok != want || err != nil {
		t.Fatalf("Compare = %v, %v; want %v, nil", ok, err, want)
	}
}

// TestComparePaddingNotForErrors: a hash that cannot be read is the
// server's fault and an internal error, and a context that ended before a
// slot was free ran nothing to pad.
func TestComparePaddingNotForErrors(t *testing.T) {
	t.Parallel()
	h := NewHasher(fast, 1)
	c := newFakeClock(t, h)
	h.estimate.Store(int64(time.Second))
	if _, err := h.Compare(t.Context(), "pw", "not a hash"); !errors.Is(err, ErrUnsupportedHash) {
		t.Errorf("Compare(garbage) = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := h.Compare(ctx, "pw", vectors[0].hash); !errors.Is(err, context.Canceled) {
		t.Errorf("Compare(canceled) = %v", err)
	}
	if len(c.slept) != 0 || len(c.ranFor) != 0 {
		t.Errorf("slept %v and ran %v, want nothing", c.slept, c.ranFor)
	}
}

// TestSleepCtxEndsWithTheContext: the padding must not keep a request whose
// client has gone.
func TestSleepCtxEndsWithTheContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	done := make(chan struct{})
	go func() {
		sleepCtx(ctx, time.Hour)
		close(done)
	}()
	select {
	case <-done:
	case <-t.Context().Done():
		t.Fatal("sleepCtx outlived its context")
	}
}

// TestMemoryIsWhatVerifyAllocates measures what verify allocates and checks
// that memory() is that, give or take the few KiB that do not grow with the
// parameters: the Hasher's collection pacing and the limits both rely on it.
// Not parallel, so that no other test allocates while it measures.
func TestMemoryIsWhatVerifyAllocates(t *testing.T) {
	const slack = 64 << 10
	bc, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	const salt, key = "MDEyMzQ1Njc4OWFiY2RlZg", "6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M"
	for _, hash := range []string{
		"$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + key,
		"$argon2i$v=19$m=100,t=1,p=3$" + salt + "$" + key,   // 96 blocks
		"$argon2id$v=19$m=511,t=1,p=16$" + salt + "$" + key, // 448 blocks
		"$scrypt$ln=1024,r=8,p=1$" + salt + "$" + key,
		"$scrypt$ln=16,r=4,p=64$" + salt + "$" + key,
		"$scrypt$ln=2,r=1,p=100000$" + salt + "$" + key, // B is all of it
		"$pbkdf2-sha512$i=1000,l=32$" + salt + "$" + key,
		string(bc),
	} {
		p, err := parse(hash, defaultLimits)
		if err != nil {
			t.Fatalf("parse(%.30q…): %v", hash, err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		p.verify([]byte("pw"))
		runtime.ReadMemStats(&after)
		got := after.TotalAlloc - before.TotalAlloc
		if mem := p.memory(); got < mem || got > mem+slack {
			t.Errorf("%.30q…: verify allocated %d bytes, memory() = %d", hash, got, mem)
		}
	}
}
