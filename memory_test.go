package main

import (
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	const MiB = 1 << 20
	for _, c := range []struct {
		name   string
		slots  int
		memKiB uint32
		want   int64
	}{
		{"defaults on 2 CPUs", 2, 64 << 10, 2*64*MiB + 128*MiB},
		{"one small hash", 1, 8 << 10, 8*MiB + 128*MiB},
		{"many slots", 64, 64 << 10, 64*64*MiB + 128*MiB},
		{"1 GiB hashes", 16, 1 << 20, 16*1024*MiB + 128*MiB},
		{"largest memory_kib", 2, math.MaxUint32, 2*math.MaxUint32*1024 + 128*MiB},
		{"no slots", 0, 64 << 10, 128 * MiB},
		{"no memory", 4, 0, 128 * MiB},
		{"exactly fits", int((math.MaxInt64 - 128*MiB) / (64 * MiB)), 64 << 10,
			(math.MaxInt64-128*MiB)/(64*MiB)*(64*MiB) + 128*MiB},
		{"one past fitting", int((math.MaxInt64-128*MiB)/(64*MiB)) + 1, 64 << 10, math.MaxInt64},
		{"largest of both", math.MaxInt, math.MaxUint32, math.MaxInt64},
	} {
		if got := memoryLimit(c.slots, c.memKiB); got != c.want {
			t.Errorf("%s: memoryLimit(%d, %d) = %d, want %d", c.name, c.slots, c.memKiB, got, c.want)
		}
	}
}

// TestSetMemoryLimit changes the process's memory limit and GOGC, so it is
// not parallel and puts the old ones back.
func TestSetMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	oldGC := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetMemoryLimit(old); debug.SetGCPercent(oldGC) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{Hashers: HashersConfig{MaxConcurrent: 3, Argon2: Argon2Config{MemoryKiB: 32 << 10}}}

	debug.SetMemoryLimit(math.MaxInt64)
	tuneRuntime(cfg, func(k string) string {
		if k == "GOMEMLIMIT" {
			return "1GiB"
		}
		return ""
	}, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("with GOMEMLIMIT set, the limit became %d; want it left alone", got)
	}
	if got := debug.SetGCPercent(77); got != gcPercent {
		t.Errorf("with GOGC unset, GOGC became %d; want %d", got, gcPercent)
	}
	tuneRuntime(cfg, func(k string) string {
		if k == "GOGC" {
			return "77"
		}
		return ""
	}, log)
	if got := debug.SetGCPercent(100); got != 77 {
		t.Errorf("with GOGC set, GOGC became %d; want it left alone (77)", got)
	}

	tuneRuntime(cfg, func(string) string { return "" }, log)
	if got, want := debug.SetMemoryLimit(-1), int64(3*32<<20+128<<20); got != want {
		t.Errorf("limit = %d, want %d", got, want)
	}
}
