package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/graph"
	"github.com/identityd/identityd/internal/code"
	"github.com/identityd/identityd/internal/courier"
	"github.com/identityd/identityd/internal/events"
	"github.com/identityd/identityd/internal/mfa"
	"github.com/identityd/identityd/internal/oidc"
	"github.com/identityd/identityd/internal/passkey"
	"github.com/identityd/identityd/internal/password"
	"github.com/identityd/identityd/internal/session"
	"github.com/identityd/identityd/internal/webhook"
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
	GraphQL  GraphQLConfig  `yaml:"graphql"`
	// Selfservice is Kratos's key for the self-service flows.
	Selfservice SelfserviceConfig `yaml:"selfservice"`
	// Courier is how emails and SMS go out, under Kratos's key names.
	Courier CourierConfig `yaml:"courier"`
	// Secrets are the server's keys, under Kratos's key names.
	Secrets SecretsConfig `yaml:"secrets"`
	// Events is the audit trail of every change.
	Events EventsConfig `yaml:"events"`
	// Webhooks receive events as they happen.
	Webhooks []WebhookConfig `yaml:"webhooks"`

	// now, when set, is the services' clock (tests move it forward); no
	// key sets it.
	now func() time.Time
	// manualCodeRequests leaves code requests to the caller of
	// session.ResolveCodeRequests instead of the background loop (tests
	// that count a request's queries); no key sets it.
	manualCodeRequests bool
	// webhookWorker, when set, tunes the webhook worker (tests shorten its
	// waits); no key sets it.
	webhookWorker func(*webhook.WorkerConfig)
	// manualWebhooks leaves webhook delivery to the test that calls the
	// worker's DeliverBatch, instead of the background loop; no key sets it.
	manualWebhooks bool
}

// EventsConfig is the audit trail.
type EventsConfig struct {
	// Retention is how long events are kept; older ones are deleted in
	// small batches by a background job.
	Retention Duration `yaml:"retention"`
}

// WebhookConfig is one receiver of events, delivered as the Standard
// Webhooks spec says.
type WebhookConfig struct {
	URL string `yaml:"url"`
	// Events are the event types it receives; "*" matches any run of
	// characters ("identity.*", "*").
	Events []string `yaml:"events"`
	// Secret signs the deliveries: "whsec_" and base64 of 24 to 64 random
	// bytes, as Standard Webhooks libraries make and read them.
	Secret string `yaml:"secret"`
	// MaxAttempts is how many times a delivery is tried before it is
	// abandoned (8 when absent): with the backoff (30s, doubled each time,
	// at most 1h) eight tries span about an hour.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
}

// SecretsConfig is the server's secrets.
type SecretsConfig struct {
	// Default keys the hashes of one-time codes (HMAC-SHA256), at least 16
	// characters each. The first keys new codes and every one is tried on
	// a check, so a secret is rotated by putting a new one first and
	// dropping the old one once its codes have expired. None: a server on
	// a loopback address makes one and keeps it in the data folder; on any
	// other address it refuses to start.
	Default []string `yaml:"default"`
	// Cipher encrypts second-factor secrets at rest (TOTP keys), at least
	// 32 characters each, as Kratos requires. The first encrypts, every one
	// decrypts, so a key is rotated by putting a new one first: keys are
	// sealed again with it as they are used. None: secrets.default is used.
	Cipher []string `yaml:"cipher"`
}

// CourierConfig is the courier: the SMTP server, the HTTP channels (SMS),
// the templates and the delivery worker, under Kratos's key names (worker.
// enabled and worker.retry_backoff are this service's own).
type CourierConfig struct {
	SMTP CourierSMTPConfig `yaml:"smtp"`
	// Channels are Kratos's HTTP channels: id sms (and email), type http.
	Channels []courier.Channel `yaml:"channels"`
	// TemplateOverridePath is a folder in Kratos's template layout
	// (verification_code/valid/email.body.gotmpl, …) whose files replace
	// the built-in ones.
	TemplateOverridePath string `yaml:"template_override_path"`
	// MessageRetries is how many times a failed message is tried again
	// before it is abandoned.
	MessageRetries int                 `yaml:"message_retries"`
	Worker         CourierWorkerConfig `yaml:"worker"`
}

// CourierSMTPConfig is the SMTP server emails go through. With no
// connection_uri, emails stay queued (admins read them with courierMessages).
type CourierSMTPConfig struct {
	// ConnectionURI is smtp://user:password@host:port/ (STARTTLS unless
	// ?disable_starttls=true) or smtps://… (implicit TLS);
	// ?skip_ssl_verify=true accepts any certificate.
	ConnectionURI string            `yaml:"connection_uri"`
	FromAddress   string            `yaml:"from_address"`
	FromName      string            `yaml:"from_name"`
	Headers       map[string]string `yaml:"headers"`
	// LocalName is the HELO name; the host name when empty.
	LocalName string `yaml:"local_name"`
}

