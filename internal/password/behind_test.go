package password

import (
	"runtime"
	"strings"
	"testing"
)

func TestRunBehindRunsAndWaits(t *testing.T) {
	t.Parallel()
	ran := false
	runBehind(func() { ran = true })
	if !ran {
		t.Fatal("runBehind returned before fn ran")
	}
}

func TestRunBehindRaisesPanicsInTheCaller(t *testing.T) {
	t.Parallel()
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "boom") {
			t.Errorf("recovered %v, want the panic of fn", p)
		}
	}()
	runBehind(func() { panic("boom") })
	t.Error("runBehind returned after fn panicked")
}

// TestSpareProcs changes GOMAXPROCS, so it is not parallel.
func TestSpareProcs(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(base) })
	NewHasher(fast, 3).SpareProcs()
	if got := runtime.GOMAXPROCS(0); got != base+3 {
		t.Errorf("GOMAXPROCS = %d, want %d: one more P per hash slot", got, base+3)
	}
}
