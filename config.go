package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/password"
	"github.com/identityd/identityd/schemas"
)

// Config is the whole configuration: one YAML file, every key overridable by
// an environment variable named after its path (serve.address → SERVE_ADDRESS).
type Config struct {
	DSN      string         `yaml:"dsn"`
	Serve    ServeConfig    `yaml:"serve"`
	Identity IdentityConfig `yaml:"identity"`
	Admin    AdminConfig    `yaml:"admin"`
	Session  SessionConfig  `yaml:"session"`
	Hashers  HashersConfig  `yaml:"hashers"`
	Log      LogConfig      `yaml:"log"`
}

// HashersConfig is how new passwords are hashed (argon2id) and how many
// hashes may be computed at once: each takes argon2.memory_kib of memory, so
// the bound is what keeps a burst of logins from exhausting the machine.
type HashersConfig struct {
	Argon2        Argon2Config `yaml:"argon2"`
	MaxConcurrent int          `yaml:"max_concurrent"`
}

// Argon2Config is the argon2id parameters for new hashes.
type Argon2Config struct {
	MemoryKiB   uint32 `yaml:"memory_kib"`
	Iterations  uint32 `yaml:"iterations"`
	Parallelism uint8  `yaml:"parallelism"`
}

// ServeConfig is the HTTP server.
type ServeConfig struct {
	Address string `yaml:"address"`
	// Introspection lets clients (and the playground) read the schema.
	Introspection bool `yaml:"introspection"`
	// MaxBodyBytes caps a request body; an import of 1,000 identities fits.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxDepth and MaxComplexity bound the work one query can ask for.
	MaxDepth      int `yaml:"max_depth"`
	MaxComplexity int `yaml:"max_complexity"`
	// ShutdownTimeout is how long in-flight requests may finish on SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// IdentityConfig is the identity schemas.
type IdentityConfig struct {
	DefaultSchemaID string           `yaml:"default_schema_id"`
	Schemas         []schemas.Source `yaml:"schemas"`
}

// AdminConfig is who may use the admin API.
type AdminConfig struct {
	APIKeys []string `yaml:"api_keys"`
}

// SessionConfig is sessions.
type SessionConfig struct {
	Lifespan Duration     `yaml:"lifespan"`
	Cookie   CookieConfig `yaml:"cookie"`
}

// CookieConfig is the browser session cookie.
type CookieConfig struct {
	Name string `yaml:"name"`
	// Secure is true, false or auto (Secure unless served over plain HTTP
	// on a loopback address).
	Secure string `yaml:"secure"`
	// SameSite is lax or strict.
	SameSite string `yaml:"same_site"`
	// AllowedOrigins are browser origins (https://app.example.com) that may
	// call the API with credentials (CORS) and get the cookie on login.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// LogConfig is logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Duration is a time.Duration written as Go writes it ("24h", "90m").
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	return d.set(s)
}

func (d *Duration) set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (for example 24h or 90m)", s)
	}
	*d = Duration(v)
	return nil
}

// defaultConfig is what `go run .` runs with when nothing is configured.
func defaultConfig() Config {
	return Config{
		DSN: "sqlite://./data/identity.db",
		Serve: ServeConfig{
			Address:         "127.0.0.1:4455",
			Introspection:   true,
			MaxBodyBytes:    8 << 20,
			MaxDepth:        12,
			MaxComplexity:   5000,
			ShutdownTimeout: Duration(15 * time.Second),
		},
		Identity: IdentityConfig{
			DefaultSchemaID: "default",
			Schemas:         []schemas.Source{{ID: "default", URL: "preset://email"}},
		},
		Session: SessionConfig{
			Lifespan: Duration(24 * time.Hour),
			Cookie:   CookieConfig{Name: "identityd_session", Secure: "auto", SameSite: "lax"},
		},
		Hashers: HashersConfig{
			Argon2:        Argon2Config{MemoryKiB: defaultArgon2.Memory, Iterations: defaultArgon2.Iterations, Parallelism: defaultArgon2.Parallelism},
			MaxConcurrent: runtime.NumCPU(),
		},
		Log: LogConfig{Level: "info", Format: "text"},
	}
}

// loadConfig reads the YAML file at path (none when empty), then applies the
// environment, then checks the result. Every error names the key at fault.
func loadConfig(path string, getenv func(string) string) (Config, error) {
	cfg := defaultConfig()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		defer f.Close()
		dec := yaml.NewDecoder(f)
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(reflect.ValueOf(&cfg).Elem(), nil, getenv); err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

// applyEnv walks the config by its yaml keys and sets each leaf whose
// environment variable is set. Lists and objects are JSON; a list of strings
// may also be comma-separated (ADMIN_API_KEYS=a,b).
func applyEnv(v reflect.Value, path []string, getenv func(string) string) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if key == "" || key == "-" {
			continue
		}
		p := append(path[:len(path):len(path)], key)
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
			if err := applyEnv(fv, p, getenv); err != nil {
				return err
			}
			continue
		}
		name := strings.ToUpper(strings.Join(p, "_"))
		raw := getenv(name)
		if raw == "" {
			continue
		}
		if err := setFromEnv(fv, raw); err != nil {
			return fmt.Errorf("config: %s (env %s): %w", strings.Join(p, "."), name, err)
		}
	}
	return nil
}

