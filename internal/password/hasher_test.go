package password

import (
	"context"
	"errors"
	"runtime"
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
		if err := h.compute(t.Context(), reclaimEvery/4, func() {}); err != nil {
			t.Fatal(err)
		}
		if got := collections.Load(); got != want {
			t.Errorf("after %d computations of a quarter of reclaimEvery: %d collections, want %d", i+1, got, want)
		}
	}
	if err := h.compute(t.Context(), 0, func() {}); err != nil {
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
	// Rounded up to whole KiB, so three of them reach reclaimEvery.
	h := NewHasher(Params{Memory: reclaimEvery/3/1024 + 1, Iterations: 1}, 1)
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
		{vectors[0].hash, 32 << 10},         // argon2id m=32
		{vectors[2].hash, 64 << 20},         // argon2i m=65536
		{vectors[4].hash, 0},                // bcrypt
		{vectors[6].hash, 0},                // pbkdf2
		{vectors[13].hash, 128 * 16384 * 8}, // scrypt N=16384, r=8
		{"$scrypt$ln=1024,r=2,p=3$MDEyMzQ1Njc4OWFiY2RlZg$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M", 128 * 1024 * 2},
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
