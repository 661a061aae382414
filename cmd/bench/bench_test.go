package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/identityd/identityd/db/dbtest"
)

// serverBin is the identityd binary, built once for every subtest.
var serverBin struct {
	once sync.Once
	path string
	err  error
}

// TestSmoke runs the tool in process, as CI would (-start -smoke), on each
// database and checks only that it finishes without a failed request and
// reports every scenario. It asserts nothing about speed: the figures of a
// one-second run on a shared CI machine mean nothing.
func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			serverBin.once.Do(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				serverBin.path, serverBin.err = buildServer(ctx, dir)
			})
			if serverBin.err != nil {
				t.Fatal(serverBin.err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out := filepath.Join(t.TempDir(), "bench.md")
			args := []string{"-start", "-smoke", "-db", kind, "-bin", serverBin.path, "-pg", dbtest.PostgresAdminDSN(), "-out", out}
			var stdout, stderr bytes.Buffer
			if err := run(ctx, args, &stdout, &stderr); err != nil {
				t.Fatalf("bench %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
			}
			md, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := stdout.String(); got != string(md) {
				t.Errorf("-out differs from what was printed")
			}
			for _, s := range allScenarios {
				prefix := "| " + s + " "
				if s == "flood" {
					prefix = "| whoami + 8 logins "
				}
				found := false
				for _, line := range strings.Split(string(md), "\n") {
					if !strings.HasPrefix(line, prefix) || strings.Contains(line, "errors http/gql/user") {
						continue
					}
					found = true
					if !strings.Contains(line, " | 0/0/0 | ") {
						t.Errorf("row with errors: %s", line)
					}
				}
				if !found {
					t.Errorf("no %q row in the report:\n%s", s, md)
				}
			}
			for _, floor := range []string{"- read floor, c=4:", "- hash floor:"} {
				if !strings.Contains(string(md), floor) {
					t.Errorf("no %q line in the report:\n%s", floor, md)
				}
			}
		})
	}
}

// TestQuoteCommand checks that the admin key never reaches the report.
func TestQuoteCommand(t *testing.T) {
	for _, tc := range []struct{ args []string }{
		{[]string{"-target", "http://x", "-admin-key", "secret-key-1234567"}},
		{[]string{"-target", "http://x", "-admin-key=secret-key-1234567"}},
		{[]string{"-target", "http://x", "--admin-key", "secret-key-1234567"}},
	} {
		if got := quoteCommand(tc.args); strings.Contains(got, "secret") {
			t.Errorf("quoteCommand(%q) = %q, shows the key", tc.args, got)
		}
	}
}

// TestClassify pins how answers are counted.
func TestClassify(t *testing.T) {
	expect := []byte(`"identity":{"id":`)
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   counts
	}{
		{"success", 200, `{"data":{"createIdentity":{"identity":{"id":"x"},"userErrors":[]}}}`, counts{}},
		{"http", 500, `oops`, counts{HTTP: 1}},
		{"graphql", 200, `{"errors":[{"message":"no"}],"data":null}`, counts{GraphQL: 1}},
		{"wrong shape", 200, `{"data":{"createIdentity":{"identity":null,"userErrors":[]}}}`, counts{GraphQL: 1}},
		{"user errors", 200, `{"data":{"createIdentity":{"identity":null,"userErrors":[{"code":"IDENTIFIER_TAKEN"}]}}}`, counts{UserErrors: 1}},
	} {
		if got := classify(tc.status, nil, []byte(tc.body), expect); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	imp := `{"data":{"importIdentities":{"results":[{"index":0,"userErrors":[]},{"index":1,"userErrors":[{"code":"X"}]},{"index":2,"userErrors":[{"code":"Y"}]}]}}}`
	if got, want := classify(200, nil, []byte(imp), []byte(`"results":[`)), (counts{UserErrors: 2}); got != want {
		t.Errorf("import: got %+v, want %+v", got, want)
	}
}
