package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// measurement is one scenario at one concurrency.
type measurement struct {
	Scenario string
	Conc     int
	Requests int
	Elapsed  time.Duration
	// Lat is every request's latency, sorted.
	Lat []time.Duration
	counts
	usage
	// Floor is the rate this scenario is compared with (0: none) and
	// FloorName what it is ("read", "hash").
	Floor     float64
	FloorName string
}

// rate is completed requests per second.
func (m *measurement) rate() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Requests) / m.Elapsed.Seconds()
}

// pct is the p-th quantile (0…1) of sorted latencies, nearest rank.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// worker is one closed-loop client: it sends its next request as soon as
// the last one is answered.
type worker struct {
	buf bytes.Buffer
	// scratch is for bodies built per request (create).
	scratch []byte
	n       int // requests sent by this worker so far
	id      int
	lat     []time.Duration
	counts
}

// requestFunc gives a worker its next request: the body and the header
// (nil: public).
type requestFunc func(w *worker) (body []byte, h http.Header)

// load runs conc workers against the server: first unmeasured for -warmup,
// then measured for -duration (and at most -max-requests). Requests in flight
// when the time is up are waited for and counted, and the elapsed time runs
// until the last one is answered, so slow requests are not left out.
func (r *runner) load(ctx context.Context, scenario string, conc int, next requestFunc, expect []byte) (*measurement, error) {
	workers := make([]*worker, conc)
	for i := range workers {
		workers[i] = &worker{id: i}
	}
	if r.o.warmup > 0 {
		r.loop(ctx, workers, time.Now().Add(r.o.warmup), nil, next, expect, false)
		for _, w := range workers {
			w.lat, w.counts = w.lat[:0], counts{}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	runtime.GC()
	r.quiet(ctx)
	stopPerf := r.perf(fmt.Sprintf("%s-c%d", scenario, conc))
	var budget atomic.Int64
	budget.Store(int64(r.o.maxRequests))
	wt := startWatch(r.pid, r.owned, r.dbName())
	start := time.Now()
	r.loop(ctx, workers, start.Add(r.o.duration), &budget, next, expect, true)
	elapsed := time.Since(start)
	u := wt.stop()
	stopPerf()
	m := &measurement{Scenario: scenario, Conc: conc, Elapsed: elapsed, usage: u}
	for _, w := range workers {
		m.Lat = append(m.Lat, w.lat...)
		m.counts.add(w.counts)
	}
	m.Requests = len(m.Lat)
	slices.Sort(m.Lat)
	return m, ctx.Err()
}

// loop runs every worker until deadline, the budget, or ctx ends.
func (r *runner) loop(ctx context.Context, workers []*worker, deadline time.Time, budget *atomic.Int64, next requestFunc, expect []byte, record bool) {
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if record && w.lat == nil {
				w.lat = make([]time.Duration, 0, 1024)
			}
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if budget != nil && budget.Add(-1) < 0 {
					return
				}
				body, h := next(w)
				w.n++
				t0 := time.Now()
				status, err := r.c.post(body, h, &w.buf)
				d := time.Since(t0)
				if record {
					w.lat = append(w.lat, d)
					w.counts.add(classify(status, err, w.buf.Bytes(), expect))
				}
			}
		}()
	}
	wg.Wait()
}

// perf starts `perf record` for one measurement when -perf is set and
// returns what stops it.
func (r *runner) perf(label string) (stop func()) {
	if r.o.perfDir == "" {
		return func() {}
	}
	out := filepath.Join(r.o.perfDir, r.kind+"-"+label+".data")
	cmd := exec.Command("perf", "record", "-F", "499", "-g", "-a", "-o", out)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		logf(r.log, "perf record: %v (no profile for %s)", err, label)
		return func() {}
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if _, err := os.Stat(out); err == nil {
			logf(r.log, "profile written to %s", out)
		}
	}
}

// dbName is the PostgreSQL database whose local backends count as db CPU:
// the one the server uses, when it is known. SQLite runs inside the server.
func (r *runner) dbName() string {
	if r.kind != "postgres" || r.floorDSN == "" {
		return ""
	}
	u, err := url.Parse(r.floorDSN)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(u.Path, "/")
}

// quiet waits, up to -wait-idle, for the machine to be quiet before a
// measurement, and says so when it had to wait or gave up.
func (r *runner) quiet(ctx context.Context) {
	if r.o.waitIdle <= 0 || r.flooding {
		return
	}
	waited, idle := waitIdle(ctx, r.o.waitIdle)
	switch {
	case !idle && ctx.Err() == nil:
		logf(r.log, "%s: the machine is still busy after %s; measuring anyway", r.kind, waited.Round(time.Second))
	case waited > time.Second:
		logf(r.log, "%s: waited %s for the machine to be quiet", r.kind, waited.Round(time.Second))
	}
}
