// Package playground serves GraphiQL, an in-browser GraphQL IDE, so that
// people can explore and try the identityd API without installing anything.
//
// Everything the page loads (GraphiQL, React, their stylesheets and a small
// bootstrap script) is embedded in the binary: the playground works on
// machines without internet access, never depends on a CDN being up, and
// loads no third-party code that was not reviewed with the source. The
// vendored files come from npm through scripts/fetch-playground-assets.sh,
// which records their versions and hashes in assets/VERSIONS.
package playground

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// assetFS holds the page's static files. The whole directory is embedded so
// that the licenses and VERSIONS travel with the code they describe.
//
//go:embed assets
var assetFS embed.FS

// AssetPrefix is the URL path under which Handler serves the embedded files.
// It is exported so that a router in front of the handler knows which paths
// to send to it besides "/".
const AssetPrefix = "/playground/assets/"

// immutable is the Cache-Control of an asset requested with its current
// content hash: the URL changes whenever the file does, so a browser may keep
// it for a year without asking again.
const immutable = "public, max-age=31536000, immutable"

// asset is one embedded file, read and hashed once at start-up.
type asset struct {
	name        string
	body        []byte
	contentType string
	version     string // hex prefix of the SHA-256 of body
}

// url is the page-relative address of the asset. It carries the content hash
// so that long-lived caching can never serve a stale file after an upgrade.
// It is relative ("playground/assets/…") so the page keeps working when a
// proxy mounts the handler under a path prefix.
func (a *asset) url() string {
	return strings.TrimPrefix(AssetPrefix, "/") + a.name + "?v=" + a.version
}

// etag is a strong validator for http.ServeContent, which answers
// If-None-Match with 304 Not Modified.
func (a *asset) etag() string {
	return `"` + a.version + `"`
}

// assets maps file names (without directory) to their contents. It is filled
// once at package initialisation, so requests never hash anything.
var assets = mustLoadAssets()

func mustLoadAssets() map[string]*asset {
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		panic(fmt.Sprintf("playground: reading embedded assets: %v", err))
	}
	m := make(map[string]*asset, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		body, err := assetFS.ReadFile("assets/" + e.Name())
		if err != nil {
			panic(fmt.Sprintf("playground: reading embedded asset %s: %v", e.Name(), err))
		}
		m[e.Name()] = newAsset(e.Name(), body)
	}
	return m
}

func newAsset(name string, body []byte) *asset {
	sum := sha256.Sum256(body)
	return &asset{
		name:        name,
		body:        body,
		contentType: contentType(name),
		// 16 hex digits (64 bits) are plenty to tell versions of one file apart.
		version: hex.EncodeToString(sum[:8]),
	}
}

// contentType is decided here rather than by mime.TypeByExtension, whose
// answer depends on the host's MIME tables; with nosniff a wrong type would
// stop the browser from running a script. Licenses and VERSIONS have no
// usable extension and are plain text.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	default:
		return "text/plain; charset=utf-8"
	}
}

// pageScripts and pageStyles are the embedded files the index page loads, in
// the order it needs them: GraphiQL's UMD build expects the React and
// ReactDOM globals, and boot.js needs all three.
var (
	pageStyles  = []string{"graphiql.min.css", "playground.css"}
	pageScripts = []string{"react.production.min.js", "react-dom.production.min.js", "graphiql.min.js", "boot.js"}
)

