package main

import (
	"log/slog"
	"math"
	"runtime/debug"
)

// memoryHeadroom is what the memory limit leaves beyond the hashes in flight:
// the rest of the heap (a few MiB idle, tens of MiB during imports), the
// garbage between collections, and less than 64 MiB of finished hashes that
// the Hasher has not yet had collected (see internal/password, reclaimEvery).
const memoryHeadroom = 128 << 20

// gcPercent is the GOGC the server runs with unless the operator set GOGC.
// The live heap is small (a few MiB between requests), so at Go's default of
// 100 a collection runs after every few MiB allocated: a whoami allocates
// about 20 KiB, and collecting was a third of its cost (measured: 47 µs a
// request at 100, 31 µs at 400, through the whole handler on PostgreSQL).
// 400 lets the heap grow to five times the live data between collections,
// tens of MiB at most outside a login flood; in a flood the memory limit
// below and the Hasher's own collections bound it, as before.
const gcPercent = 400

// tuneRuntime sets the Go runtime up for serving, leaving alone whatever the
// operator set through the runtime's own variables: GOGC to gcPercent, and a
// soft memory limit sized for the hashes in flight plus headroom for
// everything else (GOMEMLIMIT).
//
// The Hasher already keeps the heap near that size by having its finished
// hashes collected (argon2 allocates its whole memory cost on every call), so
// the limit is a backstop: for a heap that outgrows the headroom, or hashes
// compared at an imported hash's larger cost. It must not be what bounds a
// login flood: near the limit the runtime returns freed hash memory to the OS
// and the next hash faults it back in, which cost a third of login's CPU.
func tuneRuntime(cfg Config, getenv func(string) string, log *slog.Logger) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := memoryLimit(cfg.Hashers.MaxConcurrent, cfg.Hashers.Argon2.MemoryKiB)
	debug.SetMemoryLimit(limit)
	log.Debug("memory limit set", "bytes", limit)
}

// memoryLimit is slots hashes of memKiB each plus memoryHeadroom, in bytes.
// A product too large for an int64 means no limit (math.MaxInt64, the
// runtime's default) rather than a wrapped-around one.
func memoryLimit(slots int, memKiB uint32) int64 {
	perHash := int64(memKiB) * 1024
	if slots < 1 || perHash == 0 {
		return memoryHeadroom
	}
	if int64(slots) > (math.MaxInt64-memoryHeadroom)/perHash {
		return math.MaxInt64
	}
	return int64(slots)*perHash + memoryHeadroom
}
