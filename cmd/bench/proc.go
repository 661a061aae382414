package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat and /proc/stat times:
// 100 on every Linux architecture Go runs on.
const clockTicks = 100

// usage is what one measurement cost: the server's peak RSS, and the CPU of
// the server, the database, the load tool and everything else.
type usage struct {
	// StartRSS and PeakRSS are the server's resident set at the start and at
	// its peak, in bytes; 0 when unknown. A high start is memory the last
	// phase left that the Go runtime has not yet given back.
	StartRSS, PeakRSS int64
	// ServerCPU, DBCPU, ToolCPU are CPU time over wall time, in cores (1.0
	// is one core busy): the server, the local PostgreSQL backends serving
	// the bench database, the load tool itself. ServerCPU and DBCPU are
	// negative when unknown.
	ServerCPU, DBCPU, ToolCPU float64
	// OtherCPU is the rest of the machine's busy time, in cores: whatever
	// else ran on it during the measurement. Negative when unknown.
	OtherCPU float64
}

// watch measures one phase. With owned (the tool started the server) it
// resets the kernel's peak-RSS counter at the start, so VmHWM is this phase's
// own peak; it also samples VmRSS, which is all it has for a -server-pid it
// did not start.
type watch struct {
	pid       int
	owned     bool
	hwmReset  bool
	dbName    string // the PostgreSQL database whose backends to count, or ""
	dbTicks   int64
	start     time.Time
	selfCPU   time.Duration
	srvTicks  int64
	machBusy  int64
	machTotal int64

	startRSS int64
	mu       sync.Mutex
	maxRSS   int64
	stopped  chan struct{}
	wg       sync.WaitGroup
}

// startWatch begins measuring pid (0: no server to watch) and, when dbName
// is not empty, the local PostgreSQL backends connected to that database.
func startWatch(pid int, owned bool, dbName string) *watch {
	w := &watch{pid: pid, owned: owned, dbName: dbName, dbTicks: -1, stopped: make(chan struct{})}
	if dbName != "" {
		w.dbTicks = backendTicks(dbName)
	}
	if pid > 0 {
		if owned {
			// "5" resets the peak RSS (VmHWM) to the current RSS.
			w.hwmReset = os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0) == nil
		}
		w.srvTicks = procTicks(pid)
		w.startRSS = procStatusKiB(pid, "VmRSS:") * 1024
		w.maxRSS = w.startRSS
		w.wg.Add(1)
		go w.sample()
	}
	w.machBusy, w.machTotal = machineTicks()
	w.selfCPU = selfCPU()
	w.start = time.Now()
	return w
}

// sample records the largest VmRSS seen, every 50ms.
func (w *watch) sample() {
	defer w.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.stopped:
			return
		case <-t.C:
			if rss := procStatusKiB(w.pid, "VmRSS:") * 1024; rss > 0 {
				w.mu.Lock()
				w.maxRSS = max(w.maxRSS, rss)
				w.mu.Unlock()
			}
		}
	}
}

// stop ends the measurement and returns what it cost.
func (w *watch) stop() usage {
	wall := time.Since(w.start)
	u := usage{ServerCPU: -1, DBCPU: -1, OtherCPU: -1}
	u.ToolCPU = float64(selfCPU()-w.selfCPU) / float64(wall)
	busy, total := machineTicks()
	if w.dbTicks >= 0 {
		if t := backendTicks(w.dbName); t >= w.dbTicks {
			u.DBCPU = float64(t-w.dbTicks) / clockTicks / wall.Seconds()
		}
	}
	if w.pid > 0 {
		close(w.stopped)
		w.wg.Wait()
		if t := procTicks(w.pid); t >= 0 && w.srvTicks >= 0 {
			u.ServerCPU = float64(t-w.srvTicks) / clockTicks / wall.Seconds()
		}
		u.StartRSS, u.PeakRSS = w.startRSS, w.maxRSS
		if w.hwmReset {
			u.PeakRSS = max(u.PeakRSS, procStatusKiB(w.pid, "VmHWM:")*1024)
		}
	}
	if total > w.machTotal {
		// /proc/stat counts every CPU: busy ticks over wall time is cores.
		other := float64(busy-w.machBusy)/clockTicks/wall.Seconds() - max(u.ServerCPU, 0) - u.ToolCPU - max(u.DBCPU, 0)
		u.OtherCPU = max(other, 0)
	}
	return u
}

// backendTicks sums utime+stime of the PostgreSQL backends connected to
// database dbName: processes named postgres whose title ("postgres: …:
// user db host(port) state") names it. Other databases on the same server
// (other people's tests, say) are left out, and so are the shared background
// processes (WAL writer, checkpointer), which land in other CPU. -1 when no
// such backend runs. A backend that exits between two readings takes its
// time with it; the server's pooled connections make that rare.
func backendTicks(dbName string) int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	var sum int64 = -1
	needle := []byte(" " + dbName + " ")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || string(bytes.TrimSpace(comm)) != "postgres" {
			continue
		}
		title, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(title, needle) {
			continue
		}
		if t := procTicks(pid); t >= 0 {
			sum = max(sum, 0) + t
		}
	}
	return sum
}

// selfCPU is the user and system CPU this process has used (getrusage).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatusKiB reads a "Key:   123 kB" line of /proc/<pid>/status; 0 when
// it cannot.
func procStatusKiB(pid int, key string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(key)); ok {
			f := strings.Fields(string(rest))
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// procTicks is utime+stime of pid in clock ticks; -1 when unreadable.
func procTicks(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return ut + st
}

// machineTicks is the busy and total ticks of all CPUs from /proc/stat.
func machineTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, s := range f[1:] {
		n, _ := strconv.ParseInt(s, 10, 64)
		// Fields 8 and 9 (guest, guest_nice) are already in user and nice.
		if i >= 8 {
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// waitIdle waits until the machine's CPUs, all of them together, are busy
// less than a quarter of a core over half a second, or until limit has
// passed. The server and database are idle between measurements, so what
// it sees is other work: on a shared machine, figures taken while something
// else runs are worth less, and the other CPU column tells by how much.
func waitIdle(ctx context.Context, limit time.Duration) (waited time.Duration, idle bool) {
	start := time.Now()
	for {
		b0, t0 := machineTicks()
		w0 := time.Now()
		select {
		case <-ctx.Done():
			return time.Since(start), false
		case <-time.After(500 * time.Millisecond):
		}
		b1, t1 := machineTicks()
		if t1 <= t0 {
			return time.Since(start), false
		}
		if float64(b1-b0)/clockTicks/time.Since(w0).Seconds() < 0.25 {
			return time.Since(start), true
		}
		if time.Since(start) >= limit {
			return time.Since(start), false
		}
	}
}
