package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/model"
)

// A bcrypt hash (cost 4) of "correct horse battery staple".
const cliTestHash = "$2a$04$cO.pvvcBJEuTFX5a7Z9aDOlzKXLCFGPpmBCQx2.yQOZ1v8rWyNDfS"

// cliEnv is the environment the identities commands run with in tests: the
// database, the test servers' secret (TOTP keys are sealed with it), cheap
// hashes.
func cliEnv(dsn string) func(string) string {
	return envOf(map[string]string{
		"DSN":                        dsn,
		"SECRETS_DEFAULT":            testSecret,
		"HASHERS_ARGON2_MEMORY_KIB":  "8192",
		"HASHERS_ARGON2_ITERATIONS":  "1",
		"HASHERS_ARGON2_PARALLELISM": "1",
	})
}

// identitiesCmd runs `identityd identities args…` in process.
func identitiesCmd(t *testing.T, dsn string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut strings.Builder
	code = run(context.Background(), append([]string{"identities"}, args...), &out, &errOut, cliEnv(dsn))
	return out.String(), errOut.String(), code
}

// migrated returns dsn after migrating it (PostgreSQL is not migrated by
// the commands, as serve does not migrate it).
func migrated(t *testing.T, dsn string) string {
	t.Helper()
	if !strings.HasPrefix(dsn, "sqlite") {
		dbtest.Open(t, dsn)
	}
	return dsn
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// exportLines runs an export and returns its lines, decoded.
func exportLines(t *testing.T, dsn string, args ...string) []map[string]any {
	t.Helper()
	out, errOut, code := identitiesCmd(t, dsn, append([]string{"export"}, args...)...)
	if code != 0 {
		t.Fatalf("export %v: exit %d: %s", args, code, errOut)
	}
	var docs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		docs = append(docs, d)
	}
	return docs
}

// TestIdentitiesImportReportsBadLines: a JSON lines file with good and bad
// lines imports the good ones, names each bad one by its line with the path
// in the Kratos document, and exits 1.
func TestIdentitiesImportReportsBadLines(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		dsn = migrated(t, dsn)
		file := writeFile(t, "in.jsonl", strings.Join([]string{
			`{"id":"0b8c3c0e-1b8e-4a8b-9a4e-000000000001","schema_id":"default","state":"active","traits":{"email":"one@example.com"},"credentials":{"password":{"type":"password","identifiers":["one@example.com"],"config":{"hashed_password":"` + cliTestHash + `"}}},"metadata_public":{"big":9007199254740993}}`,
			``,
			`{"schema_id":"default","traits":{"email":"not an email"}}`,
			`{broken`,
			`{"schema_id":"default","state":"asleep","traits":{"email":"three@example.com"}}`,
			`{"schema_id":"default","traits":{"email":"ONE@example.com"}}`,
			`{"traits":{"email":"two@example.com"},"credentials":{"webauthn":{"config":{"credentials":[]}},"password":{"config":{"hashed_password":"$md5$nope"}}}}`,
			`["not", "an", "object"]`,
			`{"traits":{"email":"four@example.com"},"credentials":{"webauthn":{"type":"webauthn","identifiers":[]}}}`,
			`{"traits":{"email":"five@example.com"},"metadata_admin":{"s":"tab\there, a \\ backslash, a \"quote\", é 🎉, \\N"}}`,
		}, "\n"))
		out, errOut, code := identitiesCmd(t, dsn, "import", file)
		if code != 1 {
			t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, out, errOut)
		}
		for _, want := range []string{
			"line 3: VALIDATION_FAILED at /traits/email",
			"line 4: VALIDATION_FAILED",
			"line 5: VALIDATION_FAILED at /state:",
			"line 6: IDENTIFIER_TAKEN at /traits/email",
			"line 7: VALIDATION_FAILED at /credentials/password/config/hashed_password",
			"line 8: VALIDATION_FAILED: not a JSON object",
		} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
		}
		if strings.Contains(errOut, "line 1:") || strings.Contains(errOut, "line 9:") || strings.Contains(errOut, "line 10:") {
			t.Errorf("a good line is reported:\n%s", errOut)
		}
		if !strings.Contains(out, "imported 3 of 9 identities, 6 failed") || !strings.Contains(out, "webauthn: credentials of this type are not imported: 1 identities") {
			t.Errorf("summary: %q", out)
		}
		docs := exportLines(t, dsn, "--with-credentials")
		if len(docs) != 3 {
			t.Fatalf("%d identities stored, want 3", len(docs))
		}
		// Each identity imported is an identity.imported event, written with
		// it (on PostgreSQL after a COPY), as importIdentities writes them.
		events, _, err := dbtest.Open(t, dsn).ListEvents(context.Background(), db.EventFilter{Types: []string{model.EventIdentityImported}}, uuid.Nil, 100)
		if err != nil || len(events) != 3 {
			t.Errorf("%d identity.imported events (%v), want 3", len(events), err)
		}
		if got := fmt.Sprint(byEmail(t, docs, "five@example.com")["metadata_admin"]); got != "map[s:tab\there, a \\ backslash, a \"quote\", é 🎉, \\N]" {
			t.Errorf("metadata_admin = %q: text must come back exactly", got)
		}
		one := byEmail(t, docs, "one@example.com")
		if one["id"] == "0b8c3c0e-1b8e-4a8b-9a4e-000000000001" {
			t.Errorf("the document's id was kept; import gives new ids, as Kratos's does")
		}
		if got := fmt.Sprint(one["metadata_public"]); got != "map[big:9007199254740993]" {
			t.Errorf("metadata_public = %s: numbers must stay exact", got)
		}
		creds, _ := one["credentials"].(map[string]any)
		pw, _ := creds["password"].(map[string]any)
		cfg, _ := pw["config"].(map[string]any)
		if cfg["hashed_password"] != cliTestHash {
			t.Errorf("password credential = %v, want the imported hash kept", pw)
		}
	})
}

