package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/identityd/identityd/internal/password"
)

// benchPassword is every seeded identity's password.
const benchPassword = "bench-Password-7319!"

// batchSize is identities per importIdentities call: the API's maximum.
const batchSize = 1000

// The queries. Field order matters to classify: a success answer contains
// the expect string of its scenario.
const (
	qWhoami              = `{ whoami { id identity { id traits } } }`
	qLogin               = `mutation($in: LoginInput!) { login(input: $in) { sessionToken session { id } userErrors { code message } } }`
	qCreate              = `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { id } userErrors { code message path } } }`
	qGet                 = `query($id: UUID!) { identity(id: $id) { id traits verifiableAddresses { id value via verified status } } }`
	qList                = `query($after: String) { identities(first: 250, after: $after) { edges { cursor node { id schemaId state traits createdAt updatedAt } } pageInfo { hasNextPage endCursor } } }`
	qCursors             = `query($after: String) { identities(first: 1000, after: $after) { edges { cursor } pageInfo { hasNextPage endCursor } } }`
	qImport              = `mutation($in: [CreateIdentityInput!]!) { importIdentities(input: $in) { results { index identity { id } userErrors { code message path } } } }`
	qRequestVerification = `mutation($in: RequestCodeInput!) { requestVerificationCode(input: $in) { userErrors { code message } } }`
	qRequestRecovery     = `mutation($in: RequestCodeInput!) { requestRecoveryCode(input: $in) { userErrors { code message } } }`
	qImportLn            = `mutation($in: [CreateIdentityInput!]!) { importIdentities(input: $in) { results { index userErrors { code message path } } } }`
	qLookupSecrets       = `mutation { generateLookupSecrets { codes userErrors { code message } } }`
	qWhoamiAAL           = `{ whoami { aal identity { availableAal } } }`
)

var (
	expectWhoami   = []byte(`"whoami":{"id":`)
	expectLogin    = []byte(`"sessionToken":"`)
	expectIdentity = []byte(`"identity":{"id":`)
	expectEdges    = []byte(`"edges":[{`)
	expectResults  = []byte(`"results":[`)
	expectNoErrors = []byte(`"userErrors":[]`)
)

// runner runs every step against one server and database.
type runner struct {
	o     *options
	kind  string
	c     *client
	log   io.Writer
	pid   int
	owned bool
	runID string
	// floorDSN is the server's database, when known.
	floorDSN string
	// hash is the pre-computed argon2id hash every seeded identity imports.
	hash string
	// ids are the seeded identities, by seed index.
	ids []string
	// sessions are Authorization headers of open sessions; tokenHashes
	// their SHA-256, as stored.
	sessions    []http.Header
	tokenHashes [][]byte
	// sessionSeeds are the seed indexes of the identities of sessions.
	sessionSeeds []int
	// aal2Sessions are Authorization headers of sessions at AAL2, of
	// identities with a second factor and none of sessions' identities.
	aal2Sessions []http.Header
	// flooding is set while the flood scenario's logins run (see quiet).
	flooding bool
}

// dbReport is everything measured on one database.
type dbReport struct {
	kind       string
	serverNote string
	seedNote   string
	floors     []*floor
	floorNote  string
	rows       []*measurement
	imports    []*importRun
	finalRSS   int64
	notes      []string
}

