package playground

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

const wantCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// serve runs one request through Handler("/graphql").
func serve(t *testing.T, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	Handler("/graphql").ServeHTTP(rec, req)
	return rec
}

func getIndex(t *testing.T) string {
	t.Helper()
	rec := serve(t, http.MethodGet, "/", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET / = %d, want 200", rec.Code)
	}
	return rec.Body.String()
}

var (
	srcHrefRE   = regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`)
	scriptTagRE = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	styleTagRE  = regexp.MustCompile(`(?i)<style\b|\bstyle\s*=`)
)

// referencedAssets returns the asset URLs of the page's <script src> and
// <link href> attributes (the data: favicon left out).
func referencedAssets(t *testing.T, page string) []string {
	t.Helper()
	var urls []string
	for _, m := range srcHrefRE.FindAllStringSubmatch(page, -1) {
		if strings.HasPrefix(m[1], "data:") {
			continue
		}
		urls = append(urls, m[1])
	}
	return urls
}

func TestIndexHeaders(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		rec := serve(t, method, "/", nil)
		tests := []struct {
			name, got, want string
		}{
			{"status", http.StatusText(rec.Code), http.StatusText(http.StatusOK)},
			{"Content-Type", rec.Header().Get("Content-Type"), "text/html; charset=utf-8"},
			{"Content-Security-Policy", rec.Header().Get("Content-Security-Policy"), wantCSP},
			{"X-Content-Type-Options", rec.Header().Get("X-Content-Type-Options"), "nosniff"},
			{"Referrer-Policy", rec.Header().Get("Referrer-Policy"), "no-referrer"},
			{"X-Frame-Options", rec.Header().Get("X-Frame-Options"), "DENY"},
			{"Cache-Control", rec.Header().Get("Cache-Control"), "no-cache"},
		}
		for _, tt := range tests {
			if tt.got != tt.want {
				t.Errorf("%s /: %s = %q, want %q", method, tt.name, tt.got, tt.want)
			}
		}
		if rec.Header().Get("ETag") == "" {
			t.Errorf("%s /: no ETag", method)
		}
		if method == http.MethodHead && rec.Body.Len() != 0 {
			t.Errorf("HEAD /: body of %d bytes, want none", rec.Body.Len())
		}
	}
}

func TestIndexReferencesOnlyLocalAssets(t *testing.T) {
	page := getIndex(t)

	if got := len(scriptTagRE.FindAllString(page, -1)); got != len(pageScripts) {
		t.Errorf("page has %d <script> elements, want %d", got, len(pageScripts))
	}
	for _, m := range scriptTagRE.FindAllStringSubmatch(page, -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script in page (the CSP forbids it): %s", m[0])
		}
	}
	if loc := styleTagRE.FindStringIndex(page); loc != nil {
		t.Errorf("inline style in page: %q", page[loc[0]:])
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Errorf("page mentions an http(s) URL; it must load nothing from the network:\n%s", page)
	}

	urls := referencedAssets(t, page)
	if len(urls) != len(pageScripts)+len(pageStyles) {
		t.Fatalf("page references %d assets %q, want %d", len(urls), urls, len(pageScripts)+len(pageStyles))
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("bad asset URL %q: %v", raw, err)
		}
		if u.Scheme != "" || u.Host != "" || !strings.HasPrefix("/"+u.Path, AssetPrefix) {
			t.Errorf("asset URL %q is not a local %s URL", raw, AssetPrefix)
		}
		if u.Query().Get("v") == "" {
			t.Errorf("asset URL %q has no content hash", raw)
		}
	}
	if !strings.Contains(page, `data-endpoint="/graphql"`) {
		t.Errorf("page does not pass the endpoint to boot.js:\n%s", page)
	}
}

func TestEveryReferencedAssetIsServed(t *testing.T) {
	for _, raw := range referencedAssets(t, getIndex(t)) {
		t.Run(raw, func(t *testing.T) {
			rec := serve(t, http.MethodGet, "/"+raw, nil)
			wantType := "text/css; charset=utf-8"
			if strings.Contains(raw, ".js?") {
				wantType = "text/javascript; charset=utf-8"
			}
			tests := []struct {
				name, got, want string
			}{
				{"status", http.StatusText(rec.Code), http.StatusText(http.StatusOK)},
				{"Content-Type", rec.Header().Get("Content-Type"), wantType},
				{"Cache-Control", rec.Header().Get("Cache-Control"), "public, max-age=31536000, immutable"},
				{"X-Content-Type-Options", rec.Header().Get("X-Content-Type-Options"), "nosniff"},
			}
			for _, tt := range tests {
				if tt.got != tt.want {
					t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
				}
			}
			if rec.Body.Len() == 0 {
				t.Error("empty body")
			}
			if rec.Header().Get("ETag") == "" {
				t.Error("no ETag")
			}
		})
	}
}

func TestStatusCodes(t *testing.T) {
	tests := []struct {
		name, method, target string
		header               http.Header
		wantCode             int
		wantAllow            string
		wantCache            string
	}{
		{"unknown asset", http.MethodGet, "/playground/assets/nope.js", nil, http.StatusNotFound, "", ""},
		{"asset directory", http.MethodGet, "/playground/assets/", nil, http.StatusNotFound, "", ""},
		{"asset dotdot", http.MethodGet, "/playground/assets/../playground.go", nil, http.StatusNotFound, "", ""},
		{"nested asset path", http.MethodGet, "/playground/assets/assets/boot.js", nil, http.StatusNotFound, "", ""},
		{"other path", http.MethodGet, "/index.html", nil, http.StatusNotFound, "", ""},
		{"prefix without slash", http.MethodGet, "/playground/assets", nil, http.StatusNotFound, "", ""},
		{"POST index", http.MethodPost, "/", nil, http.StatusMethodNotAllowed, "GET, HEAD", ""},
		{"PUT asset", http.MethodPut, "/playground/assets/boot.js", nil, http.StatusMethodNotAllowed, "GET, HEAD", ""},
		{"OPTIONS index", http.MethodOptions, "/", nil, http.StatusMethodNotAllowed, "GET, HEAD", ""},
		{"license", http.MethodGet, "/playground/assets/LICENSE.graphiql", nil, http.StatusOK, "", "no-cache"},
		{"asset without hash", http.MethodGet, "/playground/assets/boot.js", nil, http.StatusOK, "", "no-cache"},
		{"asset with stale hash", http.MethodGet, "/playground/assets/boot.js?v=0123456789abcdef", nil, http.StatusOK, "", "no-cache"},
		{"index If-None-Match", http.MethodGet, "/",
			http.Header{"If-None-Match": {Handler("/graphql").(*handler).index.etag()}}, http.StatusNotModified, "", "no-cache"},
		{"asset If-None-Match", http.MethodGet, "/playground/assets/graphiql.min.js?v=" + assets["graphiql.min.js"].version,
			http.Header{"If-None-Match": {assets["graphiql.min.js"].etag()}}, http.StatusNotModified, "", immutable},
		{"asset If-None-Match stale", http.MethodGet, "/playground/assets/graphiql.min.js",
			http.Header{"If-None-Match": {`"0123456789abcdef"`}}, http.StatusOK, "", "no-cache"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, tt.method, tt.target, tt.header)
			if got := rec.Code; got != tt.wantCode {
				t.Errorf("status = %d, want %d", got, tt.wantCode)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if tt.wantCache != "" {
				if got := rec.Header().Get("Cache-Control"); got != tt.wantCache {
					t.Errorf("Cache-Control = %q, want %q", got, tt.wantCache)
				}
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if tt.wantCode == http.StatusNotModified && rec.Body.Len() != 0 {
				t.Errorf("304 with a body of %d bytes", rec.Body.Len())
			}
		})
	}
}

func TestEndpointIsEscaped(t *testing.T) {
	tests := []struct {
		endpoint    string
		wantAttr    string
		wantConnect string
	}{
		{"/graphql", `data-endpoint="/graphql"`, "connect-src 'self';"},
		{`/q?a="><script>alert(1)</script>`, `data-endpoint="/q?a=&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`, "connect-src 'self';"},
		{"https://api.example.com:8443/graphql", `data-endpoint="https://api.example.com:8443/graphql"`,
			"connect-src 'self' https://api.example.com:8443;"},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handler(tt.endpoint).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			page := rec.Body.String()
			if !strings.Contains(page, tt.wantAttr) {
				t.Errorf("page lacks %s:\n%s", tt.wantAttr, page)
			}
			if strings.Contains(page, "<script>") {
				t.Errorf("endpoint injected markup:\n%s", page)
			}
			if got := rec.Header().Get("Content-Security-Policy"); !strings.Contains(got, tt.wantConnect) {
				t.Errorf("CSP = %q, want it to contain %q", got, tt.wantConnect)
			}
		})
	}
}

func TestHandlerRejectsBadEndpoint(t *testing.T) {
	for _, endpoint := range []string{"", "graphql", "javascript:alert(1)", "ftp://example.com/graphql", "//example.com/graphql"} {
		t.Run(endpoint, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Handler(%q) did not panic", endpoint)
				}
			}()
			Handler(endpoint)
		})
	}
}

// TestVendoredAssetsMatchVersions checks the embedded third-party files
// against the hashes scripts/fetch-playground-assets.sh wrote, so a hand edit
// or a partial update cannot go unnoticed.
func TestVendoredAssetsMatchVersions(t *testing.T) {
	versions := mustAsset("VERSIONS").body
	sc := bufio.NewScanner(bytes.NewReader(versions))
	seen := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		wantSum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("bad VERSIONS line %q", line)
		}
		a, ok := assets[name]
		if !ok {
			t.Errorf("VERSIONS lists %s, which is not embedded", name)
			continue
		}
		sum := sha256.Sum256(a.body)
		if got := hex.EncodeToString(sum[:]); got != wantSum {
			t.Errorf("%s: sha256 = %s, want %s (rerun scripts/fetch-playground-assets.sh)", name, got, wantSum)
		}
		seen++
	}
	if want := 7; seen != want {
		t.Errorf("VERSIONS lists %d files, want %d", seen, want)
	}
	for _, name := range pageScripts[:3] {
		if !bytes.Contains(versions, []byte("  "+name+"\n")) {
			t.Errorf("VERSIONS does not list %s", name)
		}
	}
}
