package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-jsonnet"

	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/model"
)

// Limits of a mapper: its source, how deep it may recurse, how long it may
// run and how much it may return. A mapper is the operator's code, so these
// guard against mistakes (an accidental infinite recursion, a huge
// std.range) rather than against attackers; but the claims are the
// provider's, so a mapper that blows up on odd claims must not take the
// server down with it.
const (
	maxMapperBytes   = 256 << 10
	maxMapperOutput  = 1 << 20
	mapperMaxStack   = 200
	mapperTimeout    = 2 * time.Second
	mapperParallel   = 4
	mapperRefetchAge = time.Hour
)

// mapper is a provider's Jsonnet claims mapper (mapper_url). It is run as
// Kratos runs it: std.extVar('claims') is the claims, and it returns
// {identity: {traits, metadata_public?, metadata_admin?,
// verified_addresses?}}. A mapper read over http(s) is read again after
// an hour, keeping the last good one when that fails.
type mapper struct {
	url    string
	name   string
	client *http.Client
	// slots bound how many evaluations run at once: an evaluation that
	// overruns its time is answered for but cannot be stopped, and keeps
	// its slot until it ends.
	slots chan struct{}

	mu      sync.Mutex
	src     string
	fetched time.Time
}

// loadMapper reads and parses the mapper at rawURL: file://PATH,
// base64://DATA or http(s)://.
func loadMapper(ctx context.Context, rawURL string, client *http.Client, slots chan struct{}) (*mapper, error) {
	m := &mapper{url: rawURL, client: client, slots: slots, name: mapperName(rawURL)}
	src, err := m.read(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := jsonnet.SnippetToAST(m.name, src); err != nil {
		return nil, fmt.Errorf("not valid Jsonnet: %w", err)
	}
	m.src, m.fetched = src, time.Now()
	return m, nil
}

// mapperName names a mapper in errors, without the kilobytes of a
// base64:// one.
func mapperName(rawURL string) string {
	if strings.HasPrefix(rawURL, "base64://") {
		return "base64 mapper"
	}
	if strings.HasPrefix(rawURL, "http://") || strings.HasPrefix(rawURL, "https://") {
		return redact(rawURL)
	}
	return strings.TrimPrefix(rawURL, "file://")
}

func (m *mapper) remote() bool {
	return strings.HasPrefix(m.url, "http://") || strings.HasPrefix(m.url, "https://")
}

func (m *mapper) read(ctx context.Context) (string, error) {
	scheme, rest, ok := strings.Cut(m.url, "://")
	if !ok {
		return "", fmt.Errorf("%q: want file://, base64:// or http(s)://", m.url)
	}
	var data []byte
	var err error
	switch strings.ToLower(scheme) {
	case "file":
		var f *os.File
		if f, err = os.Open(rest); err != nil {
			return "", err
		}
		defer f.Close()
		data, err = readCapped(f)
	case "base64":
		data, err = decodeBase64(rest)
	case "http", "https":
		data, err = m.get(ctx)
	default:
		return "", fmt.Errorf("unsupported scheme %q: want file://, base64:// or http(s)://", scheme)
	}
	if err != nil {
		return "", err
	}
	return string(data), nil
}

func (m *mapper) get(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap()
		}
		return nil, fmt.Errorf("GET %s: %w", redact(m.url), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", redact(m.url), resp.Status)
	}
	return readCapped(resp.Body)
}

func readCapped(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxMapperBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxMapperBytes {
		return nil, fmt.Errorf("larger than the limit of %d bytes", maxMapperBytes)
	}
	return data, nil
}

// decodeBase64 accepts standard and URL-safe base64, padded or not, as
// people write them into config.
func decodeBase64(s string) ([]byte, error) {
	if base64.RawStdEncoding.DecodedLen(len(s)) > maxMapperBytes {
		return nil, fmt.Errorf("larger than the limit of %d bytes", maxMapperBytes)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if data, err := enc.DecodeString(s); err == nil {
			return data, nil
		}
	}
	return nil, errors.New("not valid base64 (standard or URL-safe)")
}

// source returns the mapper's Jsonnet, reading a remote one again when it
// is old (the old one stays when that fails).
func (m *mapper) source(ctx context.Context, now time.Time) string {
	m.mu.Lock()
	src, stale := m.src, m.remote() && now.Sub(m.fetched) > mapperRefetchAge
	if stale {
		m.fetched = now // one try per period, not one per sign-in
	}
	m.mu.Unlock()
	if !stale {
		return src
	}
	// Read without the lock: other sign-ins go on with the old mapper.
	fresh, err := m.read(ctx)
	if err == nil {
		_, err = jsonnet.SnippetToAST(m.name, fresh)
	}
	if err != nil {
		return src
	}
	m.mu.Lock()
	m.src = fresh
	m.mu.Unlock()
	return fresh
}

