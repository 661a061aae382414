package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/internal/password"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// `identityd identities import|export`: identities in Kratos's JSON layout
// in and out of the database that serve uses, without a server.

const identitiesUsage = `usage:
  identityd identities import [FILE|-] [--dry-run] [--batch N] [--workers N] [--config FILE]
      JSON lines or a JSON array of identities as Kratos writes them (stdin when FILE is - or absent)
  identityd identities export [--filter-state active|inactive] [--filter-schema ID] [--with-credentials] [--config FILE]
      every identity as a JSON line on stdout, in Kratos's layout
`

// stdin is the import's standard input; tests replace it.
var stdin = func() io.Reader { return os.Stdin }

// isTerminal tells whether w is a terminal, where a progress bar can redraw
// itself; tests replace it.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressEvery is how often progress is written as a plain line when
// stderr is not a terminal.
var progressEvery = 10 * time.Second

func cmdIdentities(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New("identities: say import or export\n\n" + identitiesUsage)
	}
	switch args[0] {
	case "import":
		return cmdIdentitiesImport(ctx, args[1:], stdout, stderr, getenv)
	case "export":
		return cmdIdentitiesExport(ctx, args[1:], stdout, stderr, getenv)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, identitiesUsage)
		return nil
	default:
		return fmt.Errorf("identities: unknown subcommand %q: say import or export\n\n%s", args[0], identitiesUsage)
	}
}

// parseFlags parses --config (or -c) and the flags more adds, anywhere among
// the arguments (`import users.jsonl --dry-run` as well as `import
// --dry-run users.jsonl`), loads the config and returns the other arguments.
func parseFlags(name string, args []string, out io.Writer, getenv func(string) string, more func(*flag.FlagSet)) (Config, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	path := fs.String("config", getenv("CONFIG"), "YAML config file (env CONFIG)")
	fs.StringVar(path, "c", getenv("CONFIG"), "shorthand for --config")
	more(fs)
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return Config{}, nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
	cfg, err := loadConfig(*path, getenv)
	return cfg, rest, err
}

// openIdentities opens the database as serve does (the embedded SQLite is
// migrated, a PostgreSQL one must be) and builds the identity service with
// serve's schemas, hasher and second-factor secrets (TOTP keys are sealed
// and opened with them), and nothing else: no HTTP server, no background
// loops.
func openIdentities(ctx context.Context, cfg Config, log *slog.Logger) (*identity.Service, *db.DB, error) {
	registry, err := schemas.NewRegistry(ctx, cfg.Identity.DefaultSchemaID, cfg.Identity.Schemas, schemas.Options{})
	if err != nil {
		return nil, nil, err
	}
	secrets, err := resolveSecrets(cfg.Secrets.Default, cfg.Serve.Address, dataDir(cfg.DSN))
	if err != nil {
		return nil, nil, err
	}
	secondFactors, err := newSecondFactorSecrets(cfg.Secrets, secrets)
	if err != nil {
		return nil, nil, err
	}
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now
	if cfg.now != nil {
		now = cfg.now
	}
	hasher := password.NewHasher(cfg.Hashers.argon2Params(), cfg.Hashers.MaxConcurrent)
	identities := identity.New(store, registry, hasher, password.DefaultPolicy(), now)
	identities.SecondFactorsWith(secondFactors, cfg.Selfservice.Methods.TOTP.Config.Issuer)
	return identities, store, nil
}

// importItem is one identity of the input on its way through an import.
type importItem struct {
	// where names it in messages: "line 17", "item 3 (line 40)".
	where string
	doc   *identity.KratosImport
	// errs are why it failed (reading it, or importing it).
	errs []error
}

// importBatch is up to --batch items imported in one call.
type importBatch struct {
	items []*importItem
	// fatal stops the import after this batch: the input cannot be read on
	// (a broken JSON array, a read error).
	fatal error
	// read is how many bytes of the input were read when the batch was cut.
	read int64
}

