package oidc

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// returnRule is one entry of selfservice.allowed_return_urls: an exact URL,
// or a prefix when its path ends in "/"; a host starting with "*." stands
// for its subdomains (not for itself).
type returnRule struct {
	scheme, host, port, path string
	wildcard, prefix         bool
}

func parseReturnRule(s string) (returnRule, error) {
	u, err := url.Parse(s)
	if err != nil {
		return returnRule{}, errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return returnRule{}, errors.New("want an absolute http(s) URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return returnRule{}, errors.New("want a URL without user, query or fragment")
	}
	r := returnRule{scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: u.Port(), path: u.EscapedPath()}
	if h, ok := strings.CutPrefix(r.host, "*."); ok {
		if h == "" || strings.Contains(h, "*") {
			return returnRule{}, errors.New(`"*." must be followed by a domain`)
		}
		r.host, r.wildcard = h, true
	} else if strings.Contains(r.host, "*") {
		return returnRule{}, errors.New(`a wildcard is allowed only as a leading "*." of the host`)
	}
	if r.path == "" {
		r.path = "/"
	}
	r.prefix = strings.HasSuffix(r.path, "/")
	return r, nil
}

// allows tells whether u (absolute, parsed) is covered by the rule.
func (r returnRule) allows(u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	switch {
	case u.Scheme != r.scheme, u.Port() != r.port:
		return false
	case r.wildcard:
		if !strings.HasSuffix(host, "."+r.host) {
			return false
		}
	case host != r.host:
		return false
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if r.prefix {
		return strings.HasPrefix(p, r.path)
	}
	return p == r.path
}

// returnPolicy decides where a browser flow may send the browser.
type returnPolicy struct {
	rules []returnRule
	// fallback is selfservice.default_browser_return_url: where a flow
	// without returnTo goes, allowed without being listed.
	fallback string
}

func newReturnPolicy(allowed []string, fallback string) (returnPolicy, error) {
	p := returnPolicy{fallback: fallback}
	for i, a := range allowed {
		r, err := parseReturnRule(a)
		if err != nil {
			return returnPolicy{}, fmt.Errorf("selfservice.allowed_return_urls[%d]: %q: %w", i, a, err)
		}
		p.rules = append(p.rules, r)
	}
	if fallback != "" {
		if _, err := parseTarget(fallback); err != nil {
			return returnPolicy{}, fmt.Errorf("selfservice.default_browser_return_url: %q: %w", fallback, err)
		}
	}
	return p, nil
}

// parseTarget reads a return URL and refuses what a browser could read
// differently than we do: no user info, no backslashes, no dot segments
// (/app/../admin would escape a prefix rule once the browser resolves it),
// no control characters.
func parseTarget(s string) (*url.URL, error) {
	if strings.ContainsAny(s, "\\\x00\r\n\t") {
		return nil, errors.New("contains characters a URL must not")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("want an absolute http(s) URL")
	}
	if u.User != nil {
		return nil, errors.New("want a URL without user information")
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, errors.New("want a URL without dot segments")
		}
	}
	return u, nil
}

// resolve returns where to go: returnTo when allowed, the default when
// returnTo is absent. The error says why not, for a VALIDATION_FAILED at
// /returnTo.
func (p returnPolicy) resolve(returnTo *string) (string, error) {
	if returnTo == nil || *returnTo == "" {
		if p.fallback == "" {
			return "", errors.New("give returnTo: this server has no selfservice.default_browser_return_url to go back to")
		}
		return p.fallback, nil
	}
	u, err := parseTarget(*returnTo)
	if err != nil {
		return "", err
	}
	if *returnTo == p.fallback {
		return p.fallback, nil
	}
	for _, r := range p.rules {
		if r.allows(u) {
			return u.String(), nil
		}
	}
	return "", errors.New("this URL is not in selfservice.allowed_return_urls")
}
