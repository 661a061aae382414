// Command identityd is an identity service: identities whose traits are
// validated against configurable JSON Schemas, public and admin metadata,
// password credentials and sessions, all served as a GraphQL API.
//
//	identityd [serve] [--config FILE]
//	identityd migrate up|down|status [--config FILE]
//	identityd courier watch [--config FILE]
//	identityd identities import [FILE|-] [--dry-run] | export [--with-credentials]
//	identityd version
//	identityd healthcheck [--url URL]
package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/cors"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/graph"
	"github.com/identityd/identityd/internal/code"
	"github.com/identityd/identityd/internal/courier"
	"github.com/identityd/identityd/internal/eventfeed"
	"github.com/identityd/identityd/internal/events"
	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/internal/mfa"
	"github.com/identityd/identityd/internal/oidc"
	"github.com/identityd/identityd/internal/passkey"
	"github.com/identityd/identityd/internal/password"
	"github.com/identityd/identityd/internal/playground"
	"github.com/identityd/identityd/internal/session"
	"github.com/identityd/identityd/internal/webhook"
	"github.com/identityd/identityd/internal/worker"
	"github.com/identityd/identityd/schemas"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// run is the whole program, testable in process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := "serve"
	// A first argument that is a word, or a top-level flag such as
	// --version, names the command; other flags belong to serve.
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || topLevelFlags[args[0]]) {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(ctx, args, stdout, stderr, getenv)
	case "migrate":
		err = cmdMigrate(ctx, args, stdout, getenv)
	case "courier":
		err = cmdCourier(ctx, args, stdout, stderr, getenv)
	case "identities":
		err = cmdIdentities(ctx, args, stdout, stderr, getenv)
	case "version", "--version", "-version", "-v":
		fmt.Fprintf(stdout, "identityd %s\n", version)
	case "healthcheck":
		err = cmdHealthcheck(ctx, args, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the flag package printed the command's help
	}
	if err != nil {
		fmt.Fprintf(stderr, "identityd: %v\n", err)
		return 1
	}
	return 0
}

var topLevelFlags = map[string]bool{"--version": true, "-version": true, "-v": true, "--help": true, "-help": true, "-h": true}

const usage = `usage:
  identityd [serve] [--config FILE]          serve the GraphQL API
  identityd migrate up|status [--config FILE]
  identityd migrate down [--steps N | --all] [--yes] [--config FILE]
                                             roll back the newest migration (or N, or all);
                                             asks first, or needs --yes without a terminal:
                                             what a migration made is dropped with its data
  identityd courier watch [--config FILE]    deliver queued emails and SMS only (no API), for
                                             a worker split out with courier.worker.enabled: false
  identityd identities import [FILE|-] [--dry-run] [--batch N] [--config FILE]
                                             load identities as Kratos writes them (JSON lines
                                             or an array); exit 1 when any fails
  identityd identities export [--filter-state S] [--filter-schema ID] [--with-credentials]
                                             every identity as a JSON line on stdout, Kratos's layout
  identityd version | --version
  identityd SUBCOMMAND --help                the subcommand's flags
  (-c FILE is short for --config FILE)
  identityd healthcheck [--url URL]          exit 0 when the server is ready
`

// configFlag parses --config (or -c, as Kratos users type it; default: env
// CONFIG) and any flags more adds, then loads the config.
func configFlag(name string, args []string, stdout io.Writer, getenv func(string) string, more ...func(*flag.FlagSet)) (Config, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout) // --help is an answer, not an error
	path := fs.String("config", getenv("CONFIG"), "YAML config file (env CONFIG)")
	fs.StringVar(path, "c", getenv("CONFIG"), "shorthand for --config")
	for _, f := range more {
		f(fs)
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, nil, err
	}
	cfg, err := loadConfig(*path, getenv)
	return cfg, fs.Args(), err
}

