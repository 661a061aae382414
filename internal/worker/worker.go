// Package worker runs the server's background loops (courier delivery,
// pruning, …) under one owner: started from server.go with the server, each
// in its own goroutine, and stopped on shutdown, waiting for each to finish
// what it is doing (a courier batch records what it sent) before the
// database closes.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Runner owns a set of loops. Add them, then Start; Stop ends them all.
type Runner struct {
	log    *slog.Logger
	loops  []loop
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// restartDelay is how long a loop that panicked waits before it runs
	// again.
	restartDelay time.Duration
}

type loop struct {
	name string
	run  func(ctx context.Context)
}

// New returns a runner that logs to log.
func New(log *slog.Logger) *Runner {
	return &Runner{log: log, restartDelay: 5 * time.Second}
}

// Add registers a loop that runs until its context ends. Call before Start.
func (r *Runner) Add(name string, run func(ctx context.Context)) {
	r.loops = append(r.loops, loop{name: name, run: run})
}

// Every registers fn to run every interval (not at start). Call before
// Start.
func (r *Runner) Every(name string, interval time.Duration, fn func(ctx context.Context)) {
	r.Add(name, func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn(ctx)
			}
		}
	})
}

// Start runs every loop in its own goroutine until Stop (or ctx ends). A loop
// that panics is logged and started again after a pause: one faulty loop
// must not take the server down, nor stop quietly.
func (r *Runner) Start(ctx context.Context) {
	ctx, r.cancel = context.WithCancel(ctx)
	for _, l := range r.loops {
		r.wg.Go(func() {
			for ctx.Err() == nil {
				if !r.runOnce(ctx, l) {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(r.restartDelay):
				}
			}
		})
	}
}

// runOnce runs l; it tells whether l panicked (and should run again).
func (r *Runner) runOnce(ctx context.Context, l loop) (panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error(fmt.Sprintf("background loop %s panicked; restarting it in %s", l.name, r.restartDelay),
				"loop", l.name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			panicked = true
		}
	}()
	l.run(ctx)
	return false
}

// Stop ends every loop and waits until each has returned. It may be called
// more than once, and before Start.
func (r *Runner) Stop() {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
}