func cmdIdentitiesImport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var (
		dryRun  bool
		batch   int
		workers int
	)
	cfg, rest, err := parseFlags("identities import", args, stdout, getenv, func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "check every identity, including identifiers taken in the database, and write nothing")
		fs.IntVar(&batch, "batch", identity.MaxImport, fmt.Sprintf("identities per transaction (1 to %d)", identity.MaxImport))
		fs.IntVar(&workers, "workers", 0, "batches imported at once (default: 4 on PostgreSQL, 1 on SQLite)")
	})
	if err != nil {
		return err
	}
	if batch < 1 || batch > identity.MaxImport {
		return fmt.Errorf("identities import: --batch must be 1 to %d", identity.MaxImport)
	}
	if len(rest) > 1 {
		return fmt.Errorf("identities import: one input at most (a file, or - for stdin), got %q", rest)
	}
	var in io.Reader
	var size int64 = -1
	name := "stdin"
	if len(rest) == 1 && rest[0] != "-" {
		f, err := os.Open(rest[0])
		if err != nil {
			return fmt.Errorf("identities import: %w", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		in, name = f, rest[0]
	} else {
		in = stdin()
	}

	log := newLogger(cfg.Log, stderr)
	tuneRuntime(cfg, getenv, log) // as serve: hashes of cleartext passwords, and a larger GOGC
	service, store, err := openIdentities(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	if workers <= 0 {
		workers = 4
		if store.Kind() == db.SQLite {
			workers = 1 // one writer at a time anyway
		}
	}

	started := time.Now()
	counted := &countingReader{r: in}
	batches := make(chan *importBatch, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go readBatches(ctx, newItemReader(counted), counted, batch, batches)

	done := make(chan *importBatch, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for b := range batches {
				importOne(ctx, service, b, dryRun)
				done <- b
			}
		})
	}
	go func() { wg.Wait(); close(done) }()

	prog := newProgress(stderr, size, "importing "+name)
	var total, failed int
	notes := map[string]int{}
	var fatal error
	for b := range done {
		for _, it := range b.items {
			total++
			if len(it.errs) > 0 {
				failed++
				if ctx.Err() != nil {
					continue // stopped: the summary says so, not an error per item
				}
				prog.clear()
				for _, e := range it.errs {
					fmt.Fprintf(stderr, "%s: %s\n", it.where, describe(e, it.doc))
				}
				continue
			}
			for _, n := range it.doc.Notes {
				notes[n]++
			}
		}
		if b.fatal != nil && fatal == nil {
			fatal = b.fatal
			prog.clear()
			fmt.Fprintf(stderr, "%v\n", b.fatal)
		}
		prog.update(counted.n(), total, failed)
	}
	prog.finish(counted.n(), total, failed)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("identities import: stopped after %d identities: %w", total, err)
	}

	if !dryRun && total > failed {
		// The planner's statistics of tables that just grew: without them
		// PostgreSQL reads them by full scans until autovacuum catches up.
		if err := store.AnalyzeIdentities(ctx); err != nil {
			log.Warn("updating the planner's statistics failed: run ANALYZE on the identity tables", "error", err)
		}
	}
	took := time.Since(started)
	rate := ""
	if s := took.Seconds(); s > 0 && total > 0 {
		rate = fmt.Sprintf(", %.0f/s", float64(total)/s)
	}
	if dryRun {
		fmt.Fprintf(stdout, "dry run: %d of %d identities would be imported, %d failed (%s%s); nothing was written\n",
			total-failed, total, failed, took.Round(time.Millisecond), rate)
	} else {
		fmt.Fprintf(stdout, "imported %d of %d identities, %d failed (%s%s)\n", total-failed, total, failed, took.Round(time.Millisecond), rate)
	}
	for _, n := range slices.Sorted(maps.Keys(notes)) {
		fmt.Fprintf(stdout, "  %s: %d identities\n", n, notes[n])
	}
	switch {
	case fatal != nil:
		return fmt.Errorf("identities import: the input could not be read to its end (%d identities read before)", total)
	case failed > 0:
		return fmt.Errorf("identities import: %d of %d identities failed (listed above with their line)", failed, total)
	}
	return nil
}

