package password

import "runtime"

// hashNice is the nice value of the OS threads that compute hashes: the
// scheduler then gives them about a tenth of the CPU's share of a normal
// thread when both want it (weight 110 against 1024), and all of it when
// nothing else runs. A login flood otherwise takes every core: with one hash
// per CPU running, each for a tenth of a second or more, the Go scheduler
// lets another goroutine in only at its 10 ms preemption ticks, and whoami,
// which every page calls, waited 20–50 ms (p90–p99, measured under 256
// logins in flight). Ten rather than nineteen: nineteen measured no better
// for whoami, and under a sustained full load of other requests, logins
// still progress instead of starving.
const hashNice = 10

// runBehind runs fn on an OS thread of its own at hashNice and waits for it.
// The thread is locked to fn's goroutine and never unlocked, so the runtime
// ends it with the goroutine and its lowered priority goes with it; no
// other goroutine ever runs there. A panic in fn is raised again in the
// caller, as if fn had run there. The Go scheduler still needs a P for fn
// while it runs: see Hasher.SpareProcs.
func runBehind(fn func()) {
	done := make(chan any, 1)
	go func() {
		runtime.LockOSThread()
		lowerThreadPriority(hashNice)
		defer func() { done <- recover() }()
		fn()
	}()
	if p := <-done; p != nil {
		panic(p)
	}
}

// SpareProcs raises GOMAXPROCS by the number of hash slots, once: a P held
// by a running hash is a P the other goroutines lack, and with one more P
// per slot everything else keeps a P per core while hashes run, so the
// kernel, which favours normal threads over hashNice ones, decides who runs.
// It is for a server, where hashes share the process with requests that must
// stay fast, and which owns GOMAXPROCS. Measured under 256 logins in
// flight, whoami's p99 went from 42 to 12 ms at 16 in flight (52 to 32 ms at
// 64) and logins kept 0.93 of the hash floor. The price is Ps beyond the
// cores when no hash runs: whoami's p99 at 64 in flight without a flood
// rose from 17–20 to 23–24 ms, from the kernel time-slicing the extra
// threads. Raising GOMAXPROCS only while hashes run instead (it stops the
// world, twice per hash) cost logins a fifth of their rate and was dropped.
func (h *Hasher) SpareProcs() {
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + cap(h.slots))
}