func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// dataDir is where local state (the SQLite file, a generated admin key) lives.
func dataDir(dsn string) string {
	if f, ok := strings.CutPrefix(dsn, "sqlite://"); ok && f != ":memory:" {
		return filepath.Dir(f)
	}
	return "data"
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, rest, err := configFlag("serve", args, stdout, getenv)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", rest)
	}
	log := newLogger(cfg.Log, stderr)
	tuneRuntime(cfg, getenv, log)

	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()

	newServer := func(h http.Handler) *http.Server {
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		// Live feeds never finish on their own: end them, or Shutdown
		// would wait for them until its timeout.
		srv.RegisterOnShutdown(a.feed.Close)
		return srv
	}
	ln, err := net.Listen("tcp", cfg.Serve.Address)
	if err != nil {
		return fmt.Errorf("serve.address: %w", err)
	}
	servers := []*http.Server{newServer(a.handler)}
	listeners := []net.Listener{ln}
	if a.adminHandler != nil {
		aln, err := net.Listen("tcp", cfg.Serve.AdminAddress)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("serve.admin_address: %w", err)
		}
		servers = append(servers, newServer(a.adminHandler))
		listeners = append(listeners, aln)
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "identityd %s listening on %s (database: %s)\n", version, base, db.RedactDSN(cfg.DSN))
	// The playground reads the schema by introspection: without it the
	// page opens and can do nothing, which the banner should not hide.
	playgroundNote := ""
	if !cfg.Serve.Introspection {
		playgroundNote = " (needs introspection, which is off: set serve.introspection: true to use it)"
	}
	fmt.Fprintf(stdout, "  GraphQL playground: %s/%s\n  GraphQL endpoint:   %s/graphql\n", base, playgroundNote, base)
	adminWhere := ""
	if len(listeners) > 1 {
		adminWhere = " on the admin listener http://" + listeners[1].Addr().String() + "/graphql only"
	}
	if a.generatedKey {
		fmt.Fprintf(stdout, "  Act as admin%s: add this header in the playground's Headers tab (key kept in %s):\n    {\"Authorization\": \"Bearer %s\"}\n",
			adminWhere, filepath.Join(dataDir(cfg.DSN), adminKeyFile), a.adminKeys[0])
	} else {
		fmt.Fprintf(stdout, "  Act as admin%s: send \"Authorization: Bearer <one of admin.api_keys>\"\n", adminWhere)
	}
	fmt.Fprint(stdout, courierBanner(cfg, a.delivery))

	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	select {
	case err := <-errc:
		for _, srv := range servers {
			_ = srv.Close()
		}
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Serve.ShutdownTimeout))
	defer cancel()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	return errors.Join(errs...)
}

// app is the wired service: the one place that constructs things.
type app struct {
	store   *db.DB
	handler http.Handler
	// adminHandler serves serve.admin_address, the only listener that
	// accepts admin keys when it is set; nil otherwise.
	adminHandler http.Handler
	// runner owns the background loops (courier delivery, pruning); Close
	// stops it before the database closes.
	runner *worker.Runner
	// templates compose the flows' messages (verification, recovery,
	// invitations): built in, or overridden from
	// courier.template_override_path.
	templates *courier.Courier
	// delivery is the courier's worker, run by runner unless
	// courier.worker.enabled is false.
	delivery *courier.Worker
	// webhooks sends events to the configured webhooks, run by runner.
	webhooks *webhook.Worker
	// sessions runs the self-service flows, code requests included.
	sessions *session.Service
	// feed is the live feed of events (identityEvents), run by runner;
	// its streams end when the servers shut down.
	feed         *eventfeed.Broker
	adminKeys    []string
	generatedKey bool
}