// readBatches reads items, parses them and cuts them into batches of size
// for the workers; the last batch carries a fatal read error, if any.
func readBatches(ctx context.Context, r *itemReader, counted *countingReader, size int, out chan<- *importBatch) {
	defer close(out)
	b := &importBatch{}
	send := func() bool {
		b.read = counted.n()
		select {
		case out <- b:
			b = &importBatch{}
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		where, raw, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.fatal = err
			break
		}
		it := &importItem{where: where}
		if doc, perr := identity.ParseKratosIdentity(raw); perr != nil {
			it.errs = []error{perr}
		} else {
			it.doc = doc
		}
		b.items = append(b.items, it)
		if len(b.items) == size && !send() {
			return
		}
	}
	if len(b.items) > 0 || b.fatal != nil {
		send()
	}
}

// importOne imports (or, for a dry run, checks) the parsed items of b
// through the identity service (ImportBulk: Import's checks, a COPY on
// PostgreSQL) and sets each item's errors. A failure of the whole call (a lost connection, two
// concurrent batches deadlocked on the same identifier) is tried again
// twice before it fails every item.
func importOne(ctx context.Context, service *identity.Service, b *importBatch, dryRun bool) {
	var ins []*model.CreateIdentityInput
	var at []*importItem
	for _, it := range b.items {
		if len(it.errs) == 0 {
			ins = append(ins, it.doc.Input)
			at = append(at, it)
		}
	}
	if len(ins) == 0 {
		return
	}
	var results []identity.ImportResult
	var err error
	for try := range 3 {
		if try > 0 {
			select {
			case <-time.After(time.Duration(try) * 200 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		if dryRun {
			results, err = service.ImportDryRun(ctx, ins)
		} else {
			results, err = service.ImportBulk(ctx, ins)
		}
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	for i, it := range at {
		switch {
		case err != nil:
			it.errs = []error{err}
		case results[i].Err != nil:
			var list model.Errors
			if errors.As(results[i].Err, &list) {
				for _, e := range list {
					it.errs = append(it.errs, e)
				}
			} else {
				it.errs = []error{results[i].Err}
			}
		}
	}
}

// describe writes an item's error as one line: the code, the path in the
// Kratos document, the message.
func describe(err error, doc *identity.KratosImport) string {
	var e *model.Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	path := e.Path
	if doc != nil {
		path = doc.Path(path)
	}
	if path == "" {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%s at %s: %s", e.Code, path, e.Message)
}

// countingReader counts the bytes read through it, for progress.
type countingReader struct {
	r  io.Reader
	mu sync.Mutex
	c  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.c += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingReader) n() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c
}

// maxItemBytes bounds one identity's document: a line or an array item
// longer than this is not an identity, and reading it whole would hold it
// in memory.
const maxItemBytes = 16 << 20

// itemReader splits an import's input into identity documents, holding one
// at a time. It reads JSON lines (one identity per line: a bad line fails
// alone and reading goes on), a JSON array (or several one after another,
// as pages of `kratos list identities` appended to one file), or JSON
// objects one after another over several lines (pretty-printed). It tells
// which by the start: '[' is an array; an object that ends on its first
// line is JSON lines; anything else is read value by value. An object with
// an "identities" array and neither traits nor schema_id (a page of
// `kratos list identities` with its next_page_token) stands for its
// identities.
type itemReader struct {
	r     *bufio.Reader
	mode  int
	line  int // lines read so far
	index int // items of an array (or values) read so far
	// pending are the identities of a page being handed out.
	pending []pendingItem
}

type pendingItem struct {
	where string
	raw   []byte
}

const (
	modeUnknown = iota
	modeLines
	modeArray  // inside an array
	modeAfter  // after an array: another may follow
	modeValues // values one after another
)

func newItemReader(r io.Reader) *itemReader {
	return &itemReader{r: bufio.NewReaderSize(r, 1<<20)}
}

// next returns the next identity document and where it is; io.EOF at the
// end. Any other error is fatal: the input cannot be read on.
func (x *itemReader) next() (string, []byte, error) {
	for {
		if len(x.pending) > 0 {
			p := x.pending[0]
			x.pending = x.pending[1:]
			return p.where, p.raw, nil
		}
		where, raw, err := x.nextRaw()
		if err != nil {
			return "", nil, err
		}
		if page, ok := kratosPage(raw); ok {
			for i, r := range page {
				x.pending = append(x.pending, pendingItem{where: fmt.Sprintf("%s, identities/%d", where, i), raw: r})
			}
			continue
		}
		return where, raw, nil
	}
}

// kratosPage returns the identities of a `kratos list identities` page
// ({"identities": [...], "next_page_token": "..."}).
func kratosPage(raw []byte) ([]json.RawMessage, bool) {
	if len(raw) == 0 || raw[0] != '{' || !bytes.Contains(raw, []byte(`"identities"`)) {
		return nil, false
	}
	var page struct {
		Identities []json.RawMessage `json:"identities"`
		Traits     json.RawMessage   `json:"traits"`
		SchemaID   json.RawMessage   `json:"schema_id"`
	}
	if json.Unmarshal(raw, &page) != nil || page.Identities == nil || page.Traits != nil || page.SchemaID != nil {
		return nil, false
	}
	return page.Identities, true
}

func (x *itemReader) nextRaw() (string, []byte, error) {
	if x.mode == modeUnknown {
		if err := x.detect(); err != nil {
			return "", nil, err
		}
	}
	switch x.mode {
	case modeLines:
		for {
			line, err := x.readLine()
			if len(line) == 0 && err != nil {
				return "", nil, err
			}
			x.line++
			if t := bytes.TrimSpace(line); len(t) > 0 {
				return fmt.Sprintf("line %d", x.line), t, nil
			}
			if err != nil {
				return "", nil, err
			}
		}
	case modeValues:
		c, err := x.skipSpace()
		if err != nil {
			return "", nil, err
		}
		start := x.line + 1
		raw, err := x.value(c)
		if err != nil {
			return "", nil, fmt.Errorf("item %d (line %d): %w", x.index, start, err)
		}
		x.index++
		return fmt.Sprintf("item %d (line %d)", x.index-1, start), raw, nil
	default:
		return x.arrayItem()
	}
}

// detect finds the input's layout from its start.
func (x *itemReader) detect() error {
	// A UTF-8 byte order mark, as some editors write, is not JSON.
	if b, err := x.r.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = x.r.Discard(3)
	}
	c, err := x.skipSpace()
	if err != nil {
		return err
	}
	_ = x.r.UnreadByte()
	if c == '[' {
		x.mode = modeAfter
		return nil
	}
	peek, _ := x.r.Peek(x.r.Buffered())
	if len(peek) == 0 {
		peek, _ = x.r.Peek(1 << 20)
	}
	end := bytes.IndexByte(peek, '\n')
	if end < 0 {
		end = len(peek)
	}
	if json.Valid(peek[:end]) {
		x.mode = modeLines
	} else if c == '{' {
		x.mode = modeValues
	} else {
		x.mode = modeLines // each line fails alone with its own message
	}
	return nil
}

// readLine reads one line, at most maxItemBytes long.
func (x *itemReader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := x.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxItemBytes {
			return nil, fmt.Errorf("line %d: longer than %d MiB", x.line+1, maxItemBytes>>20)
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

// skipSpace reads past white space and returns the first other byte.
func (x *itemReader) skipSpace() (byte, error) {
	for {
		c, err := x.r.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case '\n':
			x.line++
		case ' ', '\t', '\r':
		default:
			return c, nil
		}
	}
}

// arrayItem returns the next item of a JSON array, going on into another
// array that follows one.
func (x *itemReader) arrayItem() (string, []byte, error) {
	c, err := x.skipSpace()
	if x.mode == modeAfter {
		if err != nil {
			return "", nil, err // io.EOF after an array: done
		}
		if c != '[' {
			return "", nil, fmt.Errorf("line %d: unexpected %q after the JSON array", x.line+1, c)
		}
		x.mode = modeArray
		if c, err = x.skipSpace(); err == nil && c == ']' {
			x.mode = modeAfter
			return x.arrayItem()
		}
	} else if err == nil {
		switch c {
		case ']':
			x.mode = modeAfter
			return x.arrayItem()
		case ',':
			c, err = x.skipSpace()
		default:
			return "", nil, fmt.Errorf("item %d (line %d): want , or ] after the item before, found %q", x.index, x.line+1, c)
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("item %d: the JSON array ends before its ]: %w", x.index, errors.Join(err, io.ErrUnexpectedEOF))
	}
	start := x.line + 1
	raw, err := x.value(c)
	if err != nil {
		return "", nil, fmt.Errorf("item %d (line %d): %w", x.index, start, err)
	}
	x.index++
	return fmt.Sprintf("item %d (line %d)", x.index-1, start), raw, nil
}

// value reads one JSON value that starts with c, by its brackets and
// strings (json.Unmarshal checks it later), so that a malformed item fails
// alone as long as its brackets balance.
func (x *itemReader) value(c byte) ([]byte, error) {
	buf := []byte{c}
	if c != '{' && c != '[' && c != '"' {
		// A scalar: up to the next delimiter, which stays for the caller.
		for {
			d, err := x.r.ReadByte()
			if err != nil {
				return buf, nil
			}
			if bytes.IndexByte([]byte(",]} \t\r\n"), d) >= 0 {
				_ = x.r.UnreadByte()
				return buf, nil
			}
			buf = append(buf, d)
		}
	}
	depth, inString, escaped := 0, c == '"', false
	if !inString {
		depth = 1
	}
	for {
		d, err := x.r.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("the input ends inside this item: %w", io.ErrUnexpectedEOF)
		}
		buf = append(buf, d)
		if len(buf) > maxItemBytes {
			return nil, fmt.Errorf("longer than %d MiB", maxItemBytes>>20)
		}
		if d == '\n' {
			x.line++
		}
		switch {
		case escaped:
			escaped = false
		case inString:
			switch d {
			case '\\':
				escaped = true
			case '"':
				inString = false
				if depth == 0 {
					return buf, nil
				}
			}
		case d == '"':
			inString = true
		case d == '{' || d == '[':
			depth++
		case d == '}' || d == ']':
			depth--
			if depth == 0 {
				return buf, nil
			}
		}
	}
}

// progress reports an import's or export's progress on stderr: a bar that
// redraws itself on a terminal, a plain line every progressEvery otherwise.
type progress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	what  string
	size  int64
	start time.Time
	last  time.Time
}

// newProgress starts reporting; size is the input's size in bytes (-1 when
// unknown, or for an export).
func newProgress(w io.Writer, size int64, what string) *progress {
	p := &progress{w: w, what: what, size: size, start: time.Now(), last: time.Now()}
	if isTerminal(w) {
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
		}
		if size > 0 {
			opts = append(opts, progressbar.OptionShowBytes(true))
		} else {
			opts = append(opts, progressbar.OptionSpinnerType(14))
		}
		p.bar = progressbar.NewOptions64(size, opts...)
	}
	return p
}

// update shows read bytes of the input read, done items handled and failed
// of them failed.
func (p *progress) update(read int64, done, failed int) {
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%s: %d done, %d failed", p.what, done, failed))
		if p.size > 0 {
			_ = p.bar.Set64(read)
		} else {
			_ = p.bar.Set(done)
		}
		return
	}
	if time.Since(p.last) < progressEvery {
		return
	}
	p.last = time.Now()
	fmt.Fprintln(p.w, p.line(read, done, failed))
}

func (p *progress) line(read int64, done, failed int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d done, %d failed", p.what, done, failed)
	if p.size > 0 {
		fmt.Fprintf(&b, ", %.0f%% of the input", 100*float64(read)/float64(p.size))
	}
	if s := time.Since(p.start).Seconds(); s > 0 {
		fmt.Fprintf(&b, ", %.0f/s", float64(done)/s)
	}
	return b.String()
}

// clear makes room for a message line: the bar redraws below it.
func (p *progress) clear() {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
}

// finish removes the bar.
func (p *progress) finish(read int64, done, failed int) {
	if p.bar != nil {
		p.update(read, done, failed)
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

func cmdIdentitiesExport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var (
		state, schema   string
		withCredentials bool
	)
	cfg, rest, err := parseFlags("identities export", args, stdout, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&state, "filter-state", "", "only identities in this state: active or inactive")
		fs.StringVar(&schema, "filter-schema", "", "only identities of this schema id")
		fs.BoolVar(&withCredentials, "with-credentials", false,
			"include credential secrets: password hashes, OIDC links, TOTP keys (decrypted); treat the output as the database itself")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("identities export: unexpected arguments %q (the export goes to stdout)", rest)
	}
	var f identity.ExportFilter
	switch state {
	case "":
	case model.StateActiveJSON:
		s := model.IdentityStateActive
		f.State = &s
	case model.StateInactiveJSON:
		s := model.IdentityStateInactive
		f.State = &s
	default:
		return fmt.Errorf("identities export: --filter-state must be active or inactive, not %q", state)
	}
	if schema != "" {
		f.SchemaID = &schema
	}

	log := newLogger(cfg.Log, stderr)
	tuneRuntime(cfg, getenv, log) // GOGC 400: an export allocates a page's rows after another
	service, store, err := openIdentities(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()

	started := time.Now()
	out := bufio.NewWriterSize(stdout, 256<<10)
	var line []byte
	prog := newProgress(stderr, -1, "exporting")
	n := 0
	omitted := map[string]int{}
	undecryptable := 0
	err = service.Export(ctx, f, withCredentials, func(k *identity.KratosIdentity, left []string) error {
		for _, typ := range left {
			omitted[typ]++
			if typ == "totp" {
				undecryptable++
				prog.clear()
				fmt.Fprintf(stderr, "identity %s: its TOTP key does not decrypt with the configured secrets (secrets.cipher, secrets.default): exported without it\n", k.ID)
			}
		}
		line = append(k.AppendJSON(line[:0]), '\n')
		if _, err := out.Write(line); err != nil {
			return err
		}
		n++
		if n%exportProgressEvery == 0 {
			prog.update(0, n, 0)
		}
		return nil
	})
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	prog.finish(0, n, 0)
	if err != nil {
		return fmt.Errorf("identities export: after %d identities: %w", n, err)
	}
	fmt.Fprintf(stderr, "exported %d identities (%s)\n", n, time.Since(started).Round(time.Millisecond))
	if withCredentials {
		for _, typ := range slices.Sorted(maps.Keys(omitted)) {
			why := "not exported: this server does not import it"
			switch typ {
			case "lookup_secret":
				why = "not exported: only keyed hashes of the codes are stored"
			case "totp":
				why = "not exported: the key does not decrypt"
			}
			fmt.Fprintf(stderr, "  %s credentials %s: %d identities\n", typ, why, omitted[typ])
		}
	} else {
		fmt.Fprintln(stderr, "  credentials are listed without secrets; --with-credentials adds password hashes, OIDC links and TOTP keys")
	}
	if undecryptable > 0 {
		return fmt.Errorf("identities export: %d TOTP keys did not decrypt with the configured secrets and were left out", undecryptable)
	}
	return nil
}

// exportProgressEvery is how many identities an export writes between two
// progress updates.
const exportProgressEvery = 1000