func setFromEnv(fv reflect.Value, raw string) error {
	switch fv.Interface().(type) {
	case Duration:
		var d Duration
		if err := d.set(raw); err != nil {
			return err
		}
		fv.Set(reflect.ValueOf(d))
		return nil
	case []string:
		if !strings.HasPrefix(strings.TrimSpace(raw), "[") {
			var list []string
			for _, s := range strings.Split(raw, ",") {
				if s = strings.TrimSpace(s); s != "" {
					list = append(list, s)
				}
			}
			fv.Set(reflect.ValueOf(list))
			return nil
		}
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", raw)
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", raw)
		}
		fv.SetInt(n)
	case reflect.Uint8, reflect.Uint32:
		n, err := strconv.ParseUint(raw, 10, fv.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a non-negative integer that fits", raw)
		}
		fv.SetUint(n)
	default:
		ptr := reflect.New(fv.Type())
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(ptr.Interface()); err != nil {
			return fmt.Errorf("not valid JSON for this key: %w", err)
		}
		fv.Set(ptr.Elem())
	}
	return nil
}

// validate checks what can be checked without opening anything.
func (c Config) validate() error {
	if _, err := db.ParseDSN(c.DSN); err != nil {
		return fmt.Errorf("config: dsn: %w", err)
	}
	if _, _, err := net.SplitHostPort(c.Serve.Address); err != nil {
		return fmt.Errorf("config: serve.address: %q is not host:port: %w", c.Serve.Address, err)
	}
	if c.Serve.MaxBodyBytes < 1024 {
		return fmt.Errorf("config: serve.max_body_bytes: %d is too small (at least 1024)", c.Serve.MaxBodyBytes)
	}
	if c.Serve.MaxDepth < 1 {
		return fmt.Errorf("config: serve.max_depth: must be at least 1")
	}
	if c.Serve.MaxComplexity < 1 {
		return fmt.Errorf("config: serve.max_complexity: must be at least 1")
	}
	if c.Session.Lifespan <= 0 {
		return fmt.Errorf("config: session.lifespan: must be positive")
	}
	ck := c.Session.Cookie
	if ck.Name == "" || strings.ContainsAny(ck.Name, " ;=,") {
		return fmt.Errorf("config: session.cookie.name: %q is not a valid cookie name", ck.Name)
	}
	if ck.Secure != "true" && ck.Secure != "false" && ck.Secure != "auto" {
		return fmt.Errorf("config: session.cookie.secure: %q is not true, false or auto", ck.Secure)
	}
	if ck.SameSite != "lax" && ck.SameSite != "strict" {
		return fmt.Errorf("config: session.cookie.same_site: %q is not lax or strict", ck.SameSite)
	}
	for i, o := range ck.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return fmt.Errorf("config: session.cookie.allowed_origins[%d]: %q is not an origin like https://app.example.com", i, o)
		}
	}
	if len(c.Identity.Schemas) == 0 {
		return fmt.Errorf("config: identity.schemas: at least one schema is needed")
	}
	found := false
	for i, s := range c.Identity.Schemas {
		if s.ID == "" || s.URL == "" {
			return fmt.Errorf("config: identity.schemas[%d]: both id and url are required", i)
		}
		found = found || s.ID == c.Identity.DefaultSchemaID
	}
	if !found {
		return fmt.Errorf("config: identity.default_schema_id: %q is not among identity.schemas", c.Identity.DefaultSchemaID)
	}
	for i, k := range c.Admin.APIKeys {
		if len(k) < 16 {
			return fmt.Errorf("config: admin.api_keys[%d]: too short (at least 16 characters)", i)
		}
	}
	if a := c.Hashers.Argon2; a.MemoryKiB < 8*1024 || a.Iterations < 1 || a.Parallelism < 1 {
		return fmt.Errorf("config: hashers.argon2: memory_kib must be at least 8192, iterations and parallelism at least 1")
	}
	if c.Hashers.MaxConcurrent < 1 {
		return fmt.Errorf("config: hashers.max_concurrent: must be at least 1")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("config: log.format: %q is not text or json", c.Log.Format)
	}
	return nil
}

var defaultArgon2 = password.DefaultParams()

// argon2Params is the hasher's view of the config.
func (c HashersConfig) argon2Params() password.Params {
	p := password.DefaultParams()
	p.Memory, p.Iterations, p.Parallelism = c.Argon2.MemoryKiB, c.Argon2.Iterations, c.Argon2.Parallelism
	return p
}
