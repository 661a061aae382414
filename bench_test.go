package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/identityd/identityd/db/dbtest"
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
