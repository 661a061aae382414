package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/internal/courier"
	"github.com/identityd/identityd/model"
)

// smtpSink is a real SMTP server on loopback (emersion/go-smtp) that keeps
// what it receives: the courier talks to it as to any mail server.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	// mails in the order received.
	mails []*receivedMail
	// byID counts deliveries per courier message id (from Message-ID).
	byID map[string]int
	// refuse answers DATA with this error while refusals > 0 (each refusal
	// counts down), or always when refusals < 0.
	refuse   *smtp.SMTPError
	refusals int
	// user and pass, when set, are the only credentials AUTH PLAIN takes.
	user, pass string
	authed     int
}

type receivedMail struct {
	From   string
	To     []string
	Header mail.Header
	Text   string
	HTML   string
}

type sinkOptions struct {
	tls        bool
	user, pass string
	refuse     *smtp.SMTPError
	refusals   int
}

func newSMTPSink(t testing.TB, o sinkOptions) *smtpSink {
	t.Helper()
	sink := &smtpSink{byID: map[string]int{}, refuse: o.refuse, refusals: o.refusals, user: o.user, pass: o.pass}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: sink}, nil }))
	srv.Domain = "localhost"
	srv.ErrorLog = log0{}
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	if o.tls {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sink
}

type log0 struct{}

func (log0) Printf(string, ...any) {}
func (log0) Println(...any)        {}

// uri is the courier's connection URI for the sink.
func (s *smtpSink) uri() string {
	if s.user != "" {
		return fmt.Sprintf("smtp://%s:%s@%s/?skip_ssl_verify=true", url.QueryEscape(s.user), url.QueryEscape(s.pass), s.addr)
	}
	return "smtp://" + s.addr + "/?disable_starttls=true"
}

func (s *smtpSink) received() []*receivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*receivedMail(nil), s.mails...)
}

type sinkSession struct {
	sink *smtpSink
	from string
	to   []string
}

func (s *sinkSession) AuthMechanisms() []string {
	if s.sink.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.sink.user || pass != s.sink.pass {
			return errors.New("invalid credentials")
		}
		s.sink.mu.Lock()
		s.sink.authed++
		s.sink.mu.Unlock()
		return nil
	}), nil
}

func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error   { s.to = append(s.to, to); return nil }
func (s *sinkSession) Reset()                                      { s.from, s.to = "", nil }
func (s *sinkSession) Logout() error                               { return nil }

func (s *sinkSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	sink := s.sink
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.refuse != nil && sink.refusals != 0 {
		sink.refusals--
		return sink.refuse
	}
	if sink.user != "" && sink.authed == 0 {
		return &smtp.SMTPError{Code: 530, Message: "authentication required"}
	}
	m, err := parseMail(raw)
	if err != nil {
		return err
	}
	m.From, m.To = s.from, s.to
	sink.mails = append(sink.mails, m)
	id := strings.Trim(m.Header.Get("Message-Id"), "<>")
	id, _, _ = strings.Cut(id, "@")
	sink.byID[id]++
	return nil
}

// parseMail reads a MIME mail: its header, and its text and HTML parts
// (decoded from quoted-printable).
func parseMail(raw []byte) (*receivedMail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	out := &receivedMail{Header: msg.Header}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, _ := io.ReadAll(msg.Body)
		out.Text = string(b)
		return out, nil
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(p)
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			out.Text = string(b)
		case "text/html":
			out.HTML = string(b)
		}
	}
}

// selfSigned is a certificate for 127.0.0.1 that nobody trusts: the courier
// accepts it only with ?skip_ssl_verify=true.
func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sink"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// withSMTP points the courier at sink with fast retries.
func withSMTP(sink *smtpSink, change func(*Config)) func(*Config) {
	return func(c *Config) {
		c.Courier.SMTP.ConnectionURI = sink.uri()
		c.Courier.SMTP.FromAddress = "noreply@identityd.test"
		c.Courier.Worker.PullWait = Duration(50 * time.Millisecond)
		c.Courier.Worker.RetryBackoff = Duration(10 * time.Millisecond)
		if change != nil {
			change(c)
		}
	}
}