// byEmail is the exported identity whose traits.email is email.
func byEmail(t *testing.T, docs []map[string]any, email string) map[string]any {
	t.Helper()
	for _, d := range docs {
		if traits, _ := d["traits"].(map[string]any); traits["email"] == email {
			return d
		}
	}
	t.Fatalf("no exported identity has the email %s", email)
	return nil
}

// TestIdentitiesImportDryRun: a dry run reports what would fail, including
// identifiers taken in the database or earlier in the batch, exits 1 when
// any would, and writes nothing.
func TestIdentitiesImportDryRun(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		dsn = migrated(t, dsn)
		seed := writeFile(t, "seed.jsonl", `{"traits":{"email":"taken@example.com"}}`+"\n")
		if out, errOut, code := identitiesCmd(t, dsn, "import", seed); code != 0 {
			t.Fatalf("seed: exit %d: %s %s", code, out, errOut)
		}
		file := writeFile(t, "in.jsonl", strings.Join([]string{
			`{"traits":{"email":"new@example.com"},"credentials":{"password":{"config":{"password":"x"}}}}`,
			`{"traits":{"email":"taken@example.com"}}`,
			`{"traits":{"email":"twice@example.com"}}`,
			`{"traits":{"email":"TWICE@example.com"}}`,
		}, "\n"))
		out, errOut, code := identitiesCmd(t, dsn, "import", "--dry-run", file)
		if code != 1 {
			t.Fatalf("exit %d, want 1: %s %s", code, out, errOut)
		}
		for _, want := range []string{"line 2: IDENTIFIER_TAKEN at /traits/email", "line 4: IDENTIFIER_TAKEN at /traits/email"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
		}
		if strings.Contains(errOut, "line 1:") || strings.Contains(errOut, "line 3:") {
			t.Errorf("a good line is reported:\n%s", errOut)
		}
		if !strings.Contains(out, "dry run: 2 of 4 identities would be imported, 2 failed") || !strings.Contains(out, "nothing was written") {
			t.Errorf("summary: %q", out)
		}
		if docs := exportLines(t, dsn); len(docs) != 1 {
			t.Fatalf("%d identities after a dry run, want the 1 seeded", len(docs))
		}
		// All good: exit 0, still nothing written.
		good := writeFile(t, "good.jsonl", `{"traits":{"email":"fine@example.com"}}`)
		if out, errOut, code := identitiesCmd(t, dsn, "import", good, "--dry-run"); code != 0 || !strings.Contains(out, "1 of 1 identities would be imported") {
			t.Fatalf("exit %d: %s %s", code, out, errOut)
		}
		if docs := exportLines(t, dsn); len(docs) != 1 {
			t.Fatalf("%d identities after a dry run, want 1", len(docs))
		}
	})
}

