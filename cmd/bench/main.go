// Command bench is a lean load tool for identityd: it seeds identities,
// drives the GraphQL API with a closed-loop client at fixed concurrencies,
// measures the floor the service could at best reach on the same machine and
// database (a raw indexed read through the same driver, and password hashes
// at the configured argon2id cost), and writes the figures as markdown.
//
//	go run ./cmd/bench -start -db postgres            # build, start, seed, measure, stop
//	go run ./cmd/bench -start -db sqlite,postgres -out BENCH.md
//	go run ./cmd/bench -target http://127.0.0.1:4455 -admin-key idadm_… -db postgres -floor-dsn postgres://…
//	go run ./cmd/bench -start -smoke -db sqlite      # tiny run for CI
//
// With -start the tool builds the server from the module root, runs
// `migrate up` and `serve` on a free loopback port against a fresh database
// (a temporary SQLite file, or a PostgreSQL database identityd_bench_<rand>
// made through -pg and dropped afterwards), and stops it at the end. The
// client shares the machine with the server, so it is kept lean: one shared
// keep-alive transport, request bodies built before the clock starts, and
// answers scanned rather than decoded. Its own CPU use is reported with
// every figure so that a reader can tell when it got in the way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/identityd/identityd/internal/password"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errRequestErrors):
		// The report was written; the exit code tells CI that requests failed.
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// errRequestErrors is returned, after the report is written, when any
// request of any scenario failed.
var errRequestErrors = errors.New("some requests failed (see the errors column)")

// allScenarios is every scenario, in the order they run and are reported:
// reads first, so that they see exactly the seeded set, then the writes.
// whoamiaal2 is whoami with sessions lifted to AAL2 on identities that have
// a second factor (lookup secrets), next to whoami for comparison.
var allScenarios = []string{"whoami", "whoamiaal2", "login", "flood", "get", "list", "listdeep", "requestverification", "requestrecovery", "create", "import"}

// options is the parsed command line.
type options struct {
	target      string
	start       bool
	dbs         []string
	pgAdmin     string
	adminKey    string
	identities  int
	conc        []int
	loginConc   []int
	floodConc   int
	importConc  []int
	duration    time.Duration
	warmup      time.Duration
	waitIdle    time.Duration
	scenarios   []string
	importSizes []int
	sessions    int
	maxRequests int
	smoke       bool
	out         string
	serverPID   int
	floorDSN    string
	argon2      password.Params
	hashSlots   int
	bin         string
	perfDir     string
	analyze     bool
	// commandLine is the invocation, quoted for the report.
	commandLine string
}

// has reports whether scenario s was asked for.
func (o *options) has(s string) bool { return slices.Contains(o.scenarios, s) }