// queue composes messages with the built-in templates and puts them in the
// outbox of s, as a flow would.
func queue(t testing.TB, store *db.DB, via string, to ...string) []*model.CourierMessage {
	t.Helper()
	c, err := courier.New()
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*model.CourierMessage
	for i, addr := range to {
		data := map[string]any{"To": addr, "VerificationCode": fmt.Sprintf("%06d", 100000+i), "ExpiresInMinutes": 60}
		m, err := c.Compose(via, addr, courier.TemplateVerificationCode, data, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := store.EnqueueMessages(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// waitFor polls cond until it holds or 20 seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// courierMessage is a CourierMessage as the admin API answers it.
type courierMessageOut struct {
	ID           string  `json:"id"`
	Type         string  `json:"type"`
	Status       string  `json:"status"`
	Recipient    string  `json:"recipient"`
	Subject      *string `json:"subject"`
	Body         *string `json:"body"`
	HTMLBody     *string `json:"htmlBody"`
	TemplateType *string `json:"templateType"`
	SendCount    int     `json:"sendCount"`
	LastError    *string `json:"lastError"`
	CreatedAt    string  `json:"createdAt"`
	UpdatedAt    string  `json:"updatedAt"`
}

const courierMessageFields = `id type status recipient subject body htmlBody templateType sendCount lastError createdAt updatedAt`

func (s *testServer) courierMessage(t *testing.T, id string) *courierMessageOut {
	t.Helper()
	var out struct {
		CourierMessage *courierMessageOut `json:"courierMessage"`
	}
	s.admin(t, `query($id: UUID!) { courierMessage(id: $id) { `+courierMessageFields+` } }`, map[string]any{"id": id}).decode(t, &out)
	return out.CourierMessage
}

// waitStatus waits until message id has status.
func (s *testServer) waitStatus(t *testing.T, id, status string) *courierMessageOut {
	t.Helper()
	var m *courierMessageOut
	waitFor(t, "message "+id+" "+status, func() bool {
		m = s.courierMessage(t, id)
		return m != nil && m.Status == status
	})
	return m
}

// TestCourierDeliversEmail: a queued email reaches a real SMTP server with
// its subject, plain-text and HTML parts, the From name and the configured
// headers, and is SENT after one attempt.
func TestCourierDeliversEmail(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		sink := newSMTPSink(t, sinkOptions{})
		s := newTestServer(t, dsn, withSMTP(sink, func(c *Config) {
			c.Courier.SMTP.FromName = "Identity Team"
			c.Courier.SMTP.Headers = map[string]string{"X-Campaign": "verify"}
			c.Courier.Worker.PullWait = Duration(time.Hour) // sent because it was queued here, not by polling
		}))
		msg := queue(t, s.app.store, model.ViaEmail, "Alice@example.com")[0]
		waitFor(t, "the mail", func() bool { return len(sink.received()) == 1 })
		got := sink.received()[0]
		if got.From != "noreply@identityd.test" || len(got.To) != 1 || got.To[0] != "Alice@example.com" {
			t.Errorf("envelope from %q to %q", got.From, got.To)
		}
		from, err := got.Header.AddressList("From")
		if err != nil || len(from) != 1 || from[0].Name != "Identity Team" || from[0].Address != "noreply@identityd.test" {
			t.Errorf("From = %q (%v)", got.Header.Get("From"), err)
		}
		if got.Header.Get("Subject") != "Please verify your email address" || got.Header.Get("X-Campaign") != "verify" {
			t.Errorf("header: %v", got.Header)
		}
		if !strings.Contains(got.Text, "100000") || !strings.Contains(got.HTML, "<strong>100000</strong>") {
			t.Errorf("text %q, html %q", got.Text, got.HTML)
		}
		if id := got.Header.Get("Message-Id"); !strings.HasPrefix(id, "<"+msg.ID.String()+"@") {
			t.Errorf("Message-ID %q does not carry the message id %s", id, msg.ID)
		}
		m := s.waitStatus(t, msg.ID.String(), "SENT")
		if m.SendCount != 1 || m.LastError != nil || m.Type != "EMAIL" {
			t.Errorf("after delivery: %+v", m)
		}
	})
}

// TestCourierSMTPAuthOverSTARTTLS: smtp://user:pass@… upgrades with
// STARTTLS (required by default), accepts the self-signed certificate only
// because of ?skip_ssl_verify=true, and authenticates.
func TestCourierSMTPAuthOverSTARTTLS(t *testing.T) {
	sink := newSMTPSink(t, sinkOptions{tls: true, user: "mailer", pass: "p@ss:w/rd"})
	s := newTestServer(t, dbtest.NewSQLite(t), withSMTP(sink, nil))
	msg := queue(t, s.app.store, model.ViaEmail, "bob@example.com")[0]
	s.waitStatus(t, msg.ID.String(), "SENT")
	sink.mu.Lock()
	authed := sink.authed
	sink.mu.Unlock()
	if len(sink.received()) != 1 || authed == 0 {
		t.Fatalf("received %d mails after %d logins", len(sink.received()), authed)
	}

	// Without skip_ssl_verify the certificate is refused: the message is
	// retried, and the error names no password.
	bad := newTestServer(t, dbtest.NewSQLite(t), withSMTP(sink, func(c *Config) {
		c.Courier.SMTP.ConnectionURI = strings.Replace(sink.uri(), "?skip_ssl_verify=true", "", 1)
		c.Courier.MessageRetries = 0
	}))
	msg = queue(t, bad.app.store, model.ViaEmail, "carol@example.com")[0]
	m := bad.waitStatus(t, msg.ID.String(), "ABANDONED")
	if m.LastError == nil || !strings.Contains(*m.LastError, "certificate") || strings.Contains(*m.LastError, "p@ss") || strings.Contains(*m.LastError, url.QueryEscape("p@ss:w/rd")) {
		t.Errorf("lastError = %v", m.LastError)
	}
}

// TestCourierRetriesThenSends: a server that refuses twice (451) gets the
// message on the third attempt: SENT, sendCount 3, the last error kept.
func TestCourierRetriesThenSends(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		sink := newSMTPSink(t, sinkOptions{refuse: &smtp.SMTPError{Code: 451, Message: "greylisted, try later"}, refusals: 2})
		s := newTestServer(t, dsn, withSMTP(sink, nil))
		msg := queue(t, s.app.store, model.ViaEmail, "dave@example.com")[0]
		m := s.waitStatus(t, msg.ID.String(), "SENT")
		if m.SendCount != 3 || m.LastError == nil || !strings.Contains(*m.LastError, "greylisted") {
			t.Errorf("after two refusals: %+v", m)
		}
		if n := len(sink.received()); n != 1 {
			t.Errorf("received %d mails, want 1", n)
		}
	})
}