// TestIdentitiesImportLayouts: a JSON array (pretty-printed, several pages
// one after another), a `kratos list identities` page with its token,
// pretty-printed objects one after another, and stdin all load; a bad array
// item is named by its index and line.
func TestIdentitiesImportLayouts(t *testing.T) {
	dsn := dbtest.NewSQLite(t)
	array := `[
  {"schema_id": "default", "traits": {"email": "a1@example.com"}},
  {"schema_id": "default", "traits": {"email": 42}},
  {"schema_id": "default",
   "traits": {"email": "a3@example.com"}, "metadata_admin": {"note": "a ] and a } in a string, \" too"}}
]
[{"traits": {"email": "a4@example.com"}}]`
	out, errOut, code := identitiesCmd(t, dsn, "import", writeFile(t, "a.json", array))
	if code != 1 || !strings.Contains(errOut, "item 1 (line 3): VALIDATION_FAILED at /traits/email") || !strings.Contains(out, "imported 3 of 4") {
		t.Fatalf("array: exit %d\n%s\n%s", code, out, errOut)
	}

	page := `{"identities":[{"traits":{"email":"p1@example.com"}},{"traits":{"email":"p2@example.com"}}],"next_page_token":"abc"}`
	if out, errOut, code := identitiesCmd(t, dsn, "import", writeFile(t, "p.json", page)); code != 0 || !strings.Contains(out, "imported 2 of 2") {
		t.Fatalf("page: exit %d\n%s\n%s", code, out, errOut)
	}

	pretty := "{\n  \"traits\": {\"email\": \"v1@example.com\"}\n}\n{\n  \"traits\": {\"email\": \"v2@example.com\"}\n}\n"
	if out, errOut, code := identitiesCmd(t, dsn, "import", writeFile(t, "v.json", pretty)); code != 0 || !strings.Contains(out, "imported 2 of 2") {
		t.Fatalf("pretty values: exit %d\n%s\n%s", code, out, errOut)
	}

	old := stdin
	t.Cleanup(func() { stdin = old })
	stdin = func() io.Reader { return strings.NewReader(`{"traits":{"email":"s1@example.com"}}` + "\n") }
	if out, errOut, code := identitiesCmd(t, dsn, "import", "-"); code != 0 || !strings.Contains(out, "imported 1 of 1") {
		t.Fatalf("stdin: exit %d\n%s\n%s", code, out, errOut)
	}

	broken := "[\n{\"traits\": {\"email\": \"b1@example.com\"}}\n{\"traits\": {}}]"
	out, errOut, code = identitiesCmd(t, dsn, "import", writeFile(t, "b.json", broken))
	if code != 1 || !strings.Contains(errOut, "item 1 (line 3): want , or ]") || !strings.Contains(out, "imported 1 of 1") {
		t.Fatalf("broken array: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := len(exportLines(t, dsn)); n != 9 {
		t.Fatalf("%d identities, want 9", n)
	}
}

// TestIdentitiesImportProgress: progress goes to stderr as plain lines when
// it is not a terminal, as a bar when it is.
func TestIdentitiesImportProgress(t *testing.T) {
	dsn := dbtest.NewSQLite(t)
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf(`{"traits":{"email":"p%d@example.com"}}`, i))
	}
	file := writeFile(t, "in.jsonl", strings.Join(lines, "\n"))
	oldEvery, oldTerm := progressEvery, isTerminal
	t.Cleanup(func() { progressEvery, isTerminal = oldEvery, oldTerm })
	progressEvery = 0
	_, errOut, code := identitiesCmd(t, dsn, "import", "--batch", "10", file)
	if code != 0 || strings.Count(errOut, "done,") != 3 || !strings.Contains(errOut, "30 done, 0 failed, 100% of the input") {
		t.Fatalf("plain progress: exit %d, %q", code, errOut)
	}
	isTerminal = func(io.Writer) bool { return true }
	file = writeFile(t, "more.jsonl", strings.ReplaceAll(strings.Join(lines, "\n"), "@", "-2@"))
	out, errOut, code := identitiesCmd(t, dsn, "import", file)
	if code != 0 || !strings.Contains(errOut, "importing") || !strings.Contains(out, "imported 30 of 30") {
		t.Fatalf("bar: exit %d, %q %q", code, out, errOut)
	}
}

