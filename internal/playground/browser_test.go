// This file drives a real headless Chromium through the playground, which the
// handler tests cannot do: they check the HTTP side, not that GraphiQL boots
// from the embedded files under the page's Content-Security-Policy and talks
// to the endpoint. It needs /usr/bin/chromium (Debian: apt-get install
// chromium; .ci/run installs it when missing) and fails without it:
//
//	go test -run Browser ./internal/playground/ -v

package playground

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/identityd/identityd/internal/browsertest"
)

// fakeAnswer is what the fake GraphQL endpoint returns for any POST; seeing
// its marker in GraphiQL's result pane proves the whole round trip worked.
const fakeAnswer = `{"data":{"identitySchemas":[{"id":"from-fake-server"}]}}`

// browserLog collects what the page did, from chromedp's event goroutine.
type browserLog struct {
	mu       sync.Mutex
	requests []string // every URL the browser asked for
	problems []string // exceptions, console errors, CSP violations
	notes    []string // warnings, logged only
}

func (l *browserLog) add(list *[]string, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	*list = append(*list, s)
}

func (l *browserLog) snapshot() (requests, problems, notes []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.requests...), append([]string(nil), l.problems...), append([]string(nil), l.notes...)
}

// fakeEndpoint records the requests GraphiQL sends and answers fakeAnswer.
type fakeEndpoint struct {
	mu      sync.Mutex
	queries []fakeRequest
}

type fakeRequest struct {
	accept, authorization, query string
}

func (f *fakeEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var body struct {
		Query string `json:"query"`
	}
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &body)
	f.mu.Lock()
	f.queries = append(f.queries, fakeRequest{
		accept:        r.Header.Get("Accept"),
		authorization: r.Header.Get("Authorization"),
		query:         body.Query,
	})
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/graphql-response+json")
	_, _ = io.WriteString(w, fakeAnswer)
}

func (f *fakeEndpoint) snapshot() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.queries...)
}