// newApp loads the schemas, resolves the admin keys, opens (and, for the
// embedded SQLite, migrates) the database and builds the HTTP handler.
func newApp(ctx context.Context, cfg Config, log *slog.Logger) (*app, error) {
	registry, err := schemas.NewRegistry(ctx, cfg.Identity.DefaultSchemaID, cfg.Identity.Schemas, schemas.Options{})
	if err != nil {
		return nil, err
	}
	// Such a schema loads and works, but every password written for it is
	// refused: said once at start, not found out at the first registration.
	for _, s := range registry.All() {
		if !s.HasPasswordIdentifier() {
			log.Warn(fmt.Sprintf("identity schema %q has no password login identifier: register will refuse passwords for it", s.ID), "schema_id", s.ID)
		}
	}
	keys, generated, err := resolveAdminKeys(cfg.Admin.APIKeys, cfg.Serve.Address, dataDir(cfg.DSN))
	if err != nil {
		return nil, err
	}
	secrets, err := resolveSecrets(cfg.Secrets.Default, cfg.Serve.Address, dataDir(cfg.DSN))
	if err != nil {
		return nil, err
	}
	codes, err := code.New(code.Config{Secrets: secrets, Digits: cfg.Selfservice.Codes.Length, MaxAttempts: cfg.Selfservice.Codes.MaxAttempts}, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("config: secrets.default: %w", err)
	}
	secondFactors, err := newSecondFactorSecrets(cfg.Secrets, secrets)
	if err != nil {
		return nil, err
	}
	// Every template is parsed now, so a broken override stops the start
	// with its file named instead of failing the first registration.
	templates, err := courier.New(courier.WithTemplateOverrides(cfg.Courier.TemplateOverridePath))
	if err != nil {
		return nil, err
	}
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	delivery, err := courier.NewWorker(store, cfg.Courier.delivery(), log)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	// Runs until the store closes; a no-op on SQLite.
	store.StartSessionCache(context.WithoutCancel(ctx), log)

	hasher := password.NewHasher(cfg.Hashers.argon2Params(), cfg.Hashers.MaxConcurrent)
	now := time.Now
	if cfg.now != nil {
		now = cfg.now
	}
	flows := cfg.Selfservice.Flows
	identities := identity.New(store, registry, hasher, password.DefaultPolicy(), now)
	identities.SendCodesWith(identity.Mail{Codes: codes, Courier: templates,
		VerificationLifespan: time.Duration(flows.Verification.Lifespan), InvitationLifespan: time.Duration(flows.Invitation.Lifespan)})
	methods := cfg.Selfservice.Methods
	identities.SecondFactorsWith(secondFactors, methods.TOTP.Config.Issuer)
	sessions := session.New(store, identities, codes, templates, session.Config{
		Lifespan:               time.Duration(cfg.Session.Lifespan),
		PrivilegedFor:          time.Duration(flows.Settings.PrivilegedSessionMaxAge),
		Throttle:               flows.Login.Throttle.session(),
		RequireVerifiedAddress: flows.Login.RequireVerifiedAddress,
		Codes: session.CodeConfig{
			VerificationLifespan: time.Duration(flows.Verification.Lifespan),
			RecoveryLifespan:     time.Duration(flows.Recovery.Lifespan),
			Throttle:             cfg.Selfservice.Codes.Throttle.session(),
		},
		CodeLogin: session.CodeLoginConfig{
			Enabled:  methods.Code.Enabled || methods.Code.PasswordlessEnabled,
			Lifespan: time.Duration(methods.Code.Config.Lifespan),
		},
		MFA: session.MFAConfig{
			TOTPEnabled: methods.TOTP.Enabled, TOTPIssuer: methods.TOTP.Config.Issuer,
			LookupEnabled: methods.LookupSecret.Enabled, Secrets: secondFactors,
		},
	}, now, rand.Reader)
	passkeyCfg := cfg.passkeyConfig()
	// Stand-in credential ids for unknown identifiers must be the same on
	// every server and across restarts, or comparing answers would tell
	// them from real ones: keyed by the first secrets.default.
	passkeyCfg.Secret = deriveKey(secrets[0], "identityd passkey stand-in credential ids")
	passkeys, err := passkey.New(store, identities, sessions, passkeyCfg, now, rand.Reader)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	social, err := oidc.New(store, identities, sessions, cfg.oidcConfig(), now, rand.Reader, log)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	// Every event written from now on queues a delivery to each webhook
	// whose patterns match it, in the event's transaction.
	hooks := cfg.webhookEndpoints()
	store.SetWebhooks(webhook.Targets(hooks))
	hookCfg := webhook.WorkerConfig{Clock: now}
	if cfg.webhookWorker != nil {
		cfg.webhookWorker(&hookCfg)
	}
	hookWorker, err := webhook.NewWorker(store, hooks, hookCfg, log)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("config: %w", err)
	}
	audit := events.New(store, time.Duration(cfg.Events.Retention), now)
	feed := eventfeed.New(store, eventfeed.Options{Logger: log})
	resolver := &graph.Resolver{Schemas: registry, IdentityService: identities, Sessions: sessions, Outbox: courier.NewOutbox(store),
		Passkeys: passkeys, OIDC: social,
		Audit: audit, Webhooks: webhook.New(store, now), Feed: feed}
	requireAAL2 := cfg.Session.Whoami.RequiredAAL == requiredAALHighest
	l := cfg.GraphQL.Limits
	gql := graph.NewHandler(resolver, graph.HandlerConfig{
		Introspection: cfg.Serve.Introspection,
		RequireAAL2:   requireAAL2,
		Limits: graph.Limits{
			MaxBodyBytes: l.MaxBodyBytes, AdminMaxBodyBytes: l.AdminMaxBodyBytes,
			MaxTokens: l.MaxTokens, AdminMaxTokens: l.AdminMaxTokens,
			MaxDepth: l.MaxDepth, MaxComplexity: l.MaxComplexity, MaxFields: l.MaxFields,
			MaxAliases: l.MaxAliases, AdminMaxAliases: l.AdminMaxAliases,
			MaxRootFields: l.MaxRootFields, MaxDirectives: l.MaxDirectives, MaxVariables: l.MaxVariables,
			MaxFragments: l.MaxFragments,
			CPUBudget:    time.Duration(l.CPUBudget),
		},
		Logger: log,
	})
	sameSite := map[string]http.SameSite{"lax": http.SameSiteLaxMode, "strict": http.SameSiteStrictMode, "none": http.SameSiteNoneMode}[cfg.Session.Cookie.SameSite]
	origins := append(slices.Clone(cfg.Serve.CORS.AllowedOrigins), cfg.Session.Cookie.AllowedOrigins...)
	var proxies []netip.Prefix
	for _, c := range cfg.Serve.TrustedProxies {
		p, _ := parseCIDROrIP(c) // validated with the config
		proxies = append(proxies, p)
	}
	authCfg := graph.AuthConfig{
		AdminKeys: keys,
		Cookies: graph.CookieConfig{
			Name:           cfg.Session.Cookie.Name,
			Secure:         cfg.Session.Cookie.Secure,
			SameSite:       sameSite,
			Domain:         cfg.Session.Cookie.Domain,
			AllowedOrigins: origins,
		},
		TrustedProxies: proxies,
	}
	var corsHandler func(http.Handler) http.Handler
	if cfg.Serve.CORS.Enabled || len(cfg.Session.Cookie.AllowedOrigins) > 0 {
		corsHandler = cors.New(cors.Options{
			// Never empty here (validate), so rs/cors never falls back to
			// "*"; and it reflects an allowed origin rather than "*".
			AllowedOrigins:   origins,
			AllowedMethods:   []string{http.MethodGet, http.MethodPost},
			AllowedHeaders:   cfg.Serve.CORS.AllowedHeaders,
			ExposedHeaders:   cfg.Serve.CORS.ExposedHeaders,
			AllowCredentials: true,
			MaxAge:           cfg.Serve.CORS.MaxAge,
		}).Handler
	}
	alive := func(w http.ResponseWriter, _ *http.Request) { writeHealth(w, http.StatusOK, "ok") }
	ready := func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			log.Warn("not ready: database unreachable", "request_id", graph.RequestID(r.Context()), "error", err)
			writeHealth(w, http.StatusServiceUnavailable, "database unreachable")
			return
		}
		writeHealth(w, http.StatusOK, "ok")
	}
	// With serve.admin_address the public listener's Auth knows no admin
	// key, so one sent there is refused like any unknown token.
	mux := func(auth *graph.Auth) http.Handler {
		m := http.NewServeMux()
		h := auth.Middleware(gql)
		if corsHandler != nil {
			h = corsHandler(h)
		}
		m.Handle("/graphql", h)
		m.HandleFunc("GET /self-service/oidc/callback/{provider}", social.Callback)
		m.Handle("/", playground.Handler("/graphql"))
		m.HandleFunc("GET /health/alive", alive)
		m.HandleFunc("GET /health/ready", ready)
		return graph.WithRequestID(accessLog(log, m))
	}
	a := &app{store: store, adminKeys: keys, generatedKey: generated, templates: templates, delivery: delivery, webhooks: hookWorker, runner: worker.New(log)}
	// The live feed runs with the app: stopped before the database closes.
	a.feed = feed
	a.runner.Add("event-feed", feed.Run)
	// Attempt counters are forgotten after the throttle's window; pruning
	// keeps a client that tries many names from growing the table forever.
	a.runner.Every("throttle-prune", throttlePruneInterval, func(ctx context.Context) {
		if n, err := sessions.PruneThrottle(ctx); err != nil {
			log.Warn("pruning login throttle counters failed", "error", err)
		} else if n > 0 {
			log.Debug("pruned login throttle counters", "deleted", n)
		}
	})
	if cfg.Courier.Worker.Enabled {
		a.runner.Add("courier", delivery.Run)
	}
	if len(hooks) > 0 && !cfg.manualWebhooks {
		a.runner.Add("webhooks", hookWorker.Run)
	}
	a.sessions = sessions
	// Requests for codes are resolved here, off the request path: whether an
	// address exists is never looked at while the requester waits.
	if !cfg.manualCodeRequests {
		a.runner.Add("code-requests", func(ctx context.Context) { sessions.RunCodeRequests(ctx, codeRequestPoll, log) })
	}
	a.runner.Every("passkey-prune", throttlePruneInterval, passkeys.PruneJob(log))
	a.runner.Every("code-prune", throttlePruneInterval, func(ctx context.Context) {
		if n, err := sessions.PruneCodes(ctx); err != nil {
			log.Warn("pruning one-time codes failed", "error", err)
		} else if n > 0 {
			log.Debug("pruned one-time codes", "deleted", n)
		}
		if n, err := sessions.PruneTOTPSetups(ctx); err != nil {
			log.Warn("pruning expired TOTP setups failed", "error", err)
		} else if n > 0 {
			log.Debug("pruned expired TOTP setups", "deleted", n)
		}
	})
	a.runner.Every("event-prune", eventPruneInterval, func(ctx context.Context) {
		if n, err := audit.Prune(ctx); err != nil {
			log.Warn("pruning events past events.retention failed", "error", err)
		} else if n > 0 {
			log.Debug("pruned events past events.retention", "deleted", n)
		}
	})
	a.runner.Start(db.BackgroundContext(context.WithoutCancel(ctx)))
	if cfg.Serve.AdminAddress == "" {
		a.handler = mux(graph.NewAuth(sessions.FromToken, authCfg))
	} else {
		a.adminHandler = mux(graph.NewAuth(sessions.FromToken, authCfg))
		public := authCfg
		public.AdminKeys = nil
		a.handler = mux(graph.NewAuth(sessions.FromToken, public))
	}
	return a, nil
}