// indexTemplate is the playground page. It contains no inline script or
// style, so that the Content-Security-Policy can forbid both for the page's
// own markup; the endpoint reaches boot.js through a data attribute, which
// html/template escapes.
var indexTemplate = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>identityd GraphQL playground</title>
<link rel="icon" href="data:,">
{{- range .Styles}}
<link rel="stylesheet" href="{{.}}">
{{- end}}
{{- range .Scripts}}
<script src="{{.}}" defer></script>
{{- end}}
</head>
<body>
<div id="graphiql" data-endpoint="{{.Endpoint}}"><div class="loading">Loading GraphiQL…</div></div>
<noscript>The GraphQL playground needs JavaScript. The API itself is at {{.Endpoint}}.</noscript>
</body>
</html>
`))

// securityHeaders are set on every response of the handler, the page as well
// as its assets and errors, since they cost nothing and a browser may render
// any of them.
func securityHeaders(h http.Header, csp string) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// contentSecurityPolicy is the policy for the page, given the origin the
// GraphQL endpoint lives on ("" when it is on the page's own origin).
//
//   - Scripts only from 'self', neither inline nor 'unsafe-eval': GraphiQL
//     4's UMD build (CodeMirror 5 based) uses neither eval nor new Function,
//     and browser_test.go runs the page under this policy with no violation.
//   - Styles from 'self' plus 'unsafe-inline': GraphiQL injects <style>
//     elements at run time (its dialogs lock page scrolling that way, with
//     computed sizes, so a hash cannot allow them); browser_test.go sees that
//     blocked without 'unsafe-inline'. Inline styles cannot run code, so this
//     is the usual trade-off.
//   - Images and fonts from 'self' and data:, because GraphiQL's stylesheet
//     inlines its fonts and a few icons as data: URLs.
//   - connect-src limits fetch() to the page's origin and the endpoint's, so
//     even injected code could not send the admin key elsewhere.
//   - Everything else ('none' by default, no <base>, no form posts, no
//     framing) is off because the page needs none of it.
func contentSecurityPolicy(endpointOrigin string) string {
	connect := "'self'"
	if endpointOrigin != "" {
		connect += " " + endpointOrigin
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self' 'unsafe-inline'",
		"img-src 'self' data:",
		"font-src 'self' data:",
		"connect-src " + connect,
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// endpointOrigin checks the endpoint given to Handler and returns the origin
// the CSP must allow for it: "" for a path on the page's own origin, or
// scheme://host for an absolute http(s) URL.
func endpointOrigin(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("playground: invalid endpoint %q: %w", endpoint, err)
	}
	switch {
	case u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/"):
		return "", nil
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
		return u.Scheme + "://" + u.Host, nil
	default:
		return "", fmt.Errorf("playground: endpoint %q must be an absolute path like /graphql or an http(s) URL", endpoint)
	}
}

// handler serves the page and the assets. The page is rendered once, when
// the handler is made, since nothing in it changes per request.
type handler struct {
	index *asset
	csp   string
}

// Handler returns the playground: GET or HEAD "/" is a GraphiQL page that
// sends its queries to endpoint (an absolute path such as "/graphql", or an
// http(s) URL), and AssetPrefix+name serves the embedded file name. Any other
// path is 404, and any other method on these paths is 405.
//
// Asset URLs in the page carry a content hash, so assets are cached as
// immutable; the page itself is revalidated (ETag) on every load so that an
// upgrade is picked up at once.
//
// Handler panics if endpoint is neither an absolute path nor an http(s) URL:
// that is a programming error, found when the server starts.
func Handler(endpoint string) http.Handler {
	origin, err := endpointOrigin(endpoint)
	if err != nil {
		panic(err)
	}
	data := struct {
		Endpoint        string
		Styles, Scripts []string
	}{Endpoint: endpoint}
	for _, name := range pageStyles {
		data.Styles = append(data.Styles, mustAsset(name).url())
	}
	for _, name := range pageScripts {
		data.Scripts = append(data.Scripts, mustAsset(name).url())
	}
	var buf bytes.Buffer
	if err := indexTemplate.Execute(&buf, data); err != nil {
		panic(fmt.Sprintf("playground: rendering index: %v", err))
	}
	return &handler{
		index: newAsset("index.html", buf.Bytes()),
		csp:   contentSecurityPolicy(origin),
	}
}

func mustAsset(name string) *asset {
	a, ok := assets[name]
	if !ok {
		panic("playground: embedded asset missing: " + name)
	}
	return a
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header(), h.csp)

	var a *asset
	cache := "no-cache"
	switch {
	case r.URL.Path == "/":
		a = h.index
	case strings.HasPrefix(r.URL.Path, AssetPrefix):
		a = assets[strings.TrimPrefix(r.URL.Path, AssetPrefix)]
		// Only the current version may be cached for good: a request with an
		// old or missing hash still gets the file, but must revalidate it.
		if a != nil && r.URL.Query().Get("v") == a.version {
			cache = immutable
		}
	}
	if a == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}

	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", cache)
	w.Header().Set("ETag", a.etag())
	// A zero modtime leaves out Last-Modified: the embedded files have no
	// meaningful one, and the ETag is what revalidation relies on.
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}
