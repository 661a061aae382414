package courier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/identityd/identityd/model"
)

// SMTPConfig is courier.smtp, under Kratos's key names.
type SMTPConfig struct {
	// ConnectionURI is smtp://[user:password@]host[:port]/ (STARTTLS
	// required unless ?disable_starttls=true) or smtps://… (TLS from the
	// first byte); ?skip_ssl_verify=true accepts any certificate and
	// ?server_name= names the one expected. Empty: no SMTP server.
	ConnectionURI string
	FromAddress   string
	FromName      string
	// Headers are added to every email (X-SES-CONFIGURATION-SET, …).
	Headers map[string]string
	// LocalName is the name said in HELO/EHLO; the host name when empty.
	LocalName string
}

// smtpTimeout bounds each step of an SMTP exchange (connect, a command, the
// data), as Kratos does.
const smtpTimeout = 10 * time.Second

// SMTP sends email over SMTP with wneessen/go-mail: it speaks STARTTLS and
// implicit TLS (smtps), authenticates with the best mechanism the server
// offers (never a clear-text password over an unencrypted connection),
// writes multipart/alternative messages (plain text and HTML), and sends a
// whole batch over one connection. net/smtp does none of the MIME work and
// is frozen.
type SMTP struct {
	opts     []gomail.Option
	host     string
	from     string
	fromName string
	headers  map[string]string
	// redacted is the connection URI without its password, for the banner
	// and logs; secrets are what scrub removes from any error.
	redacted string
	secrets  []string
}

// NewSMTP checks cfg and prepares a sender; it connects to nothing yet.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	u, err := url.Parse(cfg.ConnectionURI)
	if err != nil {
		return nil, errors.New("courier.smtp.connection_uri: not a URL like smtp://user:password@host:587/")
	}
	s := &SMTP{host: u.Hostname(), from: cfg.FromAddress, fromName: cfg.FromName, headers: cfg.Headers}
	s.redacted = u.Redacted()
	if u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s.secrets = append(s.secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	if s.host == "" {
		return nil, fmt.Errorf("courier.smtp.connection_uri: %s names no host", s.redacted)
	}
	q := u.Query()
	flag := func(name string) (bool, error) {
		v := q.Get(name)
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("courier.smtp.connection_uri: %s=%q is not true or false", name, v)
		}
		return b, nil
	}
	skipVerify, err := flag("skip_ssl_verify")
	if err != nil {
		return nil, err
	}
	noStartTLS, err := flag("disable_starttls")
	if err != nil {
		return nil, err
	}
	serverName := q.Get("server_name")
	if serverName == "" {
		serverName = s.host
	}
	//nolint:gosec // skip_ssl_verify is the operator's explicit choice, off by default (Kratos's key).
	tlsConfig := &tls.Config{ServerName: serverName, InsecureSkipVerify: skipVerify, MinVersion: tls.VersionTLS12}
	opts := []gomail.Option{gomail.WithTimeout(smtpTimeout), gomail.WithTLSConfig(tlsConfig), gomail.WithoutNoop()}
	port := 0
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("courier.smtp.connection_uri: port %q is not a number from 1 to 65535", p)
		}
	}
	switch u.Scheme {
	case "smtp":
		if port == 0 {
			port = 25
		}
		// STARTTLS is required unless turned off by name, as in Kratos: a
		// server that does not offer it is an error, not a silent
		// downgrade to clear text.
		if noStartTLS {
			opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
		} else {
			opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
		}
	case "smtps":
		if port == 0 {
			port = 465
		}
		opts = append(opts, gomail.WithSSL())
	default:
		return nil, fmt.Errorf("courier.smtp.connection_uri: scheme %q is not smtp or smtps", u.Scheme)
	}
	opts = append(opts, gomail.WithPort(port))
	if cfg.LocalName != "" {
		opts = append(opts, gomail.WithHELO(cfg.LocalName))
	}
	if u.User != nil && u.User.Username() != "" {
		pass, _ := u.User.Password()
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(u.User.Username()), gomail.WithPassword(pass))
	}
	s.opts = opts
	if cfg.FromAddress == "" {
		return nil, errors.New("courier.smtp.from_address: required when courier.smtp.connection_uri is set (the address mails come from)")
	}
	if _, err := mail.ParseAddress(cfg.FromAddress); err != nil {
		return nil, fmt.Errorf("courier.smtp.from_address: %q is not an email address", cfg.FromAddress)
	}
	for k := range cfg.Headers {
		if k == "" || strings.ContainsAny(k, ": \r\n") {
			return nil, fmt.Errorf("courier.smtp.headers: %q is not a header name", k)
		}
	}
	for _, v := range cfg.Headers {
		if strings.ContainsAny(v, "\r\n") {
			return nil, errors.New("courier.smtp.headers: a value holds a line break")
		}
	}
	return s, nil
}