// Close stops the background loops (a courier batch in flight records
// what it sent), then releases the database.
func (a *app) Close() error {
	a.runner.Stop()
	return a.store.Close()
}

// codeRequestPoll is how often code requests recorded by other processes
// are looked for; this process's own wake the loop at once.
const codeRequestPoll = time.Second

// throttlePruneInterval is how often expired throttle counters are deleted.
const throttlePruneInterval = 10 * time.Minute

// eventPruneInterval is how often events past events.retention are deleted
// (in batches of 1,000, each its own short statement).
const eventPruneInterval = 10 * time.Minute

// openStore opens the database; the embedded SQLite is migrated, a
// PostgreSQL one must be (identityd migrate up).
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (*db.DB, error) {
	store, err := db.Open(ctx, cfg.DSN)
	if err != nil {
		return nil, err
	}
	if store.Kind() == db.SQLite {
		// The embedded database is the service's own: keep it current.
		applied, err := store.MigrateUp(ctx)
		if err != nil {
			_ = store.Close()
			return nil, err
		}
		if len(applied) > 0 {
			log.Info("database migrated", "applied", applied)
		}
	} else if err := store.CheckMigrated(ctx); err != nil {
		_ = store.Close()
		return nil, err
	}
	return store, nil
}

// courierBanner says where emails and SMS go, and where they wait when they
// go nowhere: a newcomer on the embedded default reads the codes the flows
// sent with courierMessages. It names no credential.
func courierBanner(cfg Config, w *courier.Worker) string {
	var b strings.Builder
	readThem := "read them as admin with { courierMessages(filter: {status: QUEUED}) { edges { node { recipient subject body } } } }"
	if r := w.EmailRoute(); r != "" {
		fmt.Fprintf(&b, "  Courier: emails go to %s\n", r)
	} else {
		fmt.Fprintf(&b, "  Courier: no SMTP server (courier.smtp.connection_uri), so emails stay queued, unsent;\n    %s\n", readThem)
	}
	if r := w.SMSRoute(); r != "" {
		fmt.Fprintf(&b, "  Courier: SMS go to %s\n", r)
	} else {
		b.WriteString("  Courier: no SMS channel (courier.channels with id sms), so SMS stay queued, unsent\n")
	}
	if !cfg.Courier.Worker.Enabled {
		b.WriteString("  Courier: this process delivers nothing (courier.worker.enabled: false); run `identityd courier watch`\n")
	}
	return b.String()
}