// TestCourierAbandons: after courier.message_retries failed retries the
// message is ABANDONED (retries + 1 attempts); an SMTP 5xx answer abandons
// at once. Errors never carry the password of the connection URI.
func TestCourierAbandons(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		// Nothing listens on the port: every attempt fails.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		_ = ln.Close()
		s := newTestServer(t, dsn, func(c *Config) {
			c.Courier.SMTP.ConnectionURI = "smtp://mailer:s3cret-Pass@" + addr + "/"
			c.Courier.SMTP.FromAddress = "noreply@identityd.test"
			c.Courier.MessageRetries = 2
			c.Courier.Worker.PullWait = Duration(20 * time.Millisecond)
			c.Courier.Worker.RetryBackoff = Duration(5 * time.Millisecond)
		})
		msg := queue(t, s.app.store, model.ViaEmail, "erin@example.com")[0]
		m := s.waitStatus(t, msg.ID.String(), "ABANDONED")
		if m.SendCount != 3 || m.LastError == nil || !strings.Contains(*m.LastError, "connect") {
			t.Errorf("abandoned: %+v", m)
		}
		if strings.Contains(*m.LastError, "s3cret") {
			t.Errorf("lastError holds the password: %q", *m.LastError)
		}

		// A database of its own: on the first one, the first server's
		// worker (still failing against the dead port) could claim this
		// message before the second server's.
		fresh := dbtest.NewSQLite(t)
		if strings.HasPrefix(dsn, "postgres") {
			fresh = dbtest.NewPostgres(t)
		}
		sink := newSMTPSink(t, sinkOptions{refuse: &smtp.SMTPError{Code: 550, Message: "no such user"}, refusals: -1})
		perm := newTestServer(t, fresh, withSMTP(sink, nil))
		msg = queue(t, perm.app.store, model.ViaEmail, "nobody@example.com")[0]
		m = perm.waitStatus(t, msg.ID.String(), "ABANDONED")
		if m.SendCount != 1 || !strings.Contains(*m.LastError, "550") {
			t.Errorf("after a 550: %+v", m)
		}
	})
}

