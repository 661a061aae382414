package schemas

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// presetFS holds the preset:// schemas, so that the default configuration
// works with no file and no network.
//
//go:embed presets/*.schema.json
var presetFS embed.FS

// fetcher reads schema documents for one NewRegistry call: the configured
// sources and whatever they reference.
type fetcher struct {
	ctx  context.Context
	opts Options
}

// fetch returns the bytes at rawURL and the location to compile them at,
// which is the base that their relative references resolve against.
func (f *fetcher) fetch(rawURL string) (data []byte, loc string, err error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, "", fmt.Errorf("unsupported url %q: want file://, base64://, http(s):// or preset://", rawURL)
	}
	switch strings.ToLower(scheme) {
	case "file":
		// Both file:///abs/x.json and file://rel/x.json are written in
		// configurations; take the rest literally as a path.
		path, err := filepath.Abs(filepath.FromSlash(rest))
		if err != nil {
			return nil, "", err
		}
		data, err := f.readFile(path)
		return data, (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String(), err
	case "base64":
		data, err := f.decodeBase64(rest)
		// Such a schema has no place of its own: relative references from it
		// cannot resolve, and its location must not carry kilobytes of data.
		return data, "urn:identityd:schema:base64", err
	case "http", "https":
		data, err := f.get(rawURL)
		return data, rawURL, err
	case "preset":
		// Any read error means no such embedded file, whatever the name holds.
		data, err := presetFS.ReadFile("presets/" + rest + ".schema.json")
		if err != nil {
			return nil, "", fmt.Errorf("unknown preset %q: want one of %s", rest, strings.Join(presetNames(), ", "))
		}
		return data, "preset://" + rest, nil
	default:
		return nil, "", fmt.Errorf("unsupported url scheme %q: want file://, base64://, http(s):// or preset://", scheme)
	}
}

func (f *fetcher) readFile(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return readCapped(file, f.opts.MaxBytes)
}

// decodeBase64 accepts standard and URL-safe base64, padded or not, because
// both are produced by the tools people use to inline a schema in config.
func (f *fetcher) decodeBase64(s string) ([]byte, error) {
	if int64(base64.RawStdEncoding.DecodedLen(len(s))) > f.opts.MaxBytes {
		return nil, fmt.Errorf("schema is larger than the limit of %d bytes", f.opts.MaxBytes)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if data, err := enc.DecodeString(s); err == nil {
			return data, nil
		}
	}
	return nil, errors.New("not valid base64 (standard or URL-safe)")
}

// get fetches an http(s) URL with the context, timeout and size cap, so that
// a slow or huge remote schema cannot hang or exhaust start-up.
func (f *fetcher) get(rawURL string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(f.ctx, f.opts.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/schema+json, application/json;q=0.9, */*;q=0.1")
	resp, err := f.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("GET %s: %s", req.URL.Redacted(), resp.Status)
	}
	data, err := readCapped(resp.Body, f.opts.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", req.URL.Redacted(), err)
	}
	return data, nil
}

// readCapped reads at most limit bytes and fails rather than truncating, as a
// cut schema would fail later with a confusing JSON error.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("schema is larger than the limit of %d bytes", limit)
	}
	return data, nil
}

// refLoader resolves external $refs of a configured schema through the same
// loaders as the sources, with the same limits. The library asks it only for
// documents that are not already known: a $ref to the schema's own $id never
// reaches it.
type refLoader struct{ f *fetcher }

// Load implements jsonschema.URLLoader.
func (l refLoader) Load(rawURL string) (any, error) {
	if u, err := url.Parse(rawURL); err == nil && u.Scheme == "file" {
		// The library hands over absolute, escaped file URLs.
		rawURL = "file://" + u.Host + u.Path
	}
	data, _, err := l.f.fetch(rawURL)
	if err != nil {
		return nil, err
	}
	// The library names the URL around this error.
	doc, _, err := parseJSON(data)
	return doc, err
}

// parseJSON decodes a schema document as jsonschema.UnmarshalJSON does
// (numbers kept exact) and compacts it. A syntax error says where it is, as
// line and column: encoding/json gives a byte offset, or no place at all
// ("unexpected EOF"), and the library's own decoder adds nothing, which
// leaves whoever edits the file counting bytes.
func parseJSON(data []byte) (doc any, compact []byte, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		var syntax *json.SyntaxError
		switch {
		case errors.As(err, &syntax):
			// Offset counts the byte the decoder stopped at.
			line, col := lineColumn(data, syntax.Offset-1)
			return nil, nil, fmt.Errorf("invalid JSON at line %d, column %d: %s", line, col, syntax.Error())
		case errors.Is(err, io.EOF):
			return nil, nil, errors.New("invalid JSON: the document is empty")
		case errors.Is(err, io.ErrUnexpectedEOF):
			line, col := lineColumn(data, int64(len(data)))
			return nil, nil, fmt.Errorf("invalid JSON at line %d, column %d: the document ends before its value does (a } or ] missing?)", line, col)
		}
		return nil, nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		line, col := lineColumn(data, int64(len(data)-len(rest)))
		return nil, nil, fmt.Errorf("invalid JSON at line %d, column %d: more follows the document's value", line, col)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return nil, nil, fmt.Errorf("invalid JSON: %w", err) // the decoder took it: not expected
	}
	return doc, b.Bytes(), nil
}

// lineColumn is where the byte at off of data is, or the end of data when
// off is past it: lines and columns count from 1, columns in characters,
// as editors count them.
func lineColumn(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}

// noRefLoader refuses every external reference, for the built-in schemas
// (presets and the package's own): they are self-contained, and must never
// reach the network or the disk because of an $id or a stray $ref.
type noRefLoader struct{}

// Load implements jsonschema.URLLoader.
func (noRefLoader) Load(rawURL string) (any, error) {
	return nil, fmt.Errorf("built-in schemas may not reference %s", rawURL)
}

func isPreset(rawURL string) bool {
	scheme, _, _ := strings.Cut(rawURL, "://")
	return strings.EqualFold(scheme, "preset")
}

// presetNames lists the embedded presets for error messages.
func presetNames() []string {
	entries, _ := presetFS.ReadDir("presets")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".schema.json"))
	}
	return names
}
