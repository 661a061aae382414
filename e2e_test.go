package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/identityd/identityd/db/dbtest"
)

// buildBinary compiles the real binary once per test run, CGO off as shipped.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "identityd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

// TestEndToEnd runs the built binary on port 0 on each database: it starts,
// prints where it listens and how to act as admin, answers GraphQL, and stops
// cleanly on SIGTERM. On PostgreSQL it first refuses an unmigrated database,
// naming `migrate up`.
func TestEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	dbtest.Each(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		env := append(os.Environ(), "DSN="+dsn, "SERVE_ADDRESS=127.0.0.1:0", "ADMIN_API_KEYS=", "CONFIG=")
		if strings.HasPrefix(dsn, "postgres") {
			out, err := runCmd(t, bin, dir, env, "serve")
			if err == nil || !strings.Contains(out, "migrate up") {
				t.Fatalf("serve on an unmigrated database: err %v, output %q; want a refusal naming migrate up", err, out)
			}
			if out, err := runCmd(t, bin, dir, env, "migrate", "up"); err != nil || !strings.Contains(out, "applied") {
				t.Fatalf("migrate up: %v %s", err, out)
			}
			if out, err := runCmd(t, bin, dir, env, "migrate", "status"); err != nil || strings.Contains(out, "pending") {
				t.Fatalf("migrate status: %v %s", err, out)
			}
		}

		cmd := exec.Command(bin)
		cmd.Dir, cmd.Env = dir, env
		stdout, _ := cmd.StdoutPipe()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { _ = cmd.Process.Kill() })

		sc := bufio.NewScanner(stdout)
		var base, banner string
		for sc.Scan() {
			banner += sc.Text() + "\n"
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				base = m[1]
			}
			if strings.Contains(sc.Text(), "Bearer ") {
				break
			}
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		if base == "" {
			t.Fatalf("no listening line; stdout %q stderr %q", banner, stderr.String())
		}
		key := regexp.MustCompile(`Bearer (idadm_[A-Za-z0-9_-]+)`).FindStringSubmatch(banner)
		if key == nil {
			t.Fatalf("banner does not say how to act as admin: %q", banner)
		}
		keyDir := filepath.Join(dir, "data")
		if f, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
			keyDir = filepath.Dir(f) // local state lives beside the database file
		}
		if b, err := os.ReadFile(filepath.Join(keyDir, "admin-key")); err != nil || strings.TrimSpace(string(b)) != key[1] {
			t.Fatalf("admin key file: %q, %v", b, err)
		}

		s := &testServer{URL: base}
		resp, err := http.Get(base + "/health/ready")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("ready: %v %v", resp, err)
		}
		resp.Body.Close()
		r := s.gql(t, key[1], `mutation { createIdentity(input: {traits: {email: "e2e@example.com"}}) { identity { id traits } userErrors { code } } }`, nil)
		if len(r.Errors) > 0 || !strings.Contains(string(r.Data), "e2e@example.com") {
			t.Fatalf("createIdentity: %s %+v", r.Data, r.Errors)
		}

		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no exit 20s after SIGTERM")
		}
	})
}

func TestVersionAndBadConfig(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	if out, err := runCmd(t, bin, dir, os.Environ(), "version"); err != nil || !strings.HasPrefix(out, "identityd ") {
		t.Fatalf("version: %v %q", err, out)
	}
	cases := []struct{ env, want string }{
		{"SESSION_LIFESPAN=forever", "session.lifespan"},
		{"DSN=mysql://x", "dsn"},
		{"IDENTITY_SCHEMAS=not json", "identity.schemas"},
		{"IDENTITY_DEFAULT_SCHEMA_ID=missing", "identity.default_schema_id"},
		{"SERVE_ADDRESS=0.0.0.0:0", "admin.api_keys"},
	}
	for _, c := range cases {
		out, err := runCmd(t, bin, dir, append(os.Environ(), "DSN=sqlite://"+filepath.Join(dir, "x.db"), c.env), "serve")
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: err %v, output %q; want a failure naming %s", c.env, err, out, c.want)
		}
	}
}

func runCmd(t *testing.T, bin, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	return string(out), err
}