func TestBrowserPlayground(t *testing.T) {
	fake := &fakeEndpoint{}
	mux := http.NewServeMux()
	mux.Handle("/graphql", fake)
	mux.Handle("/", Handler("/graphql"))
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	defer srv.Close()

	ctx := browsertest.New(t)

	var bl browserLog
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			bl.add(&bl.requests, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			bl.add(&bl.problems, "exception: "+msg+" at "+d.URL)
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			msg := "console " + string(ev.Type) + ": " + strings.Join(args, " ")
			switch ev.Type {
			case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeAssert:
				bl.add(&bl.problems, msg)
			case runtime.ConsoleAPICalledTypeWarning:
				// GraphiQL's own dependencies warn (Radix about dialog
				// accessibility, for one); worth seeing, not failing on.
				bl.add(&bl.notes, msg)
			}
		case *log.EventEntryAdded:
			// CSP violations (source "security") and failed loads arrive here.
			msg := "log " + string(ev.Entry.Source) + " " + string(ev.Entry.Level) + ": " + ev.Entry.Text + " " + ev.Entry.URL
			switch {
			case ev.Entry.Source == log.EntrySourceSecurity || ev.Entry.Level == log.EntryLevelError:
				bl.add(&bl.problems, msg)
			case ev.Entry.Level == log.EntryLevelWarning:
				bl.add(&bl.notes, msg)
			}
		}
	})
	if err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}

	const (
		executeButton = `.graphiql-execute-button`
		responsePane  = `.graphiql-response`
		// The admin key travels in a header typed into GraphiQL's headers
		// editor; the test puts it there through CodeMirror's API.
		key = "Bearer test-admin-key-123"
	)
	// The runtime, log and network domains, whose events Listen gets, are
	// enabled by chromedp when it attaches to the tab.
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(executeButton)),
		// The query editor must hold the default query before it is run.
		chromedp.Poll[chromedp.Void](`document.querySelector('.graphiql-query-editor').innerText.includes('identitySchemas')`,
			chromedp.WithPollingTimeout(20*time.Second)),
		// The headers editor is the visible editor of the tools pane, which
		// boot.js opens on the headers tab.
		chromedp.Evaluate[chromedp.Void](`document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror')
			.CodeMirror.setValue(JSON.stringify({Authorization: `+strconv.Quote(key)+`}))`),
		// GraphiQL reads the editors' contents after a short debounce.
		chromedp.Sleep(500*time.Millisecond),
		chromedp.Click(chromedp.CSS(executeButton)),
		chromedp.Poll[chromedp.Void](`document.querySelector('`+responsePane+`').innerText.includes('from-fake-server')`,
			chromedp.WithPollingTimeout(20*time.Second)),
	)
	if err != nil {
		requests, problems, _ := bl.snapshot()
		t.Fatalf("driving the playground: %v\nrequests: %q\nproblems: %q", err, requests, problems)
	}
	responseText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(responsePane)))
	if err != nil {
		t.Fatalf("reading the result pane: %v", err)
	}
	if !strings.Contains(responseText, "from-fake-server") {
		t.Errorf("result pane = %q, want it to show from-fake-server", responseText)
	}

	// A picture of the page with the result, to look at by hand.
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot: %v", err)
	} else if err := os.WriteFile("/tmp/playground.png", shot, 0o644); err != nil {
		t.Errorf("writing screenshot: %v", err)
	} else {
		t.Logf("screenshot written to /tmp/playground.png")
	}

	// Open the rest of GraphiQL's UI (plugins and dialogs), so that a CSP
	// violation or an error anywhere in it shows up in the browser's log.
	for _, label := range []string{"Show Documentation Explorer", "Show History", "Open short keys dialog", "Open settings dialog"} {
		// A short timeout, so that a renamed button fails fast; the browser
		// runs on, as its life is bound to ctx.
		clickCtx, cancelClick := context.WithTimeout(ctx, 10*time.Second)
		err := chromedp.Do(clickCtx,
			chromedp.Click(chromedp.CSS(`[aria-label="`+label+`"]`)),
			chromedp.Sleep(300*time.Millisecond),
		)
		cancelClick()
		if err != nil {
			t.Fatalf("clicking %q: %v", label, err)
		}
		if strings.HasSuffix(label, "dialog") {
			// Escape closes a Radix dialog.
			if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Escape), chromedp.Sleep(300*time.Millisecond)); err != nil {
				t.Fatalf("closing %q: %v", label, err)
			}
		}
	}

	// GraphiQL saves tabs and history to localStorage; the key must not be
	// among them (boot.js drops headers from what GraphiQL saves).
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(Object.fromEntries(Object.entries(localStorage)))`))
	if err != nil {
		t.Fatalf("reading localStorage: %v", err)
	}
	if !strings.Contains(stored, "graphiql:queries") || !strings.Contains(stored, "identitySchemas") {
		t.Errorf("GraphiQL saved no history, so the check below proves nothing: %s", stored)
	}
	if strings.Contains(stored, "test-admin-key") {
		t.Errorf("the admin key was written to localStorage: %s", stored)
	}

	got := fake.snapshot()
	if len(got) == 0 {
		t.Fatal("the fake endpoint got no request")
	}
	for i, r := range got {
		if want := "application/graphql-response+json, application/json"; r.accept != want {
			t.Errorf("request %d: Accept = %q, want %q", i, r.accept, want)
		}
	}
	var sawKey bool
	for _, r := range got {
		if strings.Contains(r.query, "identitySchemas") && r.authorization == key {
			sawKey = true
		}
	}
	if !sawKey {
		t.Errorf("no query reached the endpoint with Authorization %q: %+v", key, got)
	}

	requests, problems, notes := bl.snapshot()
	for _, n := range notes {
		t.Logf("browser warned: %s", n)
	}
	for _, p := range problems {
		t.Errorf("browser reported: %s", p)
	}
	// The endpoint's own request must be among those seen, or the network
	// events were not collected and the check below proves nothing.
	if !slices.Contains(requests, srv.URL+"/graphql") {
		t.Fatalf("the request to %s/graphql was not recorded; requests: %q", srv.URL, requests)
	}
	for _, raw := range requests {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			t.Errorf("unparsable request URL %q: %v", raw, err)
		case u.Scheme == "data":
			// Inline data (GraphiQL's fonts and icons): nothing leaves the page.
		case (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() == "127.0.0.1":
		default:
			t.Errorf("request left the loopback: %s", raw)
		}
	}
	t.Logf("checked %d requests for loopback-only", len(requests))
}
