package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/internal/password"
)

// BenchmarkWhoami measures the server's own cost of one whoami, through the
// whole HTTP handler but without a network, on each database: the CPU a
// load test's request costs the server process, without the load tool's
// share. On PostgreSQL the session cache answers once it is trusted.
//
//	go test -run '^$' -bench Whoami -benchmem -cpuprofile cpu.out .
func BenchmarkWhoami(b *testing.B) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": dbtest.NewSQLite, "postgres": dbtest.NewPostgres} {
		b.Run(name, func(b *testing.B) {
			s := newTestServer(b, dsn(b), nil)
			token := benchRegister(b, s)
			body := []byte(`{"query":"{ whoami { id identity { id traits } } }"}`)
			do := func() *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token)
				w := httptest.NewRecorder()
				s.app.handler.ServeHTTP(w, req)
				return w
			}
			if w := do(); !strings.Contains(w.Body.String(), `"whoami":{"id"`) {
				b.Fatalf("whoami: %s", w.Body)
			}
			time.Sleep(100 * time.Millisecond) // let the cache's first ping come back
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					do()
				}
			})
		})
	}
}

func benchRegister(b *testing.B, s *testServer) string {
	b.Helper()
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($in: RegisterInput!) { register(input: $in) { sessionToken userErrors { code } } }`,
		"variables": map[string]any{"in": map[string]any{"traits": map[string]any{"email": "bench@example.com"}, "password": pw1}},
	})
	resp, err := http.Post(s.URL+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Register struct{ SessionToken string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Data.Register.SessionToken == "" {
		b.Fatalf("register: %v", err)
	}
	return out.Data.Register.SessionToken
}

// BenchmarkListPage measures one page of 250 identities (the load tool's
// list query: no relations) through the whole HTTP handler, on each
// database: the server's own cost of a console's listing.
//
//	go test -run '^$' -bench ListPage -benchmem -cpuprofile cpu.out .
func BenchmarkListPage(b *testing.B) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": dbtest.NewSQLite, "postgres": dbtest.NewPostgres} {
		b.Run(name, func(b *testing.B) {
			s := newTestServer(b, dsn(b), nil)
			in := make([]map[string]any, 250)
			for i := range in {
				in[i] = map[string]any{"traits": map[string]any{"email": fmt.Sprintf("list-%d@example.com", i)}}
			}
			imp, _ := json.Marshal(map[string]any{
				"query":     `mutation($in: [CreateIdentityInput!]!) { importIdentities(input: $in) { results { userErrors { code } } } }`,
				"variables": map[string]any{"in": in},
			})
			if w := serve(s, imp); strings.Contains(w.Body.String(), `"code"`) || w.Code != http.StatusOK {
				b.Fatalf("import: %s", w.Body)
			}
			body := []byte(`{"query":"{ identities(first: 250) { edges { cursor node { id schemaId state traits createdAt updatedAt } } pageInfo { hasNextPage endCursor } } }"}`)
			if w := serve(s, body); strings.Count(w.Body.String(), `"cursor"`) != 250 {
				b.Fatalf("list: %.300s", w.Body)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				serve(s, body)
			}
		})
	}
}

// BenchmarkImportBatch measures one importIdentities call of 1,000
// identities with pre-hashed passwords (the load tool's import batch)
// through the whole HTTP handler, on each database, into a table that grows
// as the benchmark runs.
//
//	go test -run '^$' -bench ImportBatch -benchmem -cpuprofile cpu.out .
func BenchmarkImportBatch(b *testing.B) {
	hash, err := password.NewHasher(password.Params{Memory: 8 << 10, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 1).Hash(b.Context(), "a fine password 1")
	if err != nil {
		b.Fatal(err)
	}
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": dbtest.NewSQLite, "postgres": dbtest.NewPostgres} {
		b.Run(name, func(b *testing.B) {
			s := newTestServer(b, dsn(b), nil)
			n := 0
			batch := func() []byte {
				in := make([]map[string]any, 1000)
				for i := range in {
					n++
					in[i] = map[string]any{
						"traits":      map[string]any{"email": fmt.Sprintf("import-%d@example.com", n)},
						"credentials": map[string]any{"password": map[string]any{"hashedPassword": hash}},
					}
				}
				body, _ := json.Marshal(map[string]any{
					"query":     `mutation($in: [CreateIdentityInput!]!) { importIdentities(input: $in) { results { index identity { id } userErrors { code message path } } } }`,
					"variables": map[string]any{"in": in},
				})
				return body
			}
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				body := batch()
				b.StartTimer()
				if w := serve(s, body); strings.Contains(w.Body.String(), `"code"`) || w.Code != http.StatusOK {
					b.Fatalf("import: %.500s", w.Body)
				}
			}
		})
	}
}