// TestIdentitiesExportFilters: the filters narrow the export, credentials
// show no secret without --with-credentials, and bad flags are refused.
func TestIdentitiesExportFilters(t *testing.T) {
	dsn := dbtest.NewSQLite(t)
	file := writeFile(t, "in.jsonl", strings.Join([]string{
		`{"traits":{"email":"on@example.com"},"credentials":{"password":{"config":{"hashed_password":"` + cliTestHash + `"}}}}`,
		`{"traits":{"email":"off@example.com"},"state":"inactive"}`,
	}, "\n"))
	if out, errOut, code := identitiesCmd(t, dsn, "import", file); code != 0 {
		t.Fatalf("import: %s %s", out, errOut)
	}
	all := exportLines(t, dsn)
	if len(all) != 2 {
		t.Fatalf("%d identities, want 2", len(all))
	}
	raw, _ := json.Marshal(all)
	if strings.Contains(string(raw), "hashed_password") || strings.Contains(string(raw), `"config"`) {
		t.Errorf("an export without --with-credentials shows a secret: %s", raw)
	}
	if creds, _ := byEmail(t, all, "on@example.com")["credentials"].(map[string]any); creds["password"] == nil {
		t.Errorf("the password credential is not listed: %v", all)
	}
	if docs := exportLines(t, dsn, "--filter-state", "inactive"); len(docs) != 1 || docs[0]["state"] != "inactive" {
		t.Errorf("--filter-state inactive: %v", docs)
	}
	if docs := exportLines(t, dsn, "--filter-schema", "other"); len(docs) != 0 {
		t.Errorf("--filter-schema other: %v", docs)
	}
	for _, args := range [][]string{{"import", "--help"}, {"export", "-h"}, {"--help"}} {
		if out, errOut, code := identitiesCmd(t, dsn, args...); code != 0 || !strings.Contains(out, "--") {
			t.Errorf("%v: exit %d, %q %q; want the flags on stdout", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"export", "--filter-state", "sleepy"}, {"export", "extra"}, {"import", "--batch", "1001"}, {"nothing"}} {
		if _, errOut, code := identitiesCmd(t, dsn, args...); code == 0 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want a refusal", args, code, errOut)
		}
	}
}

// TestIdentitiesRoundTrip: identities with every field, made through
// GraphQL, exported with credentials and imported into a fresh database,
// come back the same (ids and timestamps aside: an import makes new ones),
// on each database and from SQLite to PostgreSQL, which is how a user moves
// off the embedded default.
func TestIdentitiesRoundTrip(t *testing.T) {
	pairs := []struct{ name, from, to string }{
		{"sqlite", dbtest.NewSQLite(t), dbtest.NewSQLite(t)},
		{"postgres", dbtest.NewPostgres(t), dbtest.NewPostgres(t)},
		{"sqlite-to-postgres", dbtest.NewSQLite(t), dbtest.NewPostgres(t)},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			srv := newTestServer(t, p.from, func(c *Config) { c.Selfservice.Methods.TOTP.Enabled = true })
			createEveryField(t, srv)
			to := migrated(t, p.to)

			first := exportLines(t, p.from, "--with-credentials")
			if len(first) != 4 {
				t.Fatalf("%d identities exported, want 4", len(first))
			}
			var file strings.Builder
			for _, d := range first {
				b, _ := json.Marshal(d)
				file.Write(b)
				file.WriteByte('\n')
			}
			out, errOut, code := identitiesCmd(t, to, "import", writeFile(t, "export.jsonl", file.String()))
			if code != 0 {
				t.Fatalf("import of the export: exit %d\n%s\n%s", code, out, errOut)
			}
			if !strings.Contains(out, "imported 4 of 4") {
				t.Errorf("summary: %s", out)
			}
			second := exportLines(t, to, "--with-credentials")
			want, got := comparable(t, first), comparable(t, second)
			if !slices.Equal(want, got) {
				t.Fatalf("round trip differs:\nwant %s\n got %s", strings.Join(want, "\n     "), strings.Join(got, "\n     "))
			}
		})
	}
}