// parseOptions reads the flags. -smoke only changes the defaults of flags
// that were not given.
func parseOptions(args []string, stderr io.Writer, getenv func(string) string) (*options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var dbs, conc, loginConc, importConc, scenarios, importSizes string
	fs.StringVar(&o.target, "target", "", "base URL of a running server (http://host:port); or use -start")
	fs.BoolVar(&o.start, "start", false, "build the server from the module root, start it on a fresh database and stop it at the end")
	fs.StringVar(&dbs, "db", "sqlite", "database(s) for -start, comma-separated: sqlite, postgres; with -target, which one the target runs on")
	fs.StringVar(&o.pgAdmin, "pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL admin DSN, where -start creates and drops its database")
	fs.StringVar(&o.adminKey, "admin-key", "", "admin API key (generated and passed as ADMIN_API_KEYS with -start)")
	fs.IntVar(&o.identities, "identities", 10000, "identities to seed with importIdentities")
	fs.StringVar(&conc, "c", "16,64", "concurrencies (in-flight requests), comma-separated")
	fs.StringVar(&loginConc, "login-c", "256", "extra concurrencies for the login scenario only (empty: none)")
	fs.IntVar(&o.floodConc, "flood-c", 256, "logins in flight during the flood scenario (whoami measured at each -c meanwhile)")
	fs.StringVar(&importConc, "import-c", "1,2", "concurrencies for the import scenario (batches in flight)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per scenario and concurrency")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured run before each measurement")
	fs.DurationVar(&o.waitIdle, "wait-idle", 30*time.Second, "before each measurement, wait up to this long for the machine to be quiet (other work under a quarter of a core); 0: do not wait")
	fs.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "scenarios to run, comma-separated")
	fs.StringVar(&importSizes, "import-sizes", "10000,100000", "identities per import run, comma-separated")
	fs.IntVar(&o.sessions, "sessions", 256, "sessions opened by login for whoami")
	fs.IntVar(&o.maxRequests, "max-requests", 1_000_000, "at most this many requests per measurement")
	fs.BoolVar(&o.smoke, "smoke", false, "tiny run for CI: 200 identities, 1s per scenario, c=4, import 500, cheap argon2")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	fs.IntVar(&o.serverPID, "server-pid", 0, "with -target: the server's pid, to sample its RSS and CPU")
	fs.StringVar(&o.floorDSN, "floor-dsn", "", "with -target: the server's database (postgres://… or sqlite://FILE), for the read floor")
	mem := fs.Uint("argon2-memory-kib", 0, "argon2id memory for the pre-hash, the hash floor and the started server (default: env HASHERS_ARGON2_MEMORY_KIB or the server's default)")
	iter := fs.Uint("argon2-iterations", 0, "argon2id iterations (default: env HASHERS_ARGON2_ITERATIONS or the server's default)")
	par := fs.Uint("argon2-parallelism", 0, "argon2id lanes (default: env HASHERS_ARGON2_PARALLELISM or the server's default)")
	fs.IntVar(&o.hashSlots, "hash-slots", 0, "hashes at once for the hash floor, as the server's hashers.max_concurrent (default: env HASHERS_MAX_CONCURRENT or the number of CPUs)")
	fs.StringVar(&o.bin, "bin", "", "with -start: a server binary already built, instead of building one")
	fs.BoolVar(&o.analyze, "analyze", true, "on PostgreSQL, run ANALYZE after seeding (what autovacuum does on a server that has it on); needs the database: -start or -floor-dsn")
	fs.StringVar(&o.perfDir, "perf", "", "record each measurement system-wide (perf record -g -a) into folder `DIR`")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bench (-start | -target URL) [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.smoke {
		if !set["identities"] {
			o.identities = 200
		}
		if !set["duration"] {
			o.duration = time.Second
		}
		if !set["warmup"] {
			o.warmup = 200 * time.Millisecond
		}
		if !set["wait-idle"] {
			o.waitIdle = 0
		}
		if !set["c"] {
			conc = "4"
		}
		if !set["login-c"] {
			loginConc = ""
		}
		if !set["flood-c"] {
			o.floodConc = 8
		}
		if !set["import-sizes"] {
			importSizes = "500"
		}
		if !set["sessions"] {
			o.sessions = 32
		}
	}

	var err error
	if o.conc, err = intList("c", conc, 1); err != nil {
		return nil, err
	}
	if o.loginConc, err = intList("login-c", loginConc, 0); err != nil {
		return nil, err
	}
	if o.importConc, err = intList("import-c", importConc, 1); err != nil {
		return nil, err
	}
	if o.importSizes, err = intList("import-sizes", importSizes, 1); err != nil {
		return nil, err
	}
	for _, s := range splitList(scenarios) {
		if !slices.Contains(allScenarios, s) {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (known: %s)", s, strings.Join(allScenarios, ","))
		}
	}
	// Run in the fixed order whatever order they were named in.
	for _, s := range allScenarios {
		if slices.Contains(splitList(scenarios), s) {
			o.scenarios = append(o.scenarios, s)
		}
	}
	o.dbs = splitList(dbs)
	for _, d := range o.dbs {
		if d != "sqlite" && d != "postgres" {
			return nil, fmt.Errorf("-db: %q is not sqlite or postgres", d)
		}
	}
	switch {
	case o.start == (o.target != ""):
		return nil, errors.New("say either -start or -target URL")
	case len(o.dbs) == 0:
		return nil, errors.New("-db: name a database")
	case o.target != "" && len(o.dbs) != 1:
		return nil, errors.New("-db: with -target, name the one database the target runs on")
	case o.target != "" && o.adminKey == "":
		return nil, errors.New("-admin-key is needed with -target")
	case o.identities < 1:
		return nil, errors.New("-identities: at least 1")
	case o.duration <= 0:
		return nil, errors.New("-duration: must be positive")
	case o.sessions < 1:
		return nil, errors.New("-sessions: at least 1")
	case o.maxRequests < 1:
		return nil, errors.New("-max-requests: at least 1")
	}
	o.target = strings.TrimRight(o.target, "/")

	// The argon2 parameters: flag, else the server's own env variable, else
	// the server's default (cheap ones for -smoke). The pre-hash must use
	// exactly the server's parameters, or every login would also rehash.
	p := password.DefaultParams()
	if o.smoke {
		p.Memory, p.Iterations = 8192, 1
	}
	pick := func(flagV uint, env string, def uint64, bits int) (uint64, error) {
		if flagV != 0 {
			return uint64(flagV), nil
		}
		if v := getenv(env); v != "" {
			n, err := strconv.ParseUint(v, 10, bits)
			if err != nil {
				return 0, fmt.Errorf("env %s: %q is not a number", env, v)
			}
			return n, nil
		}
		return def, nil
	}
	m, err := pick(*mem, "HASHERS_ARGON2_MEMORY_KIB", uint64(p.Memory), 32)
	if err != nil {
		return nil, err
	}
	t, err := pick(*iter, "HASHERS_ARGON2_ITERATIONS", uint64(p.Iterations), 32)
	if err != nil {
		return nil, err
	}
	l, err := pick(*par, "HASHERS_ARGON2_PARALLELISM", uint64(p.Parallelism), 8)
	if err != nil {
		return nil, err
	}
	p.Memory, p.Iterations, p.Parallelism = uint32(m), uint32(t), uint8(l)
	if err := p.Validate(); err != nil {
		return nil, err
	}
	o.argon2 = p
	if o.hashSlots == 0 {
		o.hashSlots = runtime.NumCPU()
		if v := getenv("HASHERS_MAX_CONCURRENT"); v != "" {
			if o.hashSlots, err = strconv.Atoi(v); err != nil || o.hashSlots < 1 {
				return nil, fmt.Errorf("env HASHERS_MAX_CONCURRENT: %q is not a positive number", v)
			}
		}
	}
	o.commandLine = quoteCommand(args)
	return o, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// intList parses a comma-separated list of integers of at least min; at
// least one is needed when min > 0.
func intList(name, s string, min int) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < max(min, 1) {
			return nil, fmt.Errorf("-%s: %q is not a positive integer", name, f)
		}
		out = append(out, n)
	}
	if min > 0 && len(out) == 0 {
		return nil, fmt.Errorf("-%s: give at least one value", name)
	}
	return out, nil
}

