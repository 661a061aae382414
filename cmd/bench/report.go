package main

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// report is a whole run: one dbReport per database.
type report struct {
	opts    *options
	started time.Time
	// source is what the started server was built from, when the tool
	// built it.
	source string
	dbs    []*dbReport
}

// errors is every failed request and floor operation of the run.
func (r *report) errors() int {
	n := 0
	for _, d := range r.dbs {
		for _, m := range d.rows {
			n += m.total()
		}
		for _, ir := range d.imports {
			n += ir.total()
		}
		for _, f := range d.floors {
			n += f.Errs
		}
	}
	return n
}

var dbTitle = map[string]string{"sqlite": "SQLite", "postgres": "PostgreSQL"}

// markdown renders the report: the run's settings, then per database a
// table of the scenarios, the floors and a table of the imports.
func (r *report) markdown() string {
	o := r.opts
	var b strings.Builder
	fmt.Fprintf(&b, "# identityd load figures\n\n")
	fmt.Fprintf(&b, "- Command: `%s`\n", o.commandLine)
	fmt.Fprintf(&b, "- Run: %s, %s %s/%s, %d CPUs as Go sees them\n", r.started.Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if r.source != "" {
		fmt.Fprintf(&b, "- Server built from: %s\n", r.source)
	}
	fmt.Fprintf(&b, "- Password hashes: argon2id m=%d KiB, t=%d, p=%d; at most %d at once (server and hash floor)\n",
		o.argon2.Memory, o.argon2.Iterations, o.argon2.Parallelism, o.hashSlots)
	fmt.Fprintf(&b, "- Each row: a closed loop of c clients (each sends its next request when the last is answered) on one keep-alive transport, "+
		"%s unmeasured warm-up, then %s measured (at most %s requests); requests in flight at the end are waited for and counted. "+
		"Latency is from sending to the last byte of the answer.\n", o.warmup, o.duration, thousands(float64(o.maxRequests)))
	fmt.Fprintf(&b, "- errors: HTTP (transport failure or status ≠ 200) / GraphQL (top-level `errors`, or an answer without the success shape) / "+
		"non-empty `userErrors` lists. CPU is CPU time over wall time, in %% of one core; server CPU and peak RSS come from /proc "+
		"(RSS start/peak: at the start of the row, and its peak during it: VmHWM reset before each row when the tool started the server, else VmRSS sampled every 50 ms); "+
		"db CPU is the local PostgreSQL backends connected to the bench database (— on SQLite, which runs inside the server); "+
		"tool CPU is getrusage of the load tool itself; other CPU is the rest of the machine's busy time (from /proc/stat): anything else that ran meanwhile, "+
		"including PostgreSQL's shared background processes and its short-lived parallel query workers, which exit before they can be counted as db CPU.\n")
	for _, d := range r.dbs {
		fmt.Fprintf(&b, "\n## %s\n\n", dbTitle[d.kind])
		fmt.Fprintf(&b, "Server: %s.  \nSeed: %s.\n\n", d.serverNote, orDash(d.seedNote))
		if len(d.rows) > 0 {
			b.WriteString("| scenario | c | req/s | p50 | p90 | p99 | errors http/gql/user | vs floor | server RSS start/peak | server CPU | db CPU | tool CPU | other CPU |\n")
			b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, m := range d.rows {
				vs := "—"
				if m.Floor > 0 {
					vs = ratio(m.rate()/m.Floor) + "× " + m.FloorName
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %d/%d/%d | %s | %s | %s | %s | %s | %s |\n",
					m.Scenario, m.Conc, rate(m.rate()), ms(pct(m.Lat, .5)), ms(pct(m.Lat, .9)), ms(pct(m.Lat, .99)),
					m.HTTP, m.GraphQL, m.UserErrors, vs, rss(m.usage), cores(m.ServerCPU), cores(m.DBCPU), cores(m.ToolCPU), cores(m.OtherCPU))
			}
			b.WriteString("\n")
		}
		if len(d.floors) > 0 {
			b.WriteString("Floors, measured in the same run:\n\n")
			for _, f := range d.floors {
				switch f.Name {
				case "read":
					fmt.Fprintf(&b, "- read floor, c=%d: %s queries/s, p50 %s, p99 %s, %d errors (db CPU %s, tool CPU %s, other CPU %s) — `%s` with random existing token hashes, %s\n",
						f.Conc, rate(f.Rate), ms(pct(f.Lat, .5)), ms(pct(f.Lat, .99)), f.Errs, cores(f.DBCPU), cores(f.ToolCPU), cores(f.OtherCPU), floorQuery, d.floorNote)
				case "hash":
					fmt.Fprintf(&b, "- hash floor: %s hashes/s, p50 %s, p99 %s, %d errors (tool CPU %s, other CPU %s) — internal/password Hasher.Hash, argon2id m=%d KiB t=%d p=%d, %d at once, %d callers\n",
						rate(f.Rate), ms(pct(f.Lat, .5)), ms(pct(f.Lat, .99)), f.Errs, cores(f.ToolCPU), cores(f.OtherCPU), o.argon2.Memory, o.argon2.Iterations, o.argon2.Parallelism, o.hashSlots, f.Conc)
				}
			}
			b.WriteString("\n")
		} else if d.floorNote != "" {
			fmt.Fprintf(&b, "Floors: %s.\n\n", d.floorNote)
		}
		if len(d.imports) > 0 {
			b.WriteString("| import | c | total | identities/s | batch p50 | batch p99 | errors http/gql/user | server RSS start/peak | server CPU | db CPU | tool CPU | other CPU |\n")
			b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, ir := range d.imports {
				fmt.Fprintf(&b, "| import %s | %d | %.2f s | %s | %s | %s | %d/%d/%d | %s | %s | %s | %s | %s |\n",
					thousands(float64(ir.Size)), ir.Conc, ir.Elapsed.Seconds(), rate(ir.rate()), ms(pct(ir.Lat, .5)), ms(pct(ir.Lat, .99)),
					ir.HTTP, ir.GraphQL, ir.UserErrors, rss(ir.usage), cores(ir.ServerCPU), cores(ir.DBCPU), cores(ir.ToolCPU), cores(ir.OtherCPU))
			}
			b.WriteString("\nImports: importIdentities in batches of 1,000 with pre-hashed (argon2id) passwords, c batches in flight, bodies built before the clock starts.\n")
		}
		if d.finalRSS > 0 {
			fmt.Fprintf(&b, "\nServer RSS at the end of the run: %s.\n", mib(d.finalRSS))
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// thousands renders a whole number with commas between groups of three.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// rate renders a per-second rate: one decimal below 100.
func rate(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return thousands(v)
}

// ms renders a latency in milliseconds (seconds from 1 s up).
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return "—"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	case v < 1000:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + " s"
	}
}

// mib renders bytes as MiB; a dash when unknown.
func mib(n int64) string {
	if n <= 0 {
		return "—"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 0, 64) + " MiB"
}

// rss renders the server's RSS at the start of a row and its peak.
func rss(u usage) string {
	if u.PeakRSS <= 0 {
		return "—"
	}
	return strconv.FormatFloat(float64(u.StartRSS)/(1<<20), 'f', 0, 64) + "/" + mib(u.PeakRSS)
}

// cores renders CPU use in % of one core; a dash when unknown.
func cores(v float64) string {
	if v < 0 {
		return "—"
	}
	return strconv.FormatFloat(v*100, 'f', 0, 64) + "%"
}

// ratio renders a ratio to a floor: two decimals, or two significant
// digits below 0.1.
func ratio(v float64) string {
	if v < 0.1 {
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
