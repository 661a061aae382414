package main

import (
	"log/slog"
	"runtime/debug"
)

// setMemoryLimit gives the Go runtime a soft memory limit sized for the
// password hashes in flight (each holds argon2.memory_kib while it runs)
// plus headroom for everything else, unless the operator set GOMEMLIMIT.
// Without it a login flood lets the heap grow to twice the hashes' memory
// between collections, and RSS climbs far past what the hashes need.
func setMemoryLimit(cfg Config, getenv func(string) string, log *slog.Logger) {
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	hashes := int64(cfg.Hashers.MaxConcurrent) * int64(cfg.Hashers.Argon2.MemoryKiB) * 1024
	limit := hashes + 128<<20
	debug.SetMemoryLimit(limit)
	log.Debug("memory limit set", "bytes", limit)
}
