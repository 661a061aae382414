//go:build !linux

package password

// lowerThreadPriority does nothing where per-thread priorities are not
// set this way: hashes run at normal priority there.
func lowerThreadPriority(int) {}
