package schemas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/identityd/identityd/model"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// golden compares got, as indented JSON, with testdata/golden/name.json.
func golden(t *testing.T, name string, got any) {
	t.Helper()
	data, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, '\n')
	path := filepath.Join("testdata", "golden", filepath.FromSlash(name)+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./schemas -update to create it)", err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("differs from %s (run with -update after checking):\ngot:\n%s\nwant:\n%s", path, data, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// offline is an HTTP client that fails the test on any request: loading a
// schema must not reach the network unless the schema's url says so.
func offline(t testing.TB) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("unexpected request to %s", r.URL)
		return nil, errors.New("no network in this test")
	})}
}

// schemaAt loads the one schema at url, offline.
func schemaAt(t testing.TB, url string) *Schema {
	t.Helper()
	r, err := NewRegistry(context.Background(), "test", []Source{{ID: "test", URL: url}}, Options{HTTPClient: offline(t)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Get("test")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// violation is an error as the tests read it.
type violation struct {
	Code    model.ErrorCode
	Path    string
	Message string
}

// violationsIn returns the VALIDATION_FAILED errors in err, failing the test
// when err holds anything else.
func violationsIn(t *testing.T, err error) []violation {
	t.Helper()
	if err == nil {
		return nil
	}
	var es model.Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %T %v, want model.Errors", err, err)
	}
	out := make([]violation, len(es))
	for i, e := range es {
		if e.Code != model.CodeValidationFailed {
			t.Errorf("code %s, want %s", e.Code, model.CodeValidationFailed)
		}
		out[i] = violation{e.Code, e.Path, e.Message}
	}
	return out
}