// String is the server's URI without its password.
func (s *SMTP) String() string { return s.redacted }

// message builds the email of m. Its Message-ID comes from the message's
// id, so a receiver can tell a resend (after a crash between sending and
// marking) from a new mail.
func (s *SMTP) message(m *model.CourierMessage) (*gomail.Msg, error) {
	g := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	var err error
	if s.fromName != "" {
		err = g.FromFormat(s.fromName, s.from)
	} else {
		err = g.From(s.from)
	}
	if err != nil {
		return nil, fmt.Errorf("from address: %w", err)
	}
	if err := g.To(m.Recipient); err != nil {
		return nil, fmt.Errorf("recipient is not an email address: %w", err)
	}
	g.Subject(m.Subject)
	for k, v := range s.headers {
		g.SetGenHeader(gomail.Header(k), v)
	}
	domain := s.from[strings.LastIndexByte(s.from, '@')+1:]
	g.SetMessageIDWithValue(m.ID.String() + "@" + domain)
	g.SetDate()
	g.SetBodyString(gomail.TypeTextPlain, m.Body)
	if m.HTMLBody != "" {
		g.AddAlternativeString(gomail.TypeTextHTML, m.HTMLBody)
	}
	return g, nil
}

// sendResult is the outcome of one message.
type sendResult struct {
	err error
	// permanent: trying again cannot help (an SMTP 5xx answer, a recipient
	// that is no address), so the message is abandoned at once, as Kratos
	// does.
	permanent bool
	// untried: the batch stopped before this message (shutdown, or the
	// claim's time was up); it goes back to the queue as it was.
	untried bool
}

// send delivers msgs over one connection (another after a connection
// failure), in order, and says what became of each. It stops trying when
// ctx ends; the rest are untried.
func (s *SMTP) send(ctx context.Context, msgs []*model.CourierMessage) []sendResult {
	out := make([]sendResult, len(msgs))
	var client *gomail.Client
	defer func() {
		if client != nil {
			_ = client.Close()
		}
	}()
	for i, m := range msgs {
		if ctx.Err() != nil {
			for j := i; j < len(msgs); j++ {
				out[j] = sendResult{untried: true}
			}
			return out
		}
		g, err := s.message(m)
		if err != nil {
			out[i] = sendResult{err: err, permanent: true}
			continue
		}
		if client == nil {
			c, err := gomail.NewClient(s.host, s.opts...)
			if err == nil {
				err = c.DialWithContext(ctx)
			}
			if err != nil {
				// The server cannot be reached: every message of the batch
				// fails with the same reason, each an attempt.
				for j := i; j < len(msgs); j++ {
					out[j] = sendResult{err: fmt.Errorf("connect to %s: %w", s.redacted, err)}
				}
				return out
			}
			client = c
		}
		if err := client.Send(g); err != nil {
			var se *gomail.SendError
			permanent := errors.As(err, &se) && se.ErrorCode() >= 500
			out[i] = sendResult{err: err, permanent: permanent}
			if !errors.As(err, &se) || se.ErrorCode() == 0 {
				// Not an answer from the server: the connection may be
				// gone; the next message gets a new one.
				_ = client.Close()
				client = nil
			}
		}
	}
	return out
}

// scrub removes every secret from an error's text: a password embedded in
// the connection URI (or an HTTP channel's credentials) must never reach the
// stored last_error or a log line.
func scrub(msg string, secrets []string) string {
	for _, s := range secrets {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	const max = 1000
	if len(msg) > max {
		msg = strings.ToValidUTF8(msg[:max], "") + "…"
	}
	return msg
}
