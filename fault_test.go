package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/identityd/identityd/db/dbtest"
)

// proxy is a TCP relay in front of PostgreSQL that a test can take down and
// bring back, cutting every open connection, as a database restart does.
type proxy struct {
	t      *testing.T
	target string
	mu     sync.Mutex
	ln     net.Listener
	addr   string
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target}
	p.up("127.0.0.1:0")
	t.Cleanup(p.down)
	return p
}

func (p *proxy) up(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
}

// down stops listening and cuts every relayed connection.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestPostgresRestart takes the database away under a running server and
// brings it back: while it is gone requests fail cleanly (ready answers 503,
// GraphQL answers UNAVAILABLE, nothing internal); once it is back the same
// server recovers by itself, with no stale-connection error on the first
// requests and every acknowledged write still there.
func TestPostgresRestart(t *testing.T) {
	dsn := dbtest.NewPostgres(t)
	dbtest.Open(t, dsn)
	u, _ := url.Parse(dsn)
	p := newProxy(t, u.Host)
	u.Host = p.addr
	s := newTestServer(t, u.String(), nil)

	create := func(i int) *gqlResponse {
		return s.gql(t, testAdminKey, `mutation($t: JSON!) { createIdentity(input: {traits: $t}) { identity { id } userErrors { code } } }`,
			map[string]any{"t": map[string]any{"email": fmt.Sprintf("r%d@example.com", i)}})
	}
	// Warm the pool so dead connections are there to trip over.
	for i := range 8 {
		if r := create(i); len(r.Errors) > 0 {
			t.Fatalf("before: %+v", r.Errors)
		}
	}

	p.down()
	if code := httpStatus(t, s.URL+"/health/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("ready while down: %d, want 503", code)
	}
	r := create(100)
	if r.code(0) != "UNAVAILABLE" {
		t.Errorf("write while down: codes %v (%+v), want UNAVAILABLE", r.codes(), r.Errors)
	}
	for _, e := range r.Errors {
		if strings.Contains(e.Message, "dial") || strings.Contains(e.Message, "127.0.0.1") {
			t.Errorf("internal detail reached the client: %q", e.Message)
		}
	}

	p.up(p.addr)
	deadline := time.Now().Add(10 * time.Second)
	for httpStatus(t, s.URL+"/health/ready") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("not ready 10s after the database came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 8; i < 40; i++ {
		if r := create(i); len(r.Errors) > 0 {
			t.Fatalf("write %d after recovery: %+v", i, r.Errors)
		}
	}
	list := s.admin(t, `{ identities(first: 1000) { edges { node { traits } } } }`, nil)
	for i := range 40 {
		if !strings.Contains(string(list.Data), fmt.Sprintf(`"r%d@example.com"`, i)) {
			t.Errorf("acknowledged write r%d@example.com is missing", i)
		}
	}
}

func httpStatus(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