// CourierWorkerConfig is the delivery worker.
type CourierWorkerConfig struct {
	// Enabled runs the worker inside serve (default). False: serve only
	// queues, and `identityd courier watch` delivers, in its own process.
	Enabled bool `yaml:"enabled"`
	// PullCount is the most messages claimed and sent in one batch.
	PullCount int `yaml:"pull_count"`
	// PullWait is how often the outbox is read when this process queued
	// nothing (messages queued here are sent at once).
	PullWait Duration `yaml:"pull_wait"`
	// RetryBackoff is the wait after a first failed attempt, doubled after
	// each further one (at most an hour).
	RetryBackoff Duration `yaml:"retry_backoff"`
}

// GraphQLConfig is the GraphQL endpoint.
type GraphQLConfig struct {
	Limits GraphQLLimits `yaml:"limits"`
}

// GraphQLLimits bound the work one request can ask for, checked before the
// work is done: the body and the token count before parsing, the rest on the
// parsed document before it is validated or run. Admin callers (a valid admin
// key) get the admin_ limits, which an import of many identities needs.
type GraphQLLimits struct {
	// MaxBodyBytes caps a request body from anyone but an admin.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// AdminMaxBodyBytes caps an admin's request body: an import of 1,000
	// identities in a variable fits.
	AdminMaxBodyBytes int64 `yaml:"admin_max_body_bytes"`
	// MaxTokens caps the lexer tokens of a query document.
	MaxTokens int `yaml:"max_tokens"`
	// AdminMaxTokens is MaxTokens for admins.
	AdminMaxTokens int `yaml:"admin_max_tokens"`
	// MaxDepth caps how deeply fields nest.
	MaxDepth int `yaml:"max_depth"`
	// MaxComplexity caps gqlgen's complexity (list sizes times fields).
	MaxComplexity int `yaml:"max_complexity"`
	// MaxFields caps the fields of the operation with every fragment
	// expanded.
	MaxFields int `yaml:"max_fields"`
	// MaxAliases caps aliased fields; AdminMaxAliases is that for admins.
	MaxAliases      int `yaml:"max_aliases"`
	AdminMaxAliases int `yaml:"admin_max_aliases"`
	// MaxRootFields caps the top-level fields of one operation.
	MaxRootFields int `yaml:"max_root_fields"`
	// MaxDirectives caps the directives at any one location.
	MaxDirectives int `yaml:"max_directives"`
	// MaxVariables caps the variables an operation declares, and those a
	// request sends.
	MaxVariables int `yaml:"max_variables"`
	// MaxFragments caps the fragment definitions of one document: the
	// validator compares the fragments spread in a selection set pairwise.
	MaxFragments int `yaml:"max_fragments"`
	// CPUBudget is how long the checks on one document may run before it
	// is refused.
	CPUBudget Duration `yaml:"cpu_budget"`
}

// SelfserviceConfig is the self-service flows, under Kratos's key names.
type SelfserviceConfig struct {
	Flows FlowsConfig `yaml:"flows"`
	// Methods switches the ways of signing in on and off, under Kratos's
	// key names.
	Methods MethodsConfig `yaml:"methods"`
	// AllowedReturnURLs are where a browser flow may send the browser
	// afterwards (returnTo): exact URLs, or a prefix ending in "/" that
	// covers its paths; "*." in the host matches subdomains.
	AllowedReturnURLs []string `yaml:"allowed_return_urls"`
	// DefaultBrowserReturnURL is where a browser flow goes without a
	// returnTo.
	DefaultBrowserReturnURL string `yaml:"default_browser_return_url"`
	// Codes is the one-time codes of verification and recovery.
	Codes CodesConfig `yaml:"codes"`
}

// MethodsConfig is the sign-in methods beyond passwords.
type MethodsConfig struct {
	TOTP         TOTPMethodConfig    `yaml:"totp"`
	LookupSecret MethodConfig        `yaml:"lookup_secret"`
	Code         CodeMethodConfig    `yaml:"code"`
	Passkey      PasskeyMethodConfig `yaml:"passkey"`
	OIDC         OIDCMethodConfig    `yaml:"oidc"`
}

// CodeMethodConfig is signing in with a one-time code sent by email or SMS
// (passwordless). Off by default: it needs the courier to reach people.
type CodeMethodConfig struct {
	Enabled bool `yaml:"enabled"`
	// PasswordlessEnabled is Kratos's switch for the same thing; either
	// key switches it on.
	PasswordlessEnabled bool `yaml:"passwordless_enabled"`
	Config              struct {
		// Lifespan is how long a sign-in code is valid.
		Lifespan Duration `yaml:"lifespan"`
	} `yaml:"config"`
}

// PasskeyMethodConfig is passkeys (WebAuthn). Off by default: it needs the
// relying party's id and origins.
type PasskeyMethodConfig struct {
	Enabled bool `yaml:"enabled"`
	Config  struct {
		RP PasskeyRPConfig `yaml:"rp"`
	} `yaml:"config"`
}

// PasskeyRPConfig is the WebAuthn relying party, under Kratos's key names.
type PasskeyRPConfig struct {
	// ID is the relying party id: the site's registrable domain
	// (example.com), which passkeys are bound to.
	ID string `yaml:"id"`
	// DisplayName is the name browsers show.
	DisplayName string `yaml:"display_name"`
	// Origins are the web origins (https://app.example.com) allowed to use
	// the passkeys.
	Origins []string `yaml:"origins"`
}