// runDatabase starts (or targets) a server on kind, seeds it, measures the
// floors and every scenario, and stops it.
func runDatabase(ctx context.Context, o *options, kind, bin string, log io.Writer) (dr *dbReport, err error) {
	dr = &dbReport{kind: kind}
	r := &runner{o: o, kind: kind, log: log, runID: randomHex(4)}
	base := o.target
	adminKey := o.adminKey
	if o.start {
		if adminKey == "" {
			adminKey = "idadm_bench_" + randomHex(16)
		}
		dir, err := os.MkdirTemp("", "identityd-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		d, err := newDatabase(ctx, kind, dir, o.pgAdmin)
		if err != nil {
			return nil, err
		}
		defer func() {
			if derr := d.drop(); derr != nil && err == nil {
				err = derr
			}
		}()
		env := serverEnv(o, adminKey, d.dsn)
		logf(log, "%s: migrate up", kind)
		if err := migrateUp(ctx, bin, env); err != nil {
			return nil, err
		}
		srv, err := startServer(ctx, bin, env)
		if err != nil {
			return nil, err
		}
		defer srv.stop()
		base, r.pid, r.owned, r.floorDSN = srv.base, srv.pid(), true, d.dsn
		dr.serverNote = fmt.Sprintf("started by the tool: `identityd serve` on %s (pid %d), database %s", base, r.pid, redact(d.dsn))
		logf(log, "%s: server pid %d listening on %s", kind, r.pid, base)
	} else {
		r.pid, r.floorDSN = o.serverPID, o.floorDSN
		dr.serverNote = "running at " + base
	}
	conns := slices.Max(append(slices.Concat(o.conc, o.loginConc, o.importConc), 16, o.floodConc+slices.Max(o.conc))) + 8
	if r.c, err = newClient(base, adminKey, conns); err != nil {
		return nil, err
	}
	defer r.c.close()

	t0 := time.Now()
	if err := r.seed(ctx); err != nil {
		return dr, fmt.Errorf("seed: %w", err)
	}
	dr.seedNote = fmt.Sprintf("%d identities seeded in %.1f s by importIdentities (batches of %d, 2 in flight), "+
		"every one with the same argon2id hash (m=%d KiB, t=%d, p=%d) computed once by internal/password, "+
		"so that seeding hashes nothing and logins need no rehash",
		len(r.ids), time.Since(t0).Seconds(), batchSize, o.argon2.Memory, o.argon2.Iterations, o.argon2.Parallelism)
	if o.has("whoami") || len(r.readScenarios()) > 0 {
		t0 = time.Now()
		if err := r.openSessions(ctx); err != nil {
			return dr, fmt.Errorf("open sessions: %w", err)
		}
		dr.seedNote += fmt.Sprintf("; %d sessions opened by login in %.1f s", len(r.sessions), time.Since(t0).Seconds())
	}
	if o.has("whoamiaal2") {
		t0 = time.Now()
		if err := r.openAAL2Sessions(ctx); err != nil {
			return dr, fmt.Errorf("open AAL2 sessions: %w", err)
		}
		dr.seedNote += fmt.Sprintf("; %d more sessions, of other identities, opened by login and lifted to AAL2 by generateLookupSecrets (the identity's second factor from then on) in %.1f s",
			len(r.aal2Sessions), time.Since(t0).Seconds())
	}

	if kind == "postgres" && r.floorDSN != "" {
		note, err := r.analyzePostgres(ctx)
		if err != nil {
			return dr, err
		}
		dr.seedNote += "; " + note
	}

	// The floors, in the same run and at the same concurrencies.
	floors := map[string]map[int]*floor{"read": {}, "hash": {}}
	if len(r.readScenarios()) > 0 {
		if r.floorDSN == "" {
			dr.floorNote = "no read floor: the database is unknown (give -floor-dsn with -target)"
		} else {
			db, note, err := openFloorDB(r.floorDSN)
			if err != nil {
				return dr, fmt.Errorf("read floor: %w", err)
			}
			dr.floorNote = note
			for _, c := range o.conc {
				logf(log, "%s: read floor at c=%d", kind, c)
				f, err := r.readFloor(ctx, db, c)
				if err != nil {
					db.Close()
					return dr, err
				}
				floors["read"][c] = f
				dr.floors = append(dr.floors, f)
			}
			db.Close()
		}
	}
	if o.has("login") {
		c := slices.Max(o.conc)
		logf(log, "%s: hash floor at c=%d", kind, c)
		f, err := r.hashFloor(ctx, c)
		if err != nil {
			return dr, err
		}
		floors["hash"][0] = f
		dr.floors = append(dr.floors, f)
	}

	for _, s := range o.scenarios {
		if s == "import" {
			continue
		}
		concs := o.conc
		if s == "login" {
			concs = slices.Concat(o.conc, o.loginConc)
		}
		for _, c := range concs {
			logf(log, "%s: %s at c=%d for %s", kind, s, c, o.duration)
			m, err := r.scenario(ctx, s, c)
			if err != nil {
				if m != nil {
					dr.rows = append(dr.rows, m)
				}
				return dr, fmt.Errorf("%s c=%d: %w", s, c, err)
			}
			switch s {
			case "login":
				if f := floors["hash"][0]; f != nil {
					m.Floor, m.FloorName = f.Rate, "hash"
				}
			case "whoami", "whoamiaal2", "flood", "get", "list", "listdeep":
				if f := floors["read"][c]; f != nil {
					m.Floor, m.FloorName = f.Rate, "read"
				}
			}
			dr.rows = append(dr.rows, m)
		}
	}
	if o.has("import") {
		for _, size := range o.importSizes {
			for _, c := range o.importConc {
				logf(log, "%s: import %d at c=%d", kind, size, c)
				ir, err := r.importRun(ctx, size, c)
				if ir != nil {
					dr.imports = append(dr.imports, ir)
				}
				if err != nil {
					return dr, fmt.Errorf("import %d c=%d: %w", size, c, err)
				}
			}
		}
	}
	if r.owned {
		dr.finalRSS = procStatusKiB(r.pid, "VmRSS:") * 1024
	}
	return dr, nil
}

// readScenarios are the chosen scenarios compared with the read floor.
func (r *runner) readScenarios() []string {
	var out []string
	for _, s := range []string{"whoami", "whoamiaal2", "flood", "get", "list", "listdeep"} {
		if r.o.has(s) {
			out = append(out, s)
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// email is seeded identity i's address. Against a -target the run's id
// keeps addresses from colliding with an earlier run's.
func (r *runner) email(i int) string {
	if r.o.start {
		return "bench-" + strconv.Itoa(i) + "@example.com"
	}
	return "bench-" + r.runID + "-" + strconv.Itoa(i) + "@example.com"
}

// identityInput is one CreateIdentityInput with a pre-hashed password.
func identityInput(email, hash string) map[string]any {
	return map[string]any{
		"traits":      map[string]any{"email": email},
		"credentials": map[string]any{"password": map[string]any{"hashedPassword": hash}},
	}
}

// seed imports -identities identities in batches, two batches in flight.
func (r *runner) seed(ctx context.Context) error {
	hash, err := password.NewHasher(r.o.argon2, 1).Hash(ctx, benchPassword)
	if err != nil {
		return err
	}
	r.hash = hash
	n := r.o.identities
	r.ids = make([]string, n)
	logf(r.log, "%s: seeding %d identities", r.kind, n)
	return parallel(ctx, (n+batchSize-1)/batchSize, 2, func(b int) error {
		lo, hi := b*batchSize, min((b+1)*batchSize, n)
		in := make([]map[string]any, 0, hi-lo)
		for i := lo; i < hi; i++ {
			in = append(in, identityInput(r.email(i), hash))
		}
		var out struct {
			ImportIdentities struct {
				Results []struct {
					Index    int
					Identity *struct{ ID string }
					// UserErrors is left raw: any content is a failure.
					UserErrors []json.RawMessage
				}
			}
		}
		if err := r.c.call(qImport, map[string]any{"in": in}, r.c.adminHeader, &out); err != nil {
			return err
		}
		res := out.ImportIdentities.Results
		if len(res) != hi-lo {
			return fmt.Errorf("batch %d: %d results for %d identities", b, len(res), hi-lo)
		}
		for _, x := range res {
			if len(x.UserErrors) > 0 || x.Identity == nil {
				return fmt.Errorf("identity %d: %s", lo+x.Index, x.UserErrors)
			}
			r.ids[lo+x.Index] = x.Identity.ID
		}
		return nil
	})
}

// openSessions logs in -sessions seeded identities, spread over the set.
func (r *runner) openSessions(ctx context.Context) error {
	n := min(r.o.sessions, len(r.ids))
	r.sessions = make([]http.Header, n)
	r.tokenHashes = make([][]byte, n)
	r.sessionSeeds = make([]int, n)
	logf(r.log, "%s: opening %d sessions", r.kind, n)
	return parallel(ctx, n, 2*r.o.hashSlots, func(k int) error {
		i := k * len(r.ids) / n
		token, err := r.login(i)
		if err != nil {
			return err
		}
		r.sessions[k] = bearer(token)
		sum := sha256.Sum256([]byte(token))
		r.tokenHashes[k] = sum[:]
		r.sessionSeeds[k] = i
		return nil
	})
}

// openAAL2Sessions logs in up to -sessions seeded identities that no
// session of openSessions belongs to, spread over the rest of the set, and
// calls generateLookupSecrets with each new session: the identity gets a
// second factor and the session, which made it, is lifted to AAL2. Each
// session is then checked to be AAL2 of an identity whose available level
// is AAL2, so that whoamiaal2 measures what it says. The identities stay
// apart from whoami's so that whoami keeps measuring identities without a
// second factor (whose AAL1 sessions would otherwise be refused).
func (r *runner) openAAL2Sessions(ctx context.Context) error {
	used := make(map[int]bool, len(r.sessionSeeds))
	for _, i := range r.sessionSeeds {
		used[i] = true
	}
	var free []int
	for i := range r.ids {
		if !used[i] {
			free = append(free, i)
		}
	}
	n := min(r.o.sessions, len(free))
	if n == 0 {
		return fmt.Errorf("every one of the %d seeded identities has a whoami session: raise -identities", len(r.ids))
	}
	r.aal2Sessions = make([]http.Header, n)
	logf(r.log, "%s: opening %d AAL2 sessions (login, then generateLookupSecrets)", r.kind, n)
	return parallel(ctx, n, 2*r.o.hashSlots, func(k int) error {
		i := free[k*len(free)/n]
		token, err := r.login(i)
		if err != nil {
			return err
		}
		h := bearer(token)
		var gen struct {
			GenerateLookupSecrets struct {
				Codes      []string
				UserErrors []json.RawMessage
			}
		}
		if err := r.c.call(qLookupSecrets, nil, h, &gen); err != nil {
			return fmt.Errorf("generateLookupSecrets for %s: %w", r.email(i), err)
		}
		if g := gen.GenerateLookupSecrets; len(g.UserErrors) > 0 || len(g.Codes) == 0 {
			return fmt.Errorf("generateLookupSecrets for %s: %d codes, userErrors %s", r.email(i), len(g.Codes), g.UserErrors)
		}
		var who struct {
			Whoami struct {
				AAL      string
				Identity struct{ AvailableAAL string }
			}
		}
		if err := r.c.call(qWhoamiAAL, nil, h, &who); err != nil {
			return fmt.Errorf("whoami of %s after generateLookupSecrets: %w", r.email(i), err)
		}
		if w := who.Whoami; w.AAL != "AAL2" || w.Identity.AvailableAAL != "AAL2" {
			return fmt.Errorf("whoami of %s after generateLookupSecrets: aal %q, availableAal %q, want AAL2 and AAL2", r.email(i), w.AAL, w.Identity.AvailableAAL)
		}
		r.aal2Sessions[k] = h
		return nil
	})
}

// login signs in seeded identity i with its password and returns the
// session token.
func (r *runner) login(i int) (string, error) {
	var out struct {
		Login struct {
			SessionToken string
			UserErrors   []json.RawMessage
		}
	}
	in := map[string]any{"identifier": r.email(i), "password": benchPassword}
	if err := r.c.call(qLogin, map[string]any{"in": in}, nil, &out); err != nil {
		return "", err
	}
	if out.Login.SessionToken == "" {
		return "", fmt.Errorf("login %s: no token: %s", r.email(i), out.Login.UserErrors)
	}
	return out.Login.SessionToken, nil
}

// parallel runs fn(0…n-1) with at most conc at once and returns the first
// error; after one, no more are started.
func parallel(ctx context.Context, n, conc int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// scenario measures one scenario at concurrency c. Bodies that vary are
// built before the clock starts, except create's, which are appended into
// each worker's own buffer.
func (r *runner) scenario(ctx context.Context, s string, c int) (*measurement, error) {
	switch s {
	case "whoami":
		body := mustBody(qWhoami, nil)
		return r.load(ctx, s, c, func(w *worker) ([]byte, http.Header) {
			return body, r.sessions[mrand.IntN(len(r.sessions))]
		}, expectWhoami)
	case "whoamiaal2":
		// The same request; an AAL1 session of these identities would be
		// refused with SESSION_AAL2_REQUIRED (data null), which the expect
		// string counts as a GraphQL error.
		body := mustBody(qWhoami, nil)
		return r.load(ctx, s, c, func(w *worker) ([]byte, http.Header) {
			return body, r.aal2Sessions[mrand.IntN(len(r.aal2Sessions))]
		}, expectWhoami)
	case "login":
		return r.load(ctx, s, c, r.loginRequests(), expectLogin)
	case "flood":
		return r.flood(ctx, c)
	case "get":
		bodies := make([][]byte, len(r.ids))
		for i, id := range r.ids {
			bodies[i] = mustBody(qGet, map[string]any{"id": id})
		}
		return r.load(ctx, s, c, func(w *worker) ([]byte, http.Header) {
			return bodies[mrand.IntN(len(bodies))], r.c.adminHeader
		}, expectIdentity)
	case "list":
		body := mustBody(qList, nil)
		return r.load(ctx, s, c, func(w *worker) ([]byte, http.Header) {
			return body, r.c.adminHeader
		}, expectEdges)
	case "listdeep":
		after, at, total, err := r.deepCursor()
		if err != nil {
			return nil, err
		}
		logf(r.log, "%s: listdeep pages from identity %d of %d", r.kind, at, total)
		body := mustBody(qList, map[string]any{"after": after})
		return r.load(ctx, s, c, func(w *worker) ([]byte, http.Header) {
			return body, r.c.adminHeader
		}, expectEdges)
	case "requestverification", "requestrecovery":
		// A random seeded address, or an unknown one one time in four: the
		// answer and the request's work are the same either way.
		q := qRequestVerification
		if s == "requestrecovery" {
			q = qRequestRecovery
		}
		bodies := make([][]byte, len(r.ids))
		for i := range bodies {
			addr := r.email(i)
			if i%4 == 3 {
				addr = "nobody-" + strconv.Itoa(i) + "@example.com"
			}
			bodies[i] = mustBody(q, map[string]any{"in": map[string]any{"address": addr}})
		}
		return r.load(ctx, s, c, func(w *worker) ([]byte, http.Header) {
			return bodies[mrand.IntN(len(bodies))], nil
		}, expectNoErrors)
	case "create":
		// {"query":…,"variables":{"in":{"traits":{"email":"bench-create-<run>-c<c>-<worker>-<n>@example.com"}}}}
		full := string(mustBody(qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "EMAIL"}}}))
		prefix, suffix, _ := strings.Cut(full, "EMAIL")
		prefix += "bench-create-" + r.runID + "-c" + strconv.Itoa(c) + "-"
		suffix = "@example.com" + suffix
		return r.load(ctx, s, c, func(w *worker) ([]byte, http.Header) {
			b := append(w.scratch[:0], prefix...)
			b = strconv.AppendInt(b, int64(w.id), 10)
			b = append(b, '-')
			b = strconv.AppendInt(b, int64(w.n), 10)
			b = append(b, suffix...)
			w.scratch = b
			return b, r.c.adminHeader
		}, expectIdentity)
	}
	return nil, fmt.Errorf("unknown scenario %q", s)
}

// loginRequests signs in random seeded identities with their password.
func (r *runner) loginRequests() requestFunc {
	bodies := make([][]byte, len(r.ids))
	for i := range bodies {
		bodies[i] = mustBody(qLogin, map[string]any{"in": map[string]any{"identifier": r.email(i), "password": benchPassword}})
	}
	return func(w *worker) ([]byte, http.Header) {
		return bodies[mrand.IntN(len(bodies))], nil
	}
}

// flood measures whoami at concurrency c while -flood-c logins are in
// flight, unmeasured: every hash slot busy and a queue behind them, the
// moment a login storm (or a password-guessing botnet) hits. The cheap read
// every page makes must keep answering meanwhile. The flood runs from 2 s
// before whoami's warm-up until its measurement ends, and the logins still
// in flight then are waited for, so the next scenario starts on a quiet
// server. The machine cannot be quiet during it, so -wait-idle is skipped.
func (r *runner) flood(ctx context.Context, c int) (*measurement, error) {
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	workers := make([]*worker, r.o.floodConc)
	for i := range workers {
		workers[i] = &worker{id: i}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.loop(fctx, workers, time.Now().Add(24*time.Hour), nil, r.loginRequests(), nil, false)
	}()
	select {
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
	}
	r.flooding = true
	m, err := r.scenario(ctx, "whoami", c)
	r.flooding = false
	stop()
	<-done
	if m != nil {
		m.Scenario = "whoami + " + strconv.Itoa(r.o.floodConc) + " logins"
	}
	return m, err
}

// deepCursor walks every page once, collecting each identity's cursor, and
// returns the cursor of the identity 90% of the way through the set, so that
// listdeep pages from there.
func (r *runner) deepCursor() (after string, at, total int, err error) {
	var cursors []string
	var next *string
	for {
		var out struct {
			Identities struct {
				Edges    []struct{ Cursor string }
				PageInfo struct {
					HasNextPage bool
					EndCursor   *string
				}
			}
		}
		vars := map[string]any{}
		if next != nil {
			vars["after"] = *next
		}
		if err := r.c.call(qCursors, vars, r.c.adminHeader, &out); err != nil {
			return "", 0, 0, err
		}
		for _, e := range out.Identities.Edges {
			cursors = append(cursors, e.Cursor)
		}
		if !out.Identities.PageInfo.HasNextPage || out.Identities.PageInfo.EndCursor == nil {
			break
		}
		next = out.Identities.PageInfo.EndCursor
	}
	if len(cursors) < 2 {
		return "", 0, 0, errors.New("fewer than 2 identities to page through")
	}
	at = max(len(cursors)*9/10, 1)
	return cursors[at-1], at, len(cursors), nil
}

// importRun is one import of size identities at c batches in flight.
type importRun struct {
	Size, Conc int
	Batches    int
	Elapsed    time.Duration
	Lat        []time.Duration // per batch, sorted
	counts
	usage
}

// rate is identities imported per second.
func (ir *importRun) rate() float64 {
	if ir.Elapsed <= 0 {
		return 0
	}
	return float64(ir.Size) / ir.Elapsed.Seconds()
}

// importRun imports size new identities with pre-hashed passwords, in
// batches of 1,000, c batches in flight; the bodies are built first.
func (r *runner) importRun(ctx context.Context, size, c int) (*importRun, error) {
	n := (size + batchSize - 1) / batchSize
	bodies := make([][]byte, n)
	for b := range bodies {
		lo, hi := b*batchSize, min((b+1)*batchSize, size)
		in := make([]map[string]any, 0, hi-lo)
		for i := lo; i < hi; i++ {
			in = append(in, identityInput(fmt.Sprintf("import-%s-%d-c%d-%d@example.com", r.runID, size, c, i), r.hash))
		}
		bodies[b] = mustBody(qImportLn, map[string]any{"in": in})
	}
	runtime.GC()
	r.quiet(ctx)
	ir := &importRun{Size: size, Conc: c, Batches: n}
	// Bounded in time as well as in count: an hour is far beyond any
	// reasonable import of these sizes.
	ctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	var mu sync.Mutex
	stopPerf := r.perf(fmt.Sprintf("import%d-c%d", size, c))
	wt := startWatch(r.pid, r.owned, r.dbName())
	start := time.Now()
	err := parallel(ctx, n, c, func(b int) error {
		w := &worker{}
		t0 := time.Now()
		status, err := r.c.post(bodies[b], r.c.adminHeader, &w.buf)
		d := time.Since(t0)
		cn := classify(status, err, w.buf.Bytes(), expectResults)
		mu.Lock()
		ir.Lat = append(ir.Lat, d)
		ir.counts.add(cn)
		mu.Unlock()
		return nil
	})
	ir.Elapsed = time.Since(start)
	ir.usage = wt.stop()
	stopPerf()
	slices.Sort(ir.Lat)
	return ir, err
}

// analyzePostgres reports whether autovacuum is on and, with -analyze, runs
// ANALYZE on the seeded database. Without statistics PostgreSQL plans the
// server's joins for empty tables: on a server with autovacuum off, every
// figure would measure that instead of the service.
func (r *runner) analyzePostgres(ctx context.Context) (string, error) {
	db, _, err := openFloorDB(r.floorDSN)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var av string
	if err := db.QueryRowContext(ctx, "SHOW autovacuum").Scan(&av); err != nil {
		return "", fmt.Errorf("show autovacuum: %w", err)
	}
	if !r.o.analyze {
		return "autovacuum is " + av + " on this PostgreSQL; no ANALYZE (-analyze=false)", nil
	}
	t0 := time.Now()
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		return "", fmt.Errorf("analyze: %w", err)
	}
	return fmt.Sprintf("autovacuum is %s on this PostgreSQL; ANALYZE run after seeding (%.1f s)", av, time.Since(t0).Seconds()), nil
}