// noImports keeps a mapper from reading the server's files: Kratos mappers
// are self-contained.
type noImports struct{}

func (noImports) Import(_, importedPath string) (jsonnet.Contents, string, error) {
	return jsonnet.Contents{}, "", fmt.Errorf("imports are not allowed in a claims mapper (%s)", importedPath)
}

// mapped is what a mapper made of the claims.
type mapped struct {
	Traits         model.JSON
	MetadataPublic model.JSON
	MetadataAdmin  model.JSON
	Verified       []identity.VerifiedAddress
}

// errMapper is a mapper that failed or returned the wrong shape: the
// operator's to fix, so the user sees a generic failure and the log says
// what.
type errMapper struct{ err error }

func (e errMapper) Error() string { return "claims mapper: " + e.err.Error() }
func (e errMapper) Unwrap() error { return e.err }

// run evaluates the mapper on claims.
func (m *mapper) run(ctx context.Context, claims *Claims, now time.Time) (*mapped, error) {
	in, err := json.Marshal(claims)
	if err != nil {
		return nil, err
	}
	src := m.source(ctx, now)
	timer := time.NewTimer(mapperTimeout)
	defer timer.Stop()
	select {
	case m.slots <- struct{}{}:
	case <-timer.C:
		return nil, errMapper{errors.New("too many mappers still running")}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-m.slots }()
		vm := jsonnet.MakeVM()
		vm.MaxStack = mapperMaxStack
		vm.Importer(noImports{})
		vm.ExtCode("claims", string(in))
		out, err := vm.EvaluateAnonymousSnippet(m.name, src)
		done <- result{out, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-timer.C:
		return nil, errMapper{fmt.Errorf("%s ran longer than %s", m.name, mapperTimeout)}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, errMapper{r.err}
	}
	if len(r.out) > maxMapperOutput {
		return nil, errMapper{fmt.Errorf("%s returned more than %d bytes", m.name, maxMapperOutput)}
	}
	return parseMapped(r.out)
}

// parseMapped reads a mapper's output as Kratos does: identity.traits must
// be an object; metadata_public and metadata_admin, when there, objects;
// verified_addresses, when there, a list of {via, value}.
func parseMapped(out string) (*mapped, error) {
	var doc struct {
		Identity *struct {
			Traits            json.RawMessage `json:"traits"`
			MetadataPublic    json.RawMessage `json:"metadata_public"`
			MetadataAdmin     json.RawMessage `json:"metadata_admin"`
			VerifiedAddresses json.RawMessage `json:"verified_addresses"`
		} `json:"identity"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, errMapper{fmt.Errorf("the output is not an object: %w", err)}
	}
	if doc.Identity == nil {
		return nil, errMapper{errors.New("the output has no identity")}
	}
	id := doc.Identity
	object := func(raw json.RawMessage) bool {
		var m map[string]json.RawMessage
		return len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &m) == nil
	}
	absent := func(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }
	if !object(id.Traits) {
		return nil, errMapper{errors.New("identity.traits is not an object")}
	}
	out2 := &mapped{Traits: model.JSON(id.Traits)}
	for _, f := range []struct {
		key string
		raw json.RawMessage
		dst *model.JSON
	}{{"metadata_public", id.MetadataPublic, &out2.MetadataPublic}, {"metadata_admin", id.MetadataAdmin, &out2.MetadataAdmin}} {
		switch {
		case absent(f.raw):
		case object(f.raw):
			*f.dst = model.JSON(f.raw)
		default:
			return nil, errMapper{fmt.Errorf("identity.%s is not an object", f.key)}
		}
	}
	if !absent(id.VerifiedAddresses) {
		if err := json.Unmarshal(id.VerifiedAddresses, &out2.Verified); err != nil {
			return nil, errMapper{fmt.Errorf("identity.verified_addresses is not a list of {via, value}: %w", err)}
		}
		for i := range out2.Verified {
			v := &out2.Verified[i]
			if v.Via == "email" {
				v.Value = strings.ToLower(strings.TrimSpace(v.Value))
			}
		}
	}
	return out2, nil
}
