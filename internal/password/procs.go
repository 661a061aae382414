package password

import "runtime"

// SpareProcs raises GOMAXPROCS by the number of hash slots (at most
// doubling it), once, however often it is called. A running hash holds a P
// for a tenth of a second or more (argon2 computes each segment in a
// goroutine of its own), and with one hash per P running the Go scheduler
// lets any other goroutine in only at its 10 ms preemption ticks: under a
// login flood whoami, which every page calls, waited 20–50 ms (p90–p99,
// 256 logins in flight, 2 cores). With a spare P per slot the other
// goroutines keep their Ps and the kernel shares the cores between all the
// threads; measured, whoami's p99 under the same flood fell to 12 ms at 16 in
// flight (32 ms at 64) while logins kept 0.93 of the hash floor. The price:
// with no hash running, more threads than cores, which cost whoami's p99 at
// 64 in flight without a flood about 3 ms (23–24 against 17–20 ms). It is for
// a server, which owns GOMAXPROCS: calling it also stops the runtime from
// following a change of the container's CPU limit.
func (h *Hasher) SpareProcs() {
	h.spareOnce.Do(func() {
		procs := runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(procs + min(cap(h.slots), procs))
	})
}