// quoteCommand renders the invocation as a shell line, the admin key
// redacted.
func quoteCommand(args []string) string {
	parts := []string{"go run ./cmd/bench"}
	redact := false
	for _, a := range args {
		switch {
		case redact:
			a, redact = "…", false
		case a == "-admin-key" || a == "--admin-key":
			redact = true
		case strings.HasPrefix(a, "-admin-key=") || strings.HasPrefix(a, "--admin-key="):
			a = a[:strings.Index(a, "=")+1] + "…"
		}
		if strings.ContainsAny(a, " \t'\"$&|;<>()*?") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// run is the whole program, callable in process: it parses args, runs every
// database in turn and prints the report (and writes it to -out).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr, os.Getenv)
	if err != nil {
		return err
	}
	rep, err := execute(ctx, o, stderr)
	if rep != nil {
		md := rep.markdown()
		fmt.Fprint(stdout, md)
		if o.out != "" {
			if werr := os.WriteFile(o.out, []byte(md), 0o644); werr != nil && err == nil {
				err = fmt.Errorf("-out: %w", werr)
			}
		}
	}
	if err != nil {
		return err
	}
	if rep.errors() > 0 {
		return errRequestErrors
	}
	return nil
}

// execute runs every database named by -db and gathers their reports. A
// database that fails stops the run; what was measured before is kept.
func execute(ctx context.Context, o *options, log io.Writer) (*report, error) {
	rep := &report{opts: o, started: time.Now()}
	if o.perfDir != "" {
		if err := os.MkdirAll(o.perfDir, 0o755); err != nil {
			return nil, fmt.Errorf("-perf: %w", err)
		}
	}
	var bin string
	if o.start {
		bin = o.bin
		if bin == "" {
			dir, err := os.MkdirTemp("", "identityd-bench-bin-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
			if o.perfDir != "" {
				// perf report needs the binary for symbols after the run.
				dir = o.perfDir
			}
			logf(log, "building the server")
			if bin, rep.source, err = buildServerRev(ctx, dir); err != nil {
				return nil, err
			}
		}
	}
	for _, kind := range o.dbs {
		dr, err := runDatabase(ctx, o, kind, bin, log)
		if dr != nil {
			rep.dbs = append(rep.dbs, dr)
		}
		if err != nil {
			return rep, fmt.Errorf("%s: %w", kind, err)
		}
	}
	return rep, nil
}

// logf prints a progress line, with the time, to the log writer.
func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
