package worker

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunnerRunsRestartsAndStops: loops run, Every ticks, a loop that panics
// runs again, and Stop waits for every loop to return.
func TestRunnerRunsRestartsAndStops(t *testing.T) {
	r := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.restartDelay = time.Millisecond
	var ticks, runs atomic.Int32
	var finished atomic.Bool
	r.Every("tick", time.Millisecond, func(context.Context) { ticks.Add(1) })
	r.Add("panics", func(context.Context) {
		if runs.Add(1) < 3 {
			panic("boom")
		}
	})
	r.Add("slow stop", func(ctx context.Context) {
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // finishing its work
		finished.Store(true)
	})
	r.Start(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for (ticks.Load() < 3 || runs.Load() < 3) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r.Stop()
	if ticks.Load() < 3 || runs.Load() != 3 {
		t.Errorf("ticks = %d, runs = %d; want ≥ 3 ticks and 3 runs (two panics, then a clean return)", ticks.Load(), runs.Load())
	}
	if !finished.Load() {
		t.Error("Stop returned before a loop finished")
	}
	r.Stop() // again: no-op
}
