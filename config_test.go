package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/identityd/identityd/schemas"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DSN != "sqlite://./data/identity.db" || cfg.Serve.Address != "127.0.0.1:4455" ||
		cfg.Identity.DefaultSchemaID != "default" || time.Duration(cfg.Session.Lifespan) != 24*time.Hour ||
		!reflect.DeepEqual(cfg.Identity.Schemas, []schemas.Source{{ID: "default", URL: "preset://email"}}) {
		t.Fatalf("defaults differ from CONTRACT.md: %+v", cfg)
	}
}

func TestConfigFileAndEnv(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte(`
dsn: postgres://u@db/identity
serve:
  address: 0.0.0.0:8080
identity:
  default_schema_id: customer
  schemas:
    - {id: customer, url: "preset://basic"}
admin:
  api_keys: ["file-key-0123456789abcdef"]
session:
  lifespan: 1h
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		env   map[string]string
		check func(Config) bool
	}{
		{"file only", nil, func(c Config) bool {
			return c.DSN == "postgres://u@db/identity" && c.Serve.Address == "0.0.0.0:8080" && c.Identity.DefaultSchemaID == "customer" &&
				time.Duration(c.Session.Lifespan) == time.Hour && c.Admin.APIKeys[0] == "file-key-0123456789abcdef"
		}},
		{"env overrides", map[string]string{"SERVE_ADDRESS": "127.0.0.1:9", "SESSION_LIFESPAN": "90m", "DSN": "sqlite://:memory:"}, func(c Config) bool {
			return c.Serve.Address == "127.0.0.1:9" && time.Duration(c.Session.Lifespan) == 90*time.Minute && c.DSN == "sqlite://:memory:"
		}},
		{"comma-separated keys", map[string]string{"ADMIN_API_KEYS": "aaaaaaaaaaaaaaaa1, bbbbbbbbbbbbbbbb2"}, func(c Config) bool {
			return reflect.DeepEqual(c.Admin.APIKeys, []string{"aaaaaaaaaaaaaaaa1", "bbbbbbbbbbbbbbbb2"})
		}},
		{"JSON keys", map[string]string{"ADMIN_API_KEYS": `["aaaaaaaaaaaaaaaa1"]`}, func(c Config) bool {
			return reflect.DeepEqual(c.Admin.APIKeys, []string{"aaaaaaaaaaaaaaaa1"})
		}},
		{"JSON schemas", map[string]string{"IDENTITY_SCHEMAS": `[{"id":"customer","url":"preset://username"}]`}, func(c Config) bool {
			return c.Identity.Schemas[0].URL == "preset://username"
		}},
		{"nested numbers", map[string]string{"HASHERS_ARGON2_MEMORY_KIB": "16384", "GRAPHQL_LIMITS_MAX_DEPTH": "5", "SERVE_INTROSPECTION": "false"}, func(c Config) bool {
			return c.Hashers.Argon2.MemoryKiB == 16384 && c.GraphQL.Limits.MaxDepth == 5 && !c.Serve.Introspection
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(file, envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Fatalf("got %+v", cfg)
			}
		})
	}
}

// TestConfigErrorsNameTheKey: every bad value stops the start with the key.
func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		yaml string
		env  map[string]string
		want string
	}{
		{"", map[string]string{"SESSION_LIFESPAN": "soon"}, "session.lifespan"},
		{"", map[string]string{"GRAPHQL_LIMITS_MAX_DEPTH": "deep"}, "graphql.limits.max_depth"},
		{"", map[string]string{"SERVE_ADDRESS": ":99999"}, "serve.address"},
		{"", map[string]string{"SERVE_TRUSTED_PROXIES": "10.0.0.0/33"}, "serve.trusted_proxies[0]"},
		{"", map[string]string{"SERVE_CORS_ALLOWED_ORIGINS": "*"}, "serve.cors.allowed_origins[0]"},
		{"", map[string]string{"SERVE_ADMIN_ADDRESS": "127.0.0.1:4455"}, "serve.admin_address"},
		{"", map[string]string{"SELFSERVICE_FLOWS_SETTINGS_PRIVILEGED_SESSION_MAX_AGE": "0s"}, "privileged_session_max_age"},
		{"", map[string]string{"SERVE_INTROSPECTION": "maybe"}, "serve.introspection"},
		{"", map[string]string{"IDENTITY_SCHEMAS": `{"id":1}`}, "identity.schemas"},
		{"", map[string]string{"DSN": "mysql://x"}, "dsn"},
		{"", map[string]string{"SERVE_ADDRESS": "nope"}, "serve.address"},
		{"", map[string]string{"ADMIN_API_KEYS": "short"}, "admin.api_keys[0]"},
		{"", map[string]string{"IDENTITY_DEFAULT_SCHEMA_ID": "x"}, "identity.default_schema_id"},
		{"", map[string]string{"LOG_LEVEL": "loud"}, "log.level"},
		{"", map[string]string{"SESSION_COOKIE_SAME_SITE": "sideways"}, "session.cookie.same_site"},
		{"", map[string]string{"SESSION_COOKIE_SAME_SITE": "none", "SESSION_COOKIE_SECURE": "false"}, "none needs session.cookie.secure"},
		{"", map[string]string{"SESSION_COOKIE_DOMAIN": "example.com/path"}, "session.cookie.domain"},
		{"", map[string]string{"SESSION_COOKIE_ALLOWED_ORIGINS": "app.example.com"}, "session.cookie.allowed_origins[0]"},
		{"serve:\n  adress: x\n", nil, "unknown key serve.adress (did you mean serve.address?)"},
		{"session:\n  lifespan: 24\n", nil, "line 2: session.lifespan: expected a duration such as 24h"},
		{"identity:\n  schemas: {id: a, url: preset://email}\n", nil, "identity.schemas: expected a list of objects with the keys id, url"},
		{"serve: 5\n", nil, "line 1: serve: expected an object with the keys"},
		{"serve:\n  cors:\n    enabled: maybe\n", nil, "serve.cors.enabled: expected true or false"},
		{"session:\n  lifespan: forever\n", nil, "forever"},
	}
	for _, tc := range tests {
		path := ""
		if tc.yaml != "" {
			path = filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, err := loadConfig(path, envOf(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("yaml %q env %v: err %v, want one naming %q", tc.yaml, tc.env, err, tc.want)
		}
		// Go's names for types are no help to an operator.
		if err != nil && (strings.Contains(err.Error(), "main.") || strings.Contains(err.Error(), "schemas.Source") || strings.Contains(err.Error(), "Go value")) {
			t.Errorf("yaml %q env %v: %v shows Go internals", tc.yaml, tc.env, err)
		}
	}
}

func TestAdminKeys(t *testing.T) {
	dir := t.TempDir()
	keys, gen, err := resolveAdminKeys(nil, "127.0.0.1:4455", dir)
	if err != nil || !gen || len(keys) != 1 || !strings.HasPrefix(keys[0], "idadm_") {
		t.Fatalf("loopback without keys: %v %v %v", keys, gen, err)
	}
	st, err := os.Stat(filepath.Join(dir, adminKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", st, err)
	}
	again, _, _ := resolveAdminKeys(nil, "localhost:4455", dir)
	if again[0] != keys[0] {
		t.Errorf("the generated key changed between starts")
	}
	if _, _, err := resolveAdminKeys(nil, "0.0.0.0:4455", dir); err == nil || !strings.Contains(err.Error(), "ADMIN_API_KEYS") {
		t.Errorf("non-loopback without keys: %v, want a refusal naming ADMIN_API_KEYS", err)
	}
	if got, gen, _ := resolveAdminKeys([]string{"configured-key-0123456789"}, "0.0.0.0:1", dir); gen || got[0] != "configured-key-0123456789" {
		t.Errorf("configured keys not used as they are")
	}
}