// OIDCMethodConfig is social sign-in with OpenID Connect providers. Off by
// default: it needs providers.
type OIDCMethodConfig struct {
	Enabled bool `yaml:"enabled"`
	Config  struct {
		Providers []OIDCProviderConfig `yaml:"providers"`
	} `yaml:"config"`
}

// OIDCProviderConfig is one provider, as Kratos writes it.
type OIDCProviderConfig struct {
	ID string `yaml:"id"`
	// Provider is the kind: generic, google, github, microsoft, apple, …
	Provider     string   `yaml:"provider"`
	Label        string   `yaml:"label"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	IssuerURL    string   `yaml:"issuer_url"`
	AuthURL      string   `yaml:"auth_url"`
	TokenURL     string   `yaml:"token_url"`
	Scope        []string `yaml:"scope"`
	// MapperURL is the Jsonnet that maps claims to traits (file://,
	// base64://, http(s)://), run as Kratos runs it.
	MapperURL string `yaml:"mapper_url"`
	// MicrosoftTenant is the tenant of a microsoft provider.
	MicrosoftTenant string `yaml:"microsoft_tenant"`
	// AppleTeamID, AppleKeyID and ApplePrivateKey make Apple's client
	// secret.
	AppleTeamID     string `yaml:"apple_team_id"`
	AppleKeyID      string `yaml:"apple_private_key_id"`
	ApplePrivateKey string `yaml:"apple_private_key"`
}

// MethodConfig switches a method on or off. Switched off, it cannot be set
// up; second factors set up before keep working (nobody is locked out).
type MethodConfig struct {
	Enabled bool `yaml:"enabled"`
}

// TOTPMethodConfig is authenticator apps (TOTP) as a second factor.
type TOTPMethodConfig struct {
	Enabled bool `yaml:"enabled"`
	Config  struct {
		// Issuer names this service in authenticator apps.
		Issuer string `yaml:"issuer"`
	} `yaml:"config"`
}

// CodesConfig is the one-time codes sent by email or SMS (verification,
// recovery).
type CodesConfig struct {
	// Length is the digits of a code sent by email or SMS (6 to 12).
	Length int `yaml:"length"`
	// MaxAttempts is how many times such a code may be tried before it is
	// dead.
	MaxAttempts int `yaml:"max_attempts"`
	// Throttle limits requests for codes and checks of codes, per address
	// and per client address, as selfservice.flows.login.throttle does
	// logins: every request counts, a right code hands its check back.
	Throttle ThrottleConfig `yaml:"throttle"`
}

// FlowsConfig is the settings of each flow.
type FlowsConfig struct {
	Login        LoginFlowConfig    `yaml:"login"`
	Settings     SettingsFlowConfig `yaml:"settings"`
	Verification CodeFlowConfig     `yaml:"verification"`
	Recovery     CodeFlowConfig     `yaml:"recovery"`
	Invitation   CodeFlowConfig     `yaml:"invitation"`
}

// CodeFlowConfig is a flow that sends a one-time code.
type CodeFlowConfig struct {
	// Lifespan is how long its code is valid.
	Lifespan Duration `yaml:"lifespan"`
}

// LoginFlowConfig is the login flow.
type LoginFlowConfig struct {
	Throttle ThrottleConfig `yaml:"throttle"`
	// RequireVerifiedAddress refuses the login of an identity none of
	// whose addresses is verified (ADDRESS_NOT_VERIFIED), after its
	// password matched.
	RequireVerifiedAddress bool `yaml:"require_verified_address"`
}

// ThrottleConfig limits failed password checks (login, changeMyPassword).
// Failures are counted per client address (IPv6 grouped by /64), per
// identifier from one address, and per identifier from anywhere. Past its
// free failures a key waits 1s, doubling with each further failure, up to
// its cap. The identifier's own cap is short, so that nobody can keep the
// owner out for long, whoever fails against it.
type ThrottleConfig struct {
	// FreePerAddress is the failures one address gets before waiting:
	// many people may share an address.
	FreePerAddress int `yaml:"free_per_address"`
	// FreePerIdentifier is the failures against one identifier, from one
	// address and from anywhere, before waiting.
	FreePerIdentifier int `yaml:"free_per_identifier"`
	// MaxDelay caps the wait of an address, and of an identifier from one
	// address.
	MaxDelay Duration `yaml:"max_delay"`
	// IdentifierMaxDelay caps the wait of an identifier from anywhere.
	IdentifierMaxDelay Duration `yaml:"identifier_max_delay"`
	// Window is how long a failure is remembered.
	Window Duration `yaml:"window"`
}

// SettingsFlowConfig is the settings flow (the owner's own changes).
type SettingsFlowConfig struct {
	// PrivilegedSessionMaxAge is how long after signing in a session may
	// change the password, a login identifier or an address.
	PrivilegedSessionMaxAge Duration `yaml:"privileged_session_max_age"`
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
	// BaseURL is the public URL the server is reached at
	// (https://auth.example.com), for links that come back to it (the OIDC
	// callback); http://{address} when empty.
	BaseURL string `yaml:"base_url"`
	// AdminAddress, when set, is a second listener for admin traffic:
	// admin keys are accepted there only, as Kratos's admin port.
	AdminAddress string `yaml:"admin_address"`
	// TrustedProxies are the CIDRs of proxies whose X-Forwarded-For and
	// Forwarded headers name the client; from anyone else they are ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// CORS is which browser origins may call the API.
	CORS CORSConfig `yaml:"cors"`
	// ShutdownTimeout is how long in-flight requests may finish on SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// CORSConfig is Cross-Origin Resource Sharing for browser apps on other
// origins, under Kratos's key names. Credentials (the session cookie) are
// allowed for the listed origins only; "*" is never answered with them.
type CORSConfig struct {
	Enabled bool `yaml:"enabled"`
	// AllowedOrigins are origins such as https://app.example.com; one "*"
	// in the host matches subdomains (https://*.example.com).
	AllowedOrigins []string `yaml:"allowed_origins"`
	AllowedHeaders []string `yaml:"allowed_headers"`
	ExposedHeaders []string `yaml:"exposed_headers"`
	// MaxAge is how long, in seconds, a browser may cache a preflight.
	MaxAge int `yaml:"max_age"`
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
	Whoami   WhoamiConfig `yaml:"whoami"`
}

// WhoamiConfig is what a session must have done to count.
type WhoamiConfig struct {
	// RequiredAAL is highest_available (a session of an identity with a
	// second factor must have used it: SESSION_AAL2_REQUIRED until then) or
	// aal1 (one factor is enough). Kratos's key and default.
	RequiredAAL string `yaml:"required_aal"`
}

// CookieConfig is the browser session cookie.
type CookieConfig struct {
	Name string `yaml:"name"`
	// Secure is true, false or auto (Secure unless served over plain HTTP
	// on a loopback address).
	Secure string `yaml:"secure"`
	// SameSite is lax, strict or none. none lets a frontend on another
	// site use the cookie (with CORS and credentials: "include") and needs
	// secure (browsers drop a SameSite=None cookie that is not Secure).
	SameSite string `yaml:"same_site"`
	// Domain, when set, is the cookie's Domain attribute, so that
	// subdomains (app.example.com and api.example.com under example.com)
	// share the session. Empty: the API's host only.
	Domain string `yaml:"domain"`
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
			ShutdownTimeout: Duration(15 * time.Second),
			CORS: CORSConfig{
				AllowedHeaders: []string{"Content-Type", "Authorization", "X-Session-Token", "X-CSRF-Token", "X-Request-Id"},
				ExposedHeaders: []string{"X-Request-Id"},
				MaxAge:         600,
			},
		},
		GraphQL: GraphQLConfig{Limits: GraphQLLimits{
			MaxBodyBytes:      64 << 10,
			AdminMaxBodyBytes: 8 << 20,
			MaxTokens:         5000,
			AdminMaxTokens:    50000,
			MaxDepth:          12,
			MaxComplexity:     5000,
			MaxFields:         1000,
			MaxAliases:        15,
			AdminMaxAliases:   100,
			MaxRootFields:     20,
			MaxDirectives:     5,
			MaxVariables:      50,
			MaxFragments:      100,
			CPUBudget:         Duration(100 * time.Millisecond),
		}},
		Selfservice: SelfserviceConfig{Methods: defaultMethods(), Flows: FlowsConfig{
			Login: LoginFlowConfig{Throttle: ThrottleConfig{
				FreePerAddress:     20,
				FreePerIdentifier:  5,
				MaxDelay:           Duration(15 * time.Minute),
				IdentifierMaxDelay: Duration(time.Minute),
				Window:             Duration(time.Hour),
			}},
			Settings:     SettingsFlowConfig{PrivilegedSessionMaxAge: Duration(15 * time.Minute)},
			Verification: CodeFlowConfig{Lifespan: Duration(time.Hour)},
			Recovery:     CodeFlowConfig{Lifespan: Duration(time.Hour)},
			Invitation:   CodeFlowConfig{Lifespan: Duration(7 * 24 * time.Hour)},
		}, Codes: CodesConfig{
			Length:      6,
			MaxAttempts: 5,
			Throttle: ThrottleConfig{
				FreePerAddress:     20,
				FreePerIdentifier:  5,
				MaxDelay:           Duration(15 * time.Minute),
				IdentifierMaxDelay: Duration(time.Minute),
				Window:             Duration(time.Hour),
			},
		}},
		Identity: IdentityConfig{
			DefaultSchemaID: "default",
			Schemas:         []schemas.Source{{ID: "default", URL: "preset://email"}},
		},
		Session: SessionConfig{
			Lifespan: Duration(24 * time.Hour),
			Cookie:   CookieConfig{Name: "identityd_session", Secure: "auto", SameSite: "lax"},
			Whoami:   WhoamiConfig{RequiredAAL: requiredAALHighest},
		},
		Hashers: HashersConfig{
			Argon2:        Argon2Config{MemoryKiB: defaultArgon2.Memory, Iterations: defaultArgon2.Iterations, Parallelism: defaultArgon2.Parallelism},
			MaxConcurrent: runtime.NumCPU(),
		},
		Log:    LogConfig{Level: "info", Format: "text"},
		Events: EventsConfig{Retention: Duration(90 * 24 * time.Hour)},
		Courier: CourierConfig{
			MessageRetries: 5,
			Worker:         CourierWorkerConfig{Enabled: true, PullCount: 100, PullWait: Duration(time.Second), RetryBackoff: Duration(30 * time.Second)},
		},
	}
}

// Values of session.whoami.required_aal.
const (
	requiredAALHighest = "highest_available"
	requiredAAL1       = "aal1"
)

// defaultMethods switches on the second factors: they need no outside
// service, and nobody has one until they set it up.
func defaultMethods() MethodsConfig {
	m := MethodsConfig{TOTP: TOTPMethodConfig{Enabled: true}, LookupSecret: MethodConfig{Enabled: true}}
	m.TOTP.Config.Issuer = "identityd"
	m.Code.Config.Lifespan = Duration(15 * time.Minute)
	return m
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
		var doc yaml.Node
		if err := yaml.NewDecoder(f).Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: not valid YAML: %w", path, err)
		}
		if len(doc.Content) > 0 {
			if err := decodeYAML(doc.Content[0], reflect.ValueOf(&cfg).Elem(), nil); err != nil {
				return cfg, fmt.Errorf("config %s: %w", path, err)
			}
		}
	}
	if err := applyEnv(reflect.ValueOf(&cfg).Elem(), nil, getenv); err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

// decodeYAML sets v from n key by key, so that every error names the key
// path and the line, says what form the key takes, and, for a key that does
// not exist, suggests the nearest one that does. yaml.v3's own errors name Go
// types (main.ServeConfig, []schemas.Source), which mean nothing to an
// operator.
func decodeYAML(n *yaml.Node, v reflect.Value, path []string) error {
	key := strings.Join(path, ".")
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Kind() == reflect.Struct && v.Type() != reflect.TypeOf(Duration(0)) {
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			where := key
			if where == "" {
				where = "the top level"
			}
			return fmt.Errorf("line %d: %s: expected %s", n.Line, where, describeType(v.Type()))
		}
		fields := yamlFields(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			idx, ok := fields[k.Value]
			p := append(path[:len(path):len(path)], k.Value)
			if !ok {
				msg := fmt.Sprintf("line %d: unknown key %s", k.Line, strings.Join(p, "."))
				if near := nearestKey(k.Value, fields); near != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(append(p[:len(p)-1:len(p)-1], near), "."))
				}
				return errors.New(msg)
			}
			if err := decodeYAML(val, v.Field(idx), p); err != nil {
				return err
			}
		}
		return nil
	}
	// A leaf: a scalar, or a list or object decoded whole. The decode goes
	// into a fresh value, so a refused one leaves the default in place.
	ptr := reflect.New(v.Type())
	if err := n.Decode(ptr.Interface()); err != nil {
		var why string
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			why = ": " + err.Error() // our own types' messages (Duration) are plain
		}
		return fmt.Errorf("line %d: %s: expected %s%s", n.Line, key, describeType(v.Type()), why)
	}
	v.Set(ptr.Elem())
	return nil
}

// yamlFields maps a struct's yaml keys to field indexes.
func yamlFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := range t.NumField() {
		if k := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; k != "" && k != "-" {
			out[k] = i
		}
	}
	return out
}

// nearestKey is the known key closest to k by edit distance, when it is
// close enough to be a typo (at most a third of its length away).
func nearestKey(k string, known map[string]int) string {
	best, bestD := "", len(k)/3+1
	for name := range known {
		if d := editDistance(k, name); d < bestD || (d == bestD && best != "" && name < best) {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diag := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			diag, row[j] = row[j], min(row[j]+1, row[j-1]+1, diag+cost)
		}
	}
	return row[len(b)]
}

// describeType says in words what form a config value of type t takes.
func describeType(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(Duration(0)):
		return "a duration such as 24h, 90m or 30s"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "an integer"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return "a non-negative integer"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return "a list of objects with the keys " + strings.Join(slices.Sorted(maps.Keys(yamlFields(t.Elem()))), ", ")
	case t.Kind() == reflect.Map:
		return "an object of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem()), "a "), "an ") + "s"
	case t.Kind() == reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem()), "a "), "an ") + "s"
	case t.Kind() == reflect.Struct:
		return "an object with the keys " + strings.Join(slices.Sorted(maps.Keys(yamlFields(t))), ", ")
	}
	return t.Kind().String()
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
			return fmt.Errorf("config: %s (env %s): %w; expected %s", strings.Join(p, "."), name, err, describeType(fv.Type()))
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
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return fmt.Errorf("%s is not valid for this key", raw)
			}
			return fmt.Errorf("not valid JSON for this key (%s)", strings.TrimPrefix(err.Error(), "json: "))
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
	if err := checkAddress(c.Serve.Address); err != nil {
		return fmt.Errorf("config: serve.address: %w", err)
	}
	if err := c.Serve.validate(); err != nil {
		return err
	}
	if err := c.GraphQL.Limits.validate(); err != nil {
		return err
	}
	if err := c.Selfservice.validate(); err != nil {
		return err
	}
	if err := c.Courier.validate(); err != nil {
		return err
	}
	if err := validateWebhooks(c.Webhooks); err != nil {
		return err
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
	if ck.SameSite != "lax" && ck.SameSite != "strict" && ck.SameSite != "none" {
		return fmt.Errorf("config: session.cookie.same_site: %q is not lax, strict or none", ck.SameSite)
	}
	if ck.SameSite == "none" && ck.Secure == "false" {
		return fmt.Errorf("config: session.cookie.same_site: none needs session.cookie.secure true or auto (browsers drop SameSite=None cookies that are not Secure)")
	}
	if ck.Domain != "" && (strings.ContainsAny(ck.Domain, " ;,/:") || strings.HasPrefix(ck.Domain, ".") && len(ck.Domain) == 1) {
		return fmt.Errorf("config: session.cookie.domain: %q is not a domain like example.com", ck.Domain)
	}
	if err := checkOrigins("session.cookie.allowed_origins", ck.AllowedOrigins); err != nil {
		return err
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
	for i, k := range c.Secrets.Default {
		if len(k) < code.MinSecretBytes {
			return fmt.Errorf("config: secrets.default[%d]: too short (at least %d characters)", i, code.MinSecretBytes)
		}
	}
	for i, k := range c.Secrets.Cipher {
		if len(k) < mfa.MinCipherSecretBytes {
			return fmt.Errorf("config: secrets.cipher[%d]: too short (at least %d characters)", i, mfa.MinCipherSecretBytes)
		}
	}
	switch c.Session.Whoami.RequiredAAL {
	case requiredAALHighest, requiredAAL1:
	default:
		return fmt.Errorf("config: session.whoami.required_aal: %q; must be %s or %s", c.Session.Whoami.RequiredAAL, requiredAALHighest, requiredAAL1)
	}
	if c.Selfservice.Methods.TOTP.Enabled && strings.TrimSpace(c.Selfservice.Methods.TOTP.Config.Issuer) == "" {
		return fmt.Errorf("config: selfservice.methods.totp.config.issuer: must not be empty (authenticator apps show it)")
	}
	if strings.Contains(c.Selfservice.Methods.TOTP.Config.Issuer, ":") {
		return fmt.Errorf("config: selfservice.methods.totp.config.issuer: must not contain a colon (otpauth URLs separate issuer and account with one)")
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
	if c.Events.Retention < Duration(events.MinRetention) {
		return fmt.Errorf("config: events.retention: %s; must be at least 1h", time.Duration(c.Events.Retention))
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

// checkOrigins refuses anything but origins like https://app.example.com,
// with at most one "*" standing for subdomains (https://*.example.com).
// A lone "*" is refused: browsers refuse it with credentials, and the
// session cookie is a credential.
func checkOrigins(key string, origins []string) error {
	for i, o := range origins {
		u, err := url.Parse(strings.Replace(o, "*", "wildcard", 1))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil ||
			strings.Count(o, "*") > 1 || (strings.Contains(o, "*") && !strings.Contains(o, "://*.")) {
			return fmt.Errorf("config: %s[%d]: %q is not an origin like https://app.example.com or https://*.example.com", key, i, o)
		}
	}
	return nil
}

func (s ServeConfig) validate() error {
	if s.AdminAddress != "" {
		if err := checkAddress(s.AdminAddress); err != nil {
			return fmt.Errorf("config: serve.admin_address: %w", err)
		}
		if s.AdminAddress == s.Address {
			return fmt.Errorf("config: serve.admin_address: %q is serve.address too; give the admin listener an address of its own", s.AdminAddress)
		}
	}
	for i, c := range s.TrustedProxies {
		if _, err := parseCIDROrIP(c); err != nil {
			return fmt.Errorf("config: serve.trusted_proxies[%d]: %q is not a CIDR (10.0.0.0/8) or an IP address", i, c)
		}
	}
	if err := checkOrigins("serve.cors.allowed_origins", s.CORS.AllowedOrigins); err != nil {
		return err
	}
	if s.CORS.MaxAge < 0 {
		return fmt.Errorf("config: serve.cors.max_age: must not be negative")
	}
	return nil
}

// checkAddress checks a host:port listen address, port included, before
// anything is opened.
func checkAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil && port != "" {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}

// parseCIDROrIP reads a CIDR, or a single address as its /32 or /128.
func parseCIDROrIP(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func (l GraphQLLimits) validate() error {
	for _, f := range []struct {
		key string
		v   int64
		min int64
	}{
		{"max_body_bytes", l.MaxBodyBytes, 1024},
		{"admin_max_body_bytes", l.AdminMaxBodyBytes, 1024},
		{"max_tokens", int64(l.MaxTokens), 100},
		{"admin_max_tokens", int64(l.AdminMaxTokens), 100},
		{"max_depth", int64(l.MaxDepth), 1},
		{"max_complexity", int64(l.MaxComplexity), 1},
		{"max_fields", int64(l.MaxFields), 1},
		{"max_aliases", int64(l.MaxAliases), 0},
		{"admin_max_aliases", int64(l.AdminMaxAliases), 0},
		{"max_root_fields", int64(l.MaxRootFields), 1},
		{"max_directives", int64(l.MaxDirectives), 0},
		{"max_variables", int64(l.MaxVariables), 0},
		{"max_fragments", int64(l.MaxFragments), 0},
	} {
		if f.v < f.min {
			return fmt.Errorf("config: graphql.limits.%s: %d is too small (at least %d)", f.key, f.v, f.min)
		}
	}
	if l.CPUBudget <= 0 {
		return fmt.Errorf("config: graphql.limits.cpu_budget: must be positive")
	}
	return nil
}

func (s SelfserviceConfig) validate() error {
	if err := s.Flows.Login.Throttle.validate("selfservice.flows.login.throttle"); err != nil {
		return err
	}
	if err := s.Codes.Throttle.validate("selfservice.codes.throttle"); err != nil {
		return err
	}
	f := s.Flows
	switch {
	case f.Settings.PrivilegedSessionMaxAge <= 0:
		return fmt.Errorf("config: selfservice.flows.settings.privileged_session_max_age: must be positive")
	case f.Verification.Lifespan < Duration(time.Minute):
		return fmt.Errorf("config: selfservice.flows.verification.lifespan: must be at least 1m")
	case f.Recovery.Lifespan < Duration(time.Minute):
		return fmt.Errorf("config: selfservice.flows.recovery.lifespan: must be at least 1m")
	case f.Invitation.Lifespan < Duration(time.Minute):
		return fmt.Errorf("config: selfservice.flows.invitation.lifespan: must be at least 1m")
	case s.Methods.Code.Config.Lifespan < Duration(time.Minute):
		return fmt.Errorf("config: selfservice.methods.code.config.lifespan: must be at least 1m")
	case s.Codes.Length < 6 || s.Codes.Length > 12:
		return fmt.Errorf("config: selfservice.codes.length: %d digits; must be from 6 to 12", s.Codes.Length)
	case s.Codes.MaxAttempts < 1 || s.Codes.MaxAttempts > 100:
		return fmt.Errorf("config: selfservice.codes.max_attempts: must be from 1 to 100")
	}
	return nil
}

// validate checks a throttle configured at key.
func (t ThrottleConfig) validate(key string) error {
	switch {
	case t.FreePerAddress < 1:
		return fmt.Errorf("config: %s.free_per_address: must be at least 1", key)
	case t.FreePerIdentifier < 1:
		return fmt.Errorf("config: %s.free_per_identifier: must be at least 1", key)
	case t.MaxDelay < Duration(time.Second):
		return fmt.Errorf("config: %s.max_delay: must be at least 1s", key)
	case t.IdentifierMaxDelay < Duration(time.Second):
		return fmt.Errorf("config: %s.identifier_max_delay: must be at least 1s", key)
	case t.Window <= 0:
		return fmt.Errorf("config: %s.window: must be positive", key)
	}
	return nil
}

// session is the session service's view of a throttle.
func (t ThrottleConfig) session() session.ThrottleConfig {
	return session.ThrottleConfig{
		FreePerIdentifier: t.FreePerIdentifier,
		FreePerAddress:    t.FreePerAddress,
		Max:               time.Duration(t.MaxDelay),
		IdentifierMax:     time.Duration(t.IdentifierMaxDelay),
		Window:            time.Duration(t.Window),
	}
}

func (c CourierConfig) validate() error {
	w := c.Worker
	switch {
	case c.MessageRetries < 0:
		return fmt.Errorf("config: courier.message_retries: must not be negative")
	case w.PullCount < 1:
		return fmt.Errorf("config: courier.worker.pull_count: must be at least 1")
	case w.PullWait <= 0:
		return fmt.Errorf("config: courier.worker.pull_wait: must be positive")
	case w.RetryBackoff <= 0:
		return fmt.Errorf("config: courier.worker.retry_backoff: must be positive")
	}
	if c.SMTP.ConnectionURI != "" {
		if _, err := courier.NewSMTP(c.smtp()); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}

// smtp is the courier's view of courier.smtp.
func (c CourierConfig) smtp() courier.SMTPConfig {
	s := c.SMTP
	return courier.SMTPConfig{ConnectionURI: s.ConnectionURI, FromAddress: s.FromAddress, FromName: s.FromName,
		Headers: s.Headers, LocalName: s.LocalName}
}

// delivery is the courier worker's view of the courier section.
func (c CourierConfig) delivery() courier.Config {
	return courier.Config{
		SMTP:           c.smtp(),
		Channels:       c.Channels,
		MessageRetries: c.MessageRetries,
		Worker: courier.WorkerConfig{
			PullCount:    c.Worker.PullCount,
			PullWait:     time.Duration(c.Worker.PullWait),
			RetryBackoff: time.Duration(c.Worker.RetryBackoff),
		},
	}
}

var defaultArgon2 = password.DefaultParams()

// argon2Params is the hasher's view of the config.
func (c HashersConfig) argon2Params() password.Params {
	p := password.DefaultParams()
	p.Memory, p.Iterations, p.Parallelism = c.Argon2.MemoryKiB, c.Argon2.Iterations, c.Argon2.Parallelism
	return p
}

// passkeyConfig is selfservice.methods.passkey for the passkey service.
func (c *Config) passkeyConfig() passkey.Config {
	p := c.Selfservice.Methods.Passkey
	return passkey.Config{Enabled: p.Enabled, RPID: p.Config.RP.ID, RPDisplayName: p.Config.RP.DisplayName, Origins: p.Config.RP.Origins}
}

// oidcConfig is selfservice.methods.oidc for the OpenID Connect service.
func (c *Config) oidcConfig() oidc.Config {
	m := c.Selfservice.Methods.OIDC
	out := oidc.Config{Enabled: m.Enabled, BaseURL: c.Serve.BaseURL,
		AllowedReturnURLs: c.Selfservice.AllowedReturnURLs, DefaultReturnURL: c.Selfservice.DefaultBrowserReturnURL}
	if out.BaseURL == "" {
		out.BaseURL = "http://" + c.Serve.Address
	}
	// The callback is a plain HTTP handler: it sets the session cookie and
	// reads the client as the GraphQL transport does, with the same cookie
	// attributes and the same trusted proxies.
	auth := graph.AuthConfig{Cookies: graph.CookieConfig{
		Name: c.Session.Cookie.Name, Secure: c.Session.Cookie.Secure, Domain: c.Session.Cookie.Domain,
		SameSite: map[string]http.SameSite{"lax": http.SameSiteLaxMode, "strict": http.SameSiteStrictMode, "none": http.SameSiteNoneMode}[c.Session.Cookie.SameSite],
	}}
	for _, p := range c.Serve.TrustedProxies {
		if prefix, err := parseCIDROrIP(p); err == nil { // validated with the config
			auth.TrustedProxies = append(auth.TrustedProxies, prefix)
		}
	}
	out.Browser = oidc.Browser{BindingCookie: c.Session.Cookie.Name + graph.OIDCBindingCookieSuffix,
		SetSession: graph.SessionCookieWriter(auth), ClearBinding: graph.OIDCBindingClearer(auth), Client: graph.RequestClient(auth)}
	for _, p := range m.Config.Providers {
		out.Providers = append(out.Providers, oidc.Provider{ID: p.ID, Kind: p.Provider, Label: p.Label,
			ClientID: p.ClientID, ClientSecret: p.ClientSecret, IssuerURL: p.IssuerURL, AuthURL: p.AuthURL, TokenURL: p.TokenURL,
			Scope: p.Scope, MapperURL: p.MapperURL, MicrosoftTenant: p.MicrosoftTenant,
			AppleTeamID: p.AppleTeamID, AppleKeyID: p.AppleKeyID, AppleKey: p.ApplePrivateKey})
	}
	return out
}

// validateWebhooks checks every webhook, naming the key of what is wrong
// (the secret itself is never repeated).
func validateWebhooks(hooks []WebhookConfig) error {
	seen := map[string]int{}
	for i, h := range hooks {
		key := fmt.Sprintf("config: webhooks[%d]", i)
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			return fmt.Errorf("%s.url: %q is not an absolute http(s) URL like https://crm.example.com/hooks/identityd", key, h.URL)
		}
		if j, dup := seen[h.URL]; dup {
			return fmt.Errorf("%s.url: the same as webhooks[%d].url (one webhook per URL: list every event pattern under one)", key, j)
		}
		seen[h.URL] = i
		if len(h.Events) == 0 {
			return fmt.Errorf(`%s.events: must list at least one event type or pattern ("identity.*", "*")`, key)
		}
		for j, p := range h.Events {
			if strings.TrimSpace(p) == "" || strings.ContainsAny(p, " \t\r\n") {
				return fmt.Errorf("%s.events[%d]: %q is not an event type or pattern like identity.*", key, j, p)
			}
		}
		if _, err := webhook.ParseSecret(h.Secret); err != nil {
			return fmt.Errorf("%s.secret: %w", key, err)
		}
		if h.MaxAttempts < 0 {
			return fmt.Errorf("%s.max_attempts: must be at least 1 (or absent: %d)", key, webhook.DefaultMaxAttempts)
		}
	}
	return nil
}

// webhookEndpoints is the webhook worker's view of webhooks.
func (c Config) webhookEndpoints() []webhook.Endpoint {
	out := make([]webhook.Endpoint, len(c.Webhooks))
	for i, h := range c.Webhooks {
		out[i] = webhook.Endpoint{URL: h.URL, Events: append([]string(nil), h.Events...), Secret: h.Secret, MaxAttempts: h.MaxAttempts}
	}
	return out
}