// TestCourierNoDoubleSendPostgres: two workers in two "processes" (each its
// own connection pool) race over many messages on one PostgreSQL: every
// message is delivered exactly once.
func TestCourierNoDoubleSendPostgres(t *testing.T) {
	dsn := dbtest.NewPostgres(t)
	first := dbtest.Open(t, dsn)
	sink := newSMTPSink(t, sinkOptions{})
	var to []string
	for i := range 600 {
		to = append(to, fmt.Sprintf("user%d@example.com", i))
	}
	msgs := queue(t, first, model.ViaEmail, to...)
	cfg := courier.Config{
		SMTP:           courier.SMTPConfig{ConnectionURI: sink.uri(), FromAddress: "noreply@identityd.test"},
		MessageRetries: 5,
		Worker:         courier.WorkerConfig{PullCount: 10, PullWait: 10 * time.Millisecond},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 2 {
		store := first
		if i > 0 {
			store = dbtest.Open(t, dsn)
		}
		w, err := courier.NewWorker(store, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { w.Run(ctx) })
	}
	waitFor(t, "every mail", func() bool { return len(sink.received()) >= len(msgs) })
	time.Sleep(100 * time.Millisecond) // a double would arrive now
	cancel()
	wg.Wait()
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.mails) != len(msgs) {
		t.Errorf("received %d mails for %d messages", len(sink.mails), len(msgs))
	}
	for _, m := range msgs {
		if n := sink.byID[m.ID.String()]; n != 1 {
			t.Errorf("message %s delivered %d times", m.ID, n)
		}
	}
	left, _, err := first.ListMessages(context.Background(), db.CourierMessageFilter{Status: model.MessageSent}, uuid.Nil, 1000)
	if err != nil || len(left) != len(msgs) {
		t.Errorf("%d messages SENT (%v), want %d", len(left), err, len(msgs))
	}
}

// TestCourierQueuedSurvivesRestart: with no SMTP server messages stay
// QUEUED, untried (not abandoned); a new server on the same database with
// one delivers them.
func TestCourierQueuedSurvivesRestart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		before := newTestServer(t, dsn, func(c *Config) { c.Courier.Worker.PullWait = Duration(10 * time.Millisecond) })
		msgs := queue(t, before.app.store, model.ViaEmail, "f1@example.com", "f2@example.com")
		sms := queue(t, before.app.store, model.ViaSMS, "+14155552671")[0]
		time.Sleep(100 * time.Millisecond)
		for _, m := range append(msgs, sms) {
			if got := before.courierMessage(t, m.ID.String()); got.Status != "QUEUED" || got.SendCount != 0 {
				t.Errorf("without a channel: %+v", got)
			}
		}
		_ = before.app.Close()

		sink := newSMTPSink(t, sinkOptions{})
		after := newTestServer(t, dsn, withSMTP(sink, nil))
		for _, m := range msgs {
			after.waitStatus(t, m.ID.String(), "SENT")
		}
		if got := after.courierMessage(t, sms.ID.String()); got.Status != "QUEUED" {
			t.Errorf("SMS without an SMS channel: %+v", got)
		}
		if n := len(sink.received()); n != 2 {
			t.Errorf("received %d mails, want 2", n)
		}
	})
}

