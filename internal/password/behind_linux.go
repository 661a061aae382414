package password

import "syscall"

// lowerThreadPriority raises the calling thread's nice value to nice, never
// lowering it: on Linux, PRIO_PROCESS with a thread id names that thread
// alone, and the raw getpriority answers 20 - nice. Raising a nice value
// needs no privilege; should it fail all the same, the hash runs at the
// priority it has, as it would anywhere else.
func lowerThreadPriority(nice int) {
	tid := syscall.Gettid()
	if prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid); err == nil && 20-prio >= nice {
		return
	}
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
}