// createEveryField creates, through GraphQL, identities that use every
// field an import carries.
func createEveryField(t *testing.T, srv *testServer) {
	t.Helper()
	const mutation = `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { id } userErrors { code path message } } }`
	inputs := []map[string]any{
		{
			"schemaId":       "default",
			"externalId":     "ext-full",
			"traits":         map[string]any{"email": "full@example.com"},
			"metadataPublic": map[string]any{"plan": "pro", "n": json.Number("9007199254740993")},
			"metadataAdmin":  map[string]any{"crm": "A-1"},
			"verifiableAddresses": []any{map[string]any{"value": "full@example.com", "via": "email", "verified": true,
				"verifiedAt": "2024-05-06T07:08:09.123456Z", "status": "completed"}},
			"recoveryAddresses": []any{map[string]any{"value": "backup@example.com", "via": "email"}},
			"credentials": map[string]any{
				"password": map[string]any{"hashedPassword": cliTestHash},
				"oidc": map[string]any{"providers": []any{
					map[string]any{"provider": "github", "subject": "gh-1"},
					map[string]any{"provider": "google", "subject": "g-1", "organization": "9b2e8f3c-4a55-4f6e-8a2b-0c1d2e3f4a5b"},
				}},
				"totp":         map[string]any{"secretUrl": "otpauth://totp/Example:full@example.com?secret=JBSWY3DPEHPK3PXP&issuer=Example"},
				"lookupSecret": map[string]any{"codes": []any{"aaaaa-bbbbb", "ccccc-ddddd"}},
			},
		},
		{
			"externalId":     "ext-inactive",
			"state":          "INACTIVE",
			"traits":         map[string]any{"email": "off@example.com"},
			"metadataPublic": []any{1, 2, 3},
			"credentials":    map[string]any{"password": map[string]any{"password": "a long enough passphrase 42"}},
		},
		{
			"externalId":          "ext-unverified",
			"traits":              map[string]any{"email": "plain@example.com"},
			"verifiableAddresses": []any{map[string]any{"value": "plain@example.com", "via": "email", "verified": false, "status": "sent"}},
		},
		{
			"externalId":  "ext-oidc-only",
			"traits":      map[string]any{"email": "social@example.com"},
			"credentials": map[string]any{"oidc": map[string]any{"providers": []any{map[string]any{"provider": "github", "subject": "gh-2"}}}},
		},
	}
	for i, in := range inputs {
		r := srv.admin(t, mutation, map[string]any{"in": in})
		var data struct {
			CreateIdentity struct {
				UserErrors []map[string]any `json:"userErrors"`
			} `json:"createIdentity"`
		}
		r.decode(t, &data)
		if len(data.CreateIdentity.UserErrors) > 0 {
			t.Fatalf("create %d: %v", i, data.CreateIdentity.UserErrors)
		}
	}
}

// volatile matches what an import makes anew: ids and timestamps (of the
// identity, its addresses and credentials) and credential versions.
var volatile = regexp.MustCompile(`"(id|created_at|updated_at|state_changed_at|version)":("[^"]*"|\d+),?`)

// comparable turns exported identities into sorted canonical lines without
// what an import makes anew. Lookup secrets are never exported (only their
// keyed hashes are stored), so they are left out of the comparison.
func comparable(t *testing.T, docs []map[string]any) []string {
	t.Helper()
	var out []string
	for _, d := range docs {
		if creds, ok := d["credentials"].(map[string]any); ok {
			delete(creds, "lookup_secret")
			if totp, ok := creds["totp"].(map[string]any); ok {
				// Identifiers of a TOTP credential are Kratos's placeholder
				// (the identity's id) where the schema names none.
				delete(totp, "identifiers")
			}
		}
		b, err := json.Marshal(d) // map keys sorted
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.ReplaceAll(volatile.ReplaceAllString(string(b), ""), ",}", "}"))
	}
	slices.Sort(out)
	return out
}