// TestCourierSMSOverHTTP: an SMS goes out as Kratos's HTTP channel sends it:
// the Jsonnet body from a file gets ctx (recipient, body, template_type,
// template_data, message_type), with basic auth; a form-encoded channel with
// an API key works too, and a refusal is retried.
func TestCourierSMSOverHTTP(t *testing.T) {
	type request struct {
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	var got []request
	fail := 1
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if fail > 0 {
			fail--
			http.Error(w, "busy, and here is your message: "+string(b), http.StatusServiceUnavailable)
			return
		}
		got = append(got, request{r.Header.Clone(), b})
	}))
	defer gateway.Close()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "sms.jsonnet")
	if err := os.WriteFile(tmpl, []byte(`function(ctx) {
  To: ctx.recipient,
  Body: ctx.body,
  Type: ctx.template_type,
  Code: ctx.template_data.verification_code,
  Kind: ctx.message_type,
}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, dbtest.NewSQLite(t), func(c *Config) {
		c.Courier.Worker.PullWait = Duration(20 * time.Millisecond)
		c.Courier.Worker.RetryBackoff = Duration(5 * time.Millisecond)
		c.Courier.Channels = []courier.Channel{{ID: "sms", Type: "http", RequestConfig: courier.RequestConfig{
			URL: gateway.URL + "/send", Body: "file://" + tmpl,
			Auth: courier.AuthConfig{Type: "basic_auth", Config: map[string]string{"user": "AC123", "password": "tw-secret"}},
		}}}
	})
	msg := queue(t, s.app.store, model.ViaSMS, "+14155552671")[0]
	m := s.waitStatus(t, msg.ID.String(), "SENT")
	if m.SendCount != 2 || m.Type != "SMS" || m.Subject != nil || m.LastError == nil ||
		!strings.Contains(*m.LastError, "503") || strings.Contains(*m.LastError, "100000") {
		t.Errorf("after one refusal: %+v (the error must not repeat the gateway's body)", m)
	}
	mu.Lock()
	req := got[0]
	mu.Unlock()
	if u, p, ok := (&http.Request{Header: req.header}).BasicAuth(); !ok || u != "AC123" || p != "tw-secret" {
		t.Errorf("basic auth = %q %q %v", u, p, ok)
	}
	var body map[string]string
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatalf("body %s: %v", req.body, err)
	}
	want := map[string]string{"To": "+14155552671", "Body": "Your verification code is: 100000", "Type": "verification_code_valid", "Code": "100000", "Kind": "sms"}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("body.%s = %q, want %q", k, body[k], v)
		}
	}
	if ct := req.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}

	// A form body (Twilio's), a base64 template, an API key header.
	form := newTestServer(t, dbtest.NewSQLite(t), func(c *Config) {
		c.Courier.Worker.PullWait = Duration(20 * time.Millisecond)
		c.Courier.Channels = []courier.Channel{{ID: "sms", Type: "http", RequestConfig: courier.RequestConfig{
			URL: gateway.URL + "/form", Method: "POST",
			Headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			Body:    "base64://" + base64.StdEncoding.EncodeToString([]byte(`function(ctx) { To: ctx.recipient, Body: ctx.body }`)),
			Auth:    courier.AuthConfig{Type: "api_key", Config: map[string]string{"in": "header", "name": "X-API-Key", "value": "k-123"}},
		}}}
	})
	msg = queue(t, form.app.store, model.ViaSMS, "+14155550000")[0]
	form.waitStatus(t, msg.ID.String(), "SENT")
	mu.Lock()
	req = got[len(got)-1]
	mu.Unlock()
	vals, _ := url.ParseQuery(string(req.body))
	if req.header.Get("X-API-Key") != "k-123" || vals.Get("To") != "+14155550000" || vals.Get("Body") != "Your verification code is: 100000" {
		t.Errorf("form request: %v %q", req.header, req.body)
	}
}

// TestCourierTemplateOverride: a file in courier.template_override_path in
// Kratos's layout replaces the built-in one (sprig functions work), the
// others stay built in; a file that does not parse stops the start, named.
func TestCourierTemplateOverride(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "verification_code", "valid")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "email.subject.gotmpl"), []byte(`{{ upper "verify" }} {{ .To | trunc 5 }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	sink := newSMTPSink(t, sinkOptions{})
	s := newTestServer(t, dbtest.NewSQLite(t), withSMTP(sink, func(c *Config) { c.Courier.TemplateOverridePath = dir }))
	m, err := s.app.templates.Compose(model.ViaEmail, "grace@example.com", courier.TemplateVerificationCode,
		map[string]any{"To": "grace@example.com", "VerificationCode": "424242", "ExpiresInMinutes": 60}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.app.store.EnqueueMessages(context.Background(), []*model.CourierMessage{m}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the mail", func() bool { return len(sink.received()) == 1 })
	if got := sink.received()[0]; got.Header.Get("Subject") != "VERIFY grace" || !strings.Contains(got.Text, "424242") {
		t.Errorf("subject %q, text %q", got.Header.Get("Subject"), got.Text)
	}

	broken := filepath.Join(sub, "email.body.gotmpl")
	if err := os.WriteFile(broken, []byte(`<p>{{ .VerificationCode </p>`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"serve"}, &out, &errOut, envOf(map[string]string{
		"DSN": "sqlite://" + filepath.Join(t.TempDir(), "identity.db"), "SERVE_ADDRESS": "127.0.0.1:0",
		"ADMIN_API_KEYS": testAdminKey, "COURIER_TEMPLATE_OVERRIDE_PATH": dir, "GOGC": "100", "GOMEMLIMIT": "off",
	}))
	if code == 0 || !strings.Contains(errOut.String(), broken) {
		t.Errorf("serve with a broken override: exit %d, stderr %q; want a failure naming %s", code, errOut.String(), broken)
	}
}

// TestCourierAdminAPI: courierMessages lists newest first with keyset pages
// and filters, courierMessage reads one (null when unknown), and neither is
// open to anyone but an admin.
func TestCourierAdminAPI(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testServer) {
		a := queue(t, s.app.store, model.ViaEmail, "list-a@example.com", "list-b@example.com", "list-a@example.com")
		sms := queue(t, s.app.store, model.ViaSMS, "+14155559999")[0]
		type page struct {
			CourierMessages struct {
				Edges []struct {
					Cursor string            `json:"cursor"`
					Node   courierMessageOut `json:"node"`
				} `json:"edges"`
				PageInfo struct {
					HasNextPage bool   `json:"hasNextPage"`
					EndCursor   string `json:"endCursor"`
				} `json:"pageInfo"`
				TotalCount *int `json:"totalCount"`
			} `json:"courierMessages"`
		}
		const q = `query($first: Int, $after: String, $filter: CourierMessageFilter) {
			courierMessages(first: $first, after: $after, filter: $filter) {
				edges { cursor node { ` + courierMessageFields + ` } } pageInfo { hasNextPage endCursor } totalCount } }`
		var p page
		s.admin(t, q, map[string]any{"first": 2, "filter": map[string]any{"recipient": "LIST-A@example.com", "status": "QUEUED"}}).decode(t, &p)
		c := p.CourierMessages
		if len(c.Edges) != 2 || c.Edges[0].Node.ID != a[2].ID.String() || c.Edges[1].Node.ID != a[0].ID.String() || c.PageInfo.HasNextPage ||
			c.TotalCount == nil || *c.TotalCount != 2 {
			t.Fatalf("by recipient: %+v", c)
		}
		n := c.Edges[0].Node
		if n.Type != "EMAIL" || n.Status != "QUEUED" || n.Subject == nil || n.Body == nil || !strings.Contains(*n.Body, "100002") ||
			n.HTMLBody == nil || n.TemplateType == nil || *n.TemplateType != "verification_code" || n.LastError != nil || n.SendCount != 0 {
			t.Errorf("node: %+v", n)
		}
		p = page{}
		s.admin(t, q, map[string]any{"first": 1}).decode(t, &p)
		if len(p.CourierMessages.Edges) != 1 || p.CourierMessages.Edges[0].Node.ID != sms.ID.String() || !p.CourierMessages.PageInfo.HasNextPage {
			t.Fatalf("first page: %+v", p.CourierMessages)
		}
		if m := p.CourierMessages.Edges[0].Node; m.Type != "SMS" || m.Subject != nil || m.HTMLBody != nil {
			t.Errorf("SMS node: %+v", m)
		}
		p2 := page{}
		s.admin(t, q, map[string]any{"first": 1, "after": p.CourierMessages.PageInfo.EndCursor}).decode(t, &p2)
		if len(p2.CourierMessages.Edges) != 1 || p2.CourierMessages.Edges[0].Node.ID != a[2].ID.String() {
			t.Errorf("second page: %+v", p2.CourierMessages)
		}
		if m := s.courierMessage(t, a[1].ID.String()); m == nil || m.Recipient != "list-b@example.com" {
			t.Errorf("courierMessage = %+v", m)
		}
		if m := s.courierMessage(t, "0192f5e0-0000-7000-8000-000000000000"); m != nil {
			t.Errorf("unknown id: %+v, want null", m)
		}
		if r := s.gql(t, testAdminKey, `{ courierMessages(after: "nope") { edges { cursor } } }`, nil); r.code(0) != "BAD_USER_INPUT" {
			t.Errorf("bad cursor: %v", r.codes())
		}

		token, _ := s.mustRegister(t, "not-admin@example.com", "correct horse battery staple")
		for _, c := range []struct{ token, want string }{{"", "UNAUTHENTICATED"}, {token, "FORBIDDEN"}} {
			for _, query := range []string{`{ courierMessages { edges { node { body } } } }`, `query($id: UUID!) { courierMessage(id: $id) { body } }`} {
				r := s.gql(t, c.token, query, map[string]any{"id": a[0].ID.String()})
				if r.code(0) != c.want || strings.Contains(string(r.Data), "100000") {
					t.Errorf("%q as %q: codes %v, data %s; want %s and no body", query, c.want, r.codes(), r.Data, c.want)
				}
			}
		}
	})
}

// TestCourierBanner: with no SMTP server the start-up banner says emails
// stay queued and how to read them; with one, where they go (no password).
func TestCourierBanner(t *testing.T) {
	out, _ := serveBanner(t, nil)
	if line := bannerLine(out, "emails stay queued"); line == "" || !strings.Contains(out, "courierMessages") {
		t.Errorf("banner without SMTP:\n%s", out)
	}
	out, _ = serveBanner(t, map[string]string{"COURIER_SMTP_CONNECTION_URI": "smtp://u:hunter22@127.0.0.1:2525/?disable_starttls=true",
		"COURIER_SMTP_FROM_ADDRESS": "noreply@identityd.test", "COURIER_WORKER_ENABLED": "false"})
	if line := bannerLine(out, "emails go to"); !strings.Contains(line, "127.0.0.1:2525") || strings.Contains(out, "hunter22") ||
		bannerLine(out, "courier watch") == "" {
		t.Errorf("banner with SMTP, worker off:\n%s", out)
	}
}

// TestCourierWatch: `identityd courier watch` delivers what serve queued
// (here: a server whose own worker is off), then stops cleanly.
func TestCourierWatch(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "identity.db")
	sink := newSMTPSink(t, sinkOptions{})
	s := newTestServer(t, dsn, withSMTP(sink, func(c *Config) { c.Courier.Worker.Enabled = false }))
	msg := queue(t, s.app.store, model.ViaEmail, "henry@example.com")[0]
	time.Sleep(100 * time.Millisecond)
	if len(sink.received()) != 0 {
		t.Fatal("serve delivered with courier.worker.enabled: false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"courier", "watch"}, &out, &errOut, envOf(map[string]string{
			"DSN": dsn, "COURIER_SMTP_CONNECTION_URI": sink.uri(), "COURIER_SMTP_FROM_ADDRESS": "noreply@identityd.test",
			"COURIER_WORKER_PULL_WAIT": "20ms", "GOGC": "100", "GOMEMLIMIT": "off",
		}))
	}()
	s.waitStatus(t, msg.ID.String(), "SENT")
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("courier watch exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "emails go to smtp://127.0.0.1") {
		t.Errorf("courier watch printed %q", out.String())
	}
}