// cmdCourier is `identityd courier watch`: the courier's delivery worker on
// its own, with serve's configuration, for deployments that run it apart
// (serve with courier.worker.enabled: false). It delivers until stopped and
// loses nothing when stopped: a batch in flight records what it sent.
func cmdCourier(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "watch" {
		return errors.New("courier: say watch (identityd courier watch [--config FILE])")
	}
	cfg, rest, err := configFlag("courier watch", args[1:], stdout, getenv)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("courier watch: unexpected arguments %q", rest)
	}
	log := newLogger(cfg.Log, stderr)
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	delivery, err := courier.NewWorker(store, cfg.Courier.delivery(), log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "identityd %s courier watch (database: %s)\n", version, db.RedactDSN(cfg.DSN))
	cfg.Courier.Worker.Enabled = true // this process is the worker
	fmt.Fprint(stdout, courierBanner(cfg, delivery))
	runner := worker.New(log)
	runner.Add("courier", delivery.Run)
	runner.Start(db.BackgroundContext(context.WithoutCancel(ctx)))
	<-ctx.Done()
	log.Info("courier watch: stopping")
	runner.Stop()
	return nil
}

// accessLog logs one line per request at debug level (warn for 5xx):
// method, path, status, duration and request id, never headers, so no
// token or key can reach a log.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		level := slog.LevelDebug
		if sw.status >= 500 {
			level = slog.LevelWarn
		}
		if !log.Enabled(r.Context(), level) {
			return // the hot path pays nothing for a line nobody reads
		}
		log.Log(r.Context(), level, "http", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration", time.Since(start), "request_id", graph.RequestID(r.Context()))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeHealth(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"status\":%q}\n", status)
}

