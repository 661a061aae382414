package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
)

// buildServer builds the module root's main package into dir and returns
// the binary's path.
func buildServer(ctx context.Context, dir string) (string, error) {
	bin, _, err := buildServerRev(ctx, dir)
	return bin, err
}

// buildServerRev is buildServer that also tells which source it built: the
// git commit, and whether the working tree had changes on top of it.
func buildServerRev(ctx context.Context, dir string) (bin, rev string, err error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	root, err := moduleRoot(ctx, goTool)
	if err != nil {
		return "", "", err
	}
	rev = "unknown (not a git checkout)"
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		rev = "git " + strings.TrimSpace(string(out))
		if st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			rev += " with uncommitted changes"
		}
	}
	bin = filepath.Join(dir, "identityd")
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, rev, nil
}

// moduleRoot is the folder of the main module's go.mod, wherever the tool
// runs from inside it.
func moduleRoot(ctx context.Context, goTool string) (string, error) {
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run inside the identityd module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

// server is a started identityd process.
type server struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	stderr *tailBuffer
	done   chan struct{}
	err    error // the process's exit, once done is closed
}

// database is where a started server keeps its data: dsn for the server,
// floorDSN for the read floor, and a drop func that removes it.
type database struct {
	dsn  string
	drop func() error
}

// newDatabase makes a fresh, empty database of kind in dir (SQLite) or on
// the PostgreSQL server at pgAdmin.
func newDatabase(ctx context.Context, kind, dir, pgAdmin string) (*database, error) {
	if kind == "sqlite" {
		return &database{dsn: "sqlite://" + filepath.Join(dir, "bench.db"), drop: func() error { return nil }}, nil
	}
	admin := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(pgAdmin), pgdriver.WithTimeout(10*time.Second)))
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "identityd_bench_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, fmt.Sprintf("CREATE DATABASE %q", name)); err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("create database on %s: %w", redact(pgAdmin), err)
	}
	u, err := url.Parse(pgAdmin)
	if err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("-pg: %w", err)
	}
	u.Path = "/" + name
	return &database{dsn: u.String(), drop: func() error {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.ExecContext(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %q WITH (FORCE)", name)); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}}, nil
}

// redact hides a DSN's password.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}

// serverEnv is the environment for the started server: ours, minus a config
// file that could change what is measured, plus its database, address, admin
// key and argon2 parameters.
func serverEnv(o *options, adminKey, dsn string) []string {
	own := map[string]string{
		"DSN":            dsn,
		"SERVE_ADDRESS":  "127.0.0.1:0",
		"ADMIN_API_KEYS": adminKey,
		// Its own secret for one-time codes, so the server does not make
		// one and keep it in a data folder under the working directory.
		"SECRETS_DEFAULT":            "bench_secret_" + randomHex(16),
		"HASHERS_ARGON2_MEMORY_KIB":  strconv.FormatUint(uint64(o.argon2.Memory), 10),
		"HASHERS_ARGON2_ITERATIONS":  strconv.FormatUint(uint64(o.argon2.Iterations), 10),
		"HASHERS_ARGON2_PARALLELISM": strconv.FormatUint(uint64(o.argon2.Parallelism), 10),
		"HASHERS_MAX_CONCURRENT":     strconv.Itoa(o.hashSlots),
		// The code requests come from one address to a few thousand
		// addresses: the throttle is raised here, for the benchmark only,
		// so that what is measured is the request path, not the refusal.
		"SELFSERVICE_CODES_THROTTLE_FREE_PER_ADDRESS":    "1000000000",
		"SELFSERVICE_CODES_THROTTLE_FREE_PER_IDENTIFIER": "1000000000",
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := own[k]; ok || k == "CONFIG" {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range own {
		env = append(env, k+"="+v)
	}
	return env
}

// migrateUp runs `identityd migrate up` with env.
func migrateUp(ctx context.Context, bin string, env []string) error {
	cmd := exec.CommandContext(ctx, bin, "migrate", "up")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("migrate up: %w\n%s", err, out)
	}
	return nil
}

var listeningRE = regexp.MustCompile(`listening on (http://\S+)`)

// startServer runs `identityd serve` with env and waits for its
// "listening on http://…" line and a ready database.
func startServer(ctx context.Context, bin string, env []string) (*server, error) {
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, stderr: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	fail := func(err error) (*server, error) {
		s.stop()
		return nil, fmt.Errorf("%w\nserver stderr:\n%s", err, s.stderr.String())
	}
	select {
	case s.base = <-found:
	case <-s.done:
		return fail(fmt.Errorf("server exited before listening: %v", s.err))
	case <-time.After(60 * time.Second):
		return fail(errors.New("server did not say where it listens within 60s"))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if err := waitReady(ctx, s.base); err != nil {
		return fail(err)
	}
	return s, nil
}

// waitReady polls /health/ready until it answers 200.
func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health/ready", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/health/ready is not ready after 30s (last: %v)", base, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pid is the server's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// stop asks the server to shut down and kills it if it has not within 20s.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}