// BenchmarkCourierDelivery measures mails delivered per second by one worker
// to an SMTP server on loopback, claim to SENT, on each database.
func BenchmarkCourierDelivery(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			dsn := dbtest.NewSQLite(b)
			if engine == "postgres" {
				dsn = dbtest.NewPostgres(b)
			}
			store := dbtest.Open(b, dsn)
			sink := newSMTPSink(b, sinkOptions{})
			w, err := courier.NewWorker(store, courier.Config{
				SMTP:           courier.SMTPConfig{ConnectionURI: sink.uri(), FromAddress: "noreply@identityd.test"},
				MessageRetries: 5,
				Worker:         courier.WorkerConfig{PullCount: 100},
			}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			const n = 2000
			to := make([]string, n)
			for i := range to {
				to[i] = fmt.Sprintf("bench%d@example.com", i)
			}
			var elapsed time.Duration
			rounds := 0
			for b.Loop() {
				rounds++
				b.StopTimer()
				queue(b, store, model.ViaEmail, to...)
				b.StartTimer()
				start := time.Now()
				for sent := 0; sent < n; {
					k, err := w.DeliverBatch(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					sent += k
				}
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(n*rounds)/elapsed.Seconds(), "mails/s")
		})
	}
}

// TestCourierConfig: a Kratos courier section loads unchanged (channels,
// SMTP with headers, worker keys), env overrides work, and mistakes are
// refused naming the key.
func TestCourierConfig(t *testing.T) {
	dir := t.TempDir()
	body := filepath.Join(dir, "twilio.jsonnet")
	if err := os.WriteFile(body, []byte(`function(ctx) { To: ctx.recipient, Body: ctx.body }`), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(file, []byte(`
courier:
  smtp:
    connection_uri: smtps://test:test@mailslurper:1025/?skip_ssl_verify=true
    from_address: no-reply@ory.kratos.sh
    from_name: Ory
    headers:
      X-SES-SOURCE-ARN: arn:aws:ses:us-west-2:123456789012:identity/example.com
  template_override_path: `+dir+`
  message_retries: 3
  worker:
    pull_count: 10
    pull_wait: 2s
  channels:
    - id: sms
      type: http
      request_config:
        url: https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json
        method: POST
        body: file://`+body+`
        headers:
          Content-Type: application/x-www-form-urlencoded
        auth:
          type: basic_auth
          config:
            user: AC123
            password: secret
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(file, envOf(map[string]string{"COURIER_WORKER_ENABLED": "false"}))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Courier
	if c.SMTP.FromName != "Ory" || c.SMTP.Headers["X-SES-SOURCE-ARN"] == "" || c.MessageRetries != 3 || c.Worker.PullCount != 10 ||
		c.Worker.PullWait != Duration(2*time.Second) || c.Worker.Enabled || len(c.Channels) != 1 ||
		c.Channels[0].RequestConfig.Auth.Config["password"] != "secret" || c.TemplateOverridePath != dir {
		t.Errorf("courier = %+v", c)
	}
	w, err := courier.NewWorker(dbtest.Open(t, dbtest.NewSQLite(t)), c.delivery(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !w.Delivers(model.ViaSMS) || !w.Delivers(model.ViaEmail) || w.EmailRoute() != "smtps://test:xxxxx@mailslurper:1025/?skip_ssl_verify=true" {
		t.Errorf("worker routes: email %q, sms %q", w.EmailRoute(), w.SMSRoute())
	}

	for env, want := range map[string]string{
		"COURIER_SMTP_CONNECTION_URI=ftp://x/":                   "courier.smtp.connection_uri",
		"COURIER_SMTP_CONNECTION_URI=smtp://x/":                  "courier.smtp.from_address",
		"COURIER_MESSAGE_RETRIES=-1":                             "courier.message_retries",
		"COURIER_WORKER_PULL_COUNT=0":                            "courier.worker.pull_count",
		"COURIER_WORKER_PULL_WAIT=soon":                          "courier.worker.pull_wait",
		`COURIER_CHANNELS=[{"id":"sms","type":"http","nope":1}]`: "courier.channels",
	} {
		k, v, _ := strings.Cut(env, "=")
		if _, err := loadConfig("", envOf(map[string]string{k: v})); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want an error naming %s", env, err, want)
		}
	}
	cfg, err = loadConfig("", envOf(map[string]string{"COURIER_CHANNELS": `[{"id":"sms","type":"http","request_config":{"url":"https://gw/","body":"base64://e30="}}]`}))
	if err != nil || len(cfg.Courier.Channels) != 1 || cfg.Courier.Channels[0].RequestConfig.URL != "https://gw/" {
		t.Errorf("COURIER_CHANNELS: %+v, %v", cfg.Courier.Channels, err)
	}
	// A channel that cannot work stops the start, naming the key.
	bad := defaultConfig()
	bad.DSN = dbtest.NewSQLite(t)
	bad.Admin.APIKeys = []string{testAdminKey}
	bad.Courier.Channels = []courier.Channel{{ID: "sms", Type: "http", RequestConfig: courier.RequestConfig{URL: "https://gw/", Body: "file:///nope.jsonnet"}}}
	if _, err := newApp(context.Background(), bad, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "courier.channels[0].request_config.body") {
		t.Errorf("a channel without its template: %v", err)
	}
}

// TestCourierWakesOnTransactionalWrite: a message queued inside an identity
// write's transaction goes out at once (the worker is woken, and looks again
// shortly when the transaction had not committed yet), not at the next
// poll.
func TestCourierWakesOnTransactionalWrite(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		sink := newSMTPSink(t, sinkOptions{})
		s := newTestServer(t, dsn, withSMTP(sink, func(c *Config) { c.Courier.Worker.PullWait = Duration(time.Hour) }))
		tmpl, err := courier.New()
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		email := "wake@example.com"
		m, err := tmpl.Compose(model.ViaEmail, email, courier.TemplateVerificationCode,
			map[string]any{"To": email, "VerificationCode": "314159", "ExpiresInMinutes": 60}, now)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.app.store.CreateIdentity(context.Background(), &db.IdentityWrite{
			Identity: &model.Identity{ID: uuid.Must(uuid.NewV7()), SchemaID: "default", State: model.IdentityStateActive,
				Traits: model.JSON(`{"email":"` + email + `"}`), CreatedAt: now, UpdatedAt: now},
			Identifiers: []db.Identifier{{Type: "password", Value: email, Path: "/traits/email"}},
			Messages:    []*model.CourierMessage{m},
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitFor(t, "the mail", func() bool { return len(sink.received()) == 1 })
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the mail took %s", d)
		}
	})
}