func cmdMigrate(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New("migrate: say up, down or status")
	}
	dir := args[0]
	var (
		steps = 1
		all   bool
		yes   bool
	)
	down := func(fs *flag.FlagSet) {
		if dir != "down" {
			return
		}
		fs.IntVar(&steps, "steps", 1, "roll back this many migrations, newest first")
		fs.BoolVar(&all, "all", false, "roll back every migration: drops every table and all data")
		fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	}
	cfg, rest, err := configFlag("migrate", args[1:], stdout, getenv, down)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("migrate: unexpected arguments %q", rest)
	}
	if dir == "down" {
		if steps < 1 {
			return fmt.Errorf("migrate down: --steps must be at least 1 (or say --all)")
		}
		if all {
			steps = 0
		}
		if err := confirmDown(cfg.DSN, steps, yes, stdout); err != nil {
			return err
		}
	}
	store, err := db.Open(ctx, cfg.DSN)
	if err != nil {
		return err
	}
	defer store.Close()
	switch dir {
	case "up":
		applied, err := store.MigrateUp(ctx)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(stdout, "database is up to date")
		}
		for _, n := range applied {
			fmt.Fprintf(stdout, "applied %s\n", n)
		}
	case "down":
		rolled, err := store.MigrateDown(ctx, steps)
		if err != nil {
			return err
		}
		if len(rolled) == 0 {
			fmt.Fprintln(stdout, "nothing to roll back")
		}
		for _, n := range rolled {
			fmt.Fprintf(stdout, "rolled back %s\n", n)
		}
	case "status":
		ms, err := store.Migrations(ctx)
		if err != nil {
			return err
		}
		for _, m := range ms {
			state := "pending"
			if m.Applied {
				state = "applied"
			}
			fmt.Fprintf(stdout, "%-8s %s\n", state, m.Name)
		}
	default:
		return fmt.Errorf("migrate: unknown direction %q: say up, down or status", dir)
	}
	return nil
}

