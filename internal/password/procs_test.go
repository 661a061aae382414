package password

import (
	"runtime"
	"testing"
)

// TestSpareProcs changes GOMAXPROCS, so it is not parallel.
func TestSpareProcs(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(base) })
	h := NewHasher(fast, 1)
	h.SpareProcs()
	h.SpareProcs()
	if got := runtime.GOMAXPROCS(0); got != base+1 {
		t.Errorf("GOMAXPROCS = %d, want %d: one more P per hash slot, added once", got, base+1)
	}
	runtime.GOMAXPROCS(base)
	NewHasher(fast, 4*base).SpareProcs()
	if got := runtime.GOMAXPROCS(0); got != 2*base {
		t.Errorf("with %d slots: GOMAXPROCS = %d, want %d (at most doubled)", 4*base, got, 2*base)
	}
}