// terminal is standard input, and whether it is a terminal someone can answer
// a question on; tests replace it.
var terminal = func() (io.Reader, bool) {
	st, err := os.Stdin.Stat()
	return os.Stdin, err == nil && st.Mode()&os.ModeCharDevice != 0
}

// confirmDown asks before a rollback, which destroys data: the tables a
// migration made go with it. Without a terminal to ask on, only --yes lets
// it go ahead.
func confirmDown(dsn string, steps int, yes bool, stdout io.Writer) error {
	if yes {
		return nil
	}
	what := "the newest migration"
	switch {
	case steps == 0:
		what = "EVERY migration: every table and all identities, credentials and sessions are dropped"
	case steps > 1:
		what = fmt.Sprintf("the %d newest migrations", steps)
	}
	in, ok := terminal()
	if !ok {
		return fmt.Errorf("migrate down rolls back %s, and the data in what it drops is lost; add --yes to go ahead (no terminal to ask on)", what)
	}
	fmt.Fprintf(stdout, "Roll back %s on %s? Data in what is dropped is lost. Type yes to go ahead: ", what, db.RedactDSN(dsn))
	answer, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(answer) != "yes" {
		return errors.New("migrate down: not confirmed; nothing was rolled back")
	}
	return nil
}

func cmdHealthcheck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stdout)
	url := fs.String("url", "http://127.0.0.1:4455/health/ready", "readiness URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", *url, resp.Status)
	}
	return nil
}

// newSecondFactorSecrets makes the keys second factors are kept with: the
// cipher of TOTP keys from secrets.cipher (secrets.default when there is
// none, so a server works out of the box), and the hash of lookup secrets
// from secrets.default, as one-time codes are.
func newSecondFactorSecrets(cfg SecretsConfig, defaults []string) (*mfa.Secrets, error) {
	keys, min, key := cfg.Cipher, mfa.MinCipherSecretBytes, "secrets.cipher"
	if len(keys) == 0 {
		keys, min, key = defaults, code.MinSecretBytes, "secrets.default"
	}
	cipher, err := mfa.NewCipher(keys, min, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", key, err)
	}
	lookup, err := mfa.NewLookupHasher(defaults)
	if err != nil {
		return nil, fmt.Errorf("config: secrets.default: %w", err)
	}
	return &mfa.Secrets{Cipher: cipher, Lookup: lookup}, nil
}

// deriveKey is a key for one purpose from a server secret (HMAC-SHA256 of
// the purpose), so that no two uses share a key.
func deriveKey(secret, purpose string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(purpose))
	return m.Sum(nil)
}
