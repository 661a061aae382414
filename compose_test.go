package main

import (
	"bufio"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const (
	composeFile    = "docker-compose.yml"
	dockerfilePath = "Dockerfile"
	dockerignore   = ".dockerignore"

	testAdminKeys = "test-admin-key-1,test-admin-key-2"

	// testSecretsDefault is the SECRETS_DEFAULT loadCompose passes unless
	// the test sets it itself.
	testSecretsDefault = "test-secret-default-0123456789"
)

// loadCompose loads docker-compose.yml from the repository root with
// compose-go, interpolating only the variables in env (never the process
// environment or a local .env file, so the result does not depend on the
// machine running the test).
func loadCompose(t *testing.T, env ...string) (*types.Project, error) {
	t.Helper()
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "SECRETS_DEFAULT=") }) {
		env = append(env, "SECRETS_DEFAULT="+testSecretsDefault)
	}
	opts, err := cli.NewProjectOptions(
		[]string{composeFile},
		cli.WithWorkingDirectory("."),
		cli.WithEnv(env),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatalf("compose project options: %v", err)
	}
	return opts.LoadProject(context.Background())
}

// mustLoadCompose is loadCompose for environments that must load cleanly.
func mustLoadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	project, err := loadCompose(t, env...)
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	return project
}

// mustService returns the named service of project or fails the test.
func mustService(t *testing.T, project *types.Project, name string) types.ServiceConfig {
	t.Helper()
	svc, err := project.GetService(name)
	if err != nil {
		t.Fatalf("service %q: %v", name, err)
	}
	return svc
}

// envValue returns the value of key in a service's environment and whether
// it is set to a value.
func envValue(svc types.ServiceConfig, key string) (string, bool) {
	v, ok := svc.Environment[key]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

// assertDependsOn checks that svc waits for dependency to reach condition.
func assertDependsOn(t *testing.T, svc types.ServiceConfig, dependency, condition string) {
	t.Helper()
	dep, ok := svc.DependsOn[dependency]
	if !ok {
		t.Errorf("%s: no depends_on %q", svc.Name, dependency)
		return
	}
	if dep.Condition != condition {
		t.Errorf("%s: depends_on %s condition = %q, want %q", svc.Name, dependency, dep.Condition, condition)
	}
}

func TestComposeServicesExist(t *testing.T) {
	project := mustLoadCompose(t, "ADMIN_API_KEYS="+testAdminKeys)
	for _, name := range []string{"postgres", "migrate", "identityd", "mailpit"} {
		mustService(t, project, name)
	}
}

func TestComposeMigrate(t *testing.T) {
	svc := mustService(t, mustLoadCompose(t, "ADMIN_API_KEYS="+testAdminKeys), "migrate")

	if got, want := []string(svc.Command), []string{"migrate", "up"}; !slices.Equal(got, want) {
		t.Errorf("command = %q, want %q", got, want)
	}
	assertDependsOn(t, svc, "postgres", types.ServiceConditionHealthy)
	if svc.Restart != types.RestartPolicyNo {
		t.Errorf("restart = %q, want %q", svc.Restart, types.RestartPolicyNo)
	}
	if len(svc.Ports) != 0 {
		t.Errorf("migrate publishes ports %v; a one-shot job should publish none", svc.Ports)
	}
}

func TestComposeIdentityd(t *testing.T) {
	svc := mustService(t, mustLoadCompose(t, "ADMIN_API_KEYS="+testAdminKeys), "identityd")

	if got, want := []string(svc.Command), []string{"serve"}; !slices.Equal(got, want) {
		t.Errorf("command = %q, want %q", got, want)
	}
	assertDependsOn(t, svc, "migrate", types.ServiceConditionCompletedSuccessfully)
	assertDependsOn(t, svc, "postgres", types.ServiceConditionHealthy)
	if svc.Restart != types.RestartPolicyUnlessStopped {
		t.Errorf("restart = %q, want %q", svc.Restart, types.RestartPolicyUnlessStopped)
	}

	switch hc := svc.HealthCheck; {
	case hc == nil:
		t.Error("no healthcheck")
	case hc.Disable:
		t.Error("healthcheck is disabled")
	default:
		if got, want := []string(hc.Test), []string{"CMD", "/identityd", "healthcheck"}; !slices.Equal(got, want) {
			t.Errorf("healthcheck test = %q, want %q", got, want)
		}
	}

	if got, _ := envValue(svc, "SERVE_ADDRESS"); got != "0.0.0.0:4455" {
		t.Errorf("SERVE_ADDRESS = %q, want 0.0.0.0:4455 (the container must listen on all interfaces)", got)
	}
	if got, _ := envValue(svc, "ADMIN_API_KEYS"); got != testAdminKeys {
		t.Errorf("ADMIN_API_KEYS = %q, want the value from the environment %q", got, testAdminKeys)
	}
}

func TestComposeIdentitydPublishesOnLoopbackOnly(t *testing.T) {
	project := mustLoadCompose(t, "ADMIN_API_KEYS="+testAdminKeys)

	for _, svc := range project.Services {
		for _, p := range svc.Ports {
			if p.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %d published on host IP %q, want 127.0.0.1", svc.Name, p.Target, p.HostIP)
			}
		}
	}

	svc := mustService(t, project, "identityd")
	found := slices.ContainsFunc(svc.Ports, func(p types.ServicePortConfig) bool {
		return p.Target == 4455 && p.Published == "4455" && p.HostIP == "127.0.0.1"
	})
	if !found {
		t.Errorf("identityd ports = %+v, want 127.0.0.1:4455:4455", svc.Ports)
	}
}

func TestComposeDSN(t *testing.T) {
	tests := []struct {
		name         string
		env          []string
		wantPassword string
	}{
		{
			name:         "default password",
			env:          []string{"ADMIN_API_KEYS=" + testAdminKeys},
			wantPassword: "secret",
		},
		{
			name:         "password from environment",
			env:          []string{"ADMIN_API_KEYS=" + testAdminKeys, "POSTGRES_PASSWORD=hunter2"},
			wantPassword: "hunter2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			project := mustLoadCompose(t, tt.env...)
			pg := mustService(t, project, "postgres")
			pgPassword, _ := envValue(pg, "POSTGRES_PASSWORD")
			if pgPassword != tt.wantPassword {
				t.Errorf("postgres POSTGRES_PASSWORD = %q, want %q", pgPassword, tt.wantPassword)
			}
			pgUser, ok := envValue(pg, "POSTGRES_USER")
			if !ok {
				pgUser = "postgres" // the image's default superuser
			}
			pgDB, ok := envValue(pg, "POSTGRES_DB")
			if !ok {
				pgDB = pgUser // the image's default database
			}

			for _, name := range []string{"migrate", "identityd"} {
				svc := mustService(t, project, name)
				raw, ok := envValue(svc, "DSN")
				if !ok {
					t.Errorf("%s: DSN not set", name)
					continue
				}
				dsn, err := url.Parse(raw)
				if err != nil {
					t.Errorf("%s: DSN %q: %v", name, raw, err)
					continue
				}
				if dsn.Scheme != "postgres" && dsn.Scheme != "postgresql" {
					t.Errorf("%s: DSN scheme = %q, want postgres", name, dsn.Scheme)
				}
				if dsn.Hostname() != "postgres" {
					t.Errorf("%s: DSN host = %q, want the postgres service", name, dsn.Hostname())
				}
				if port := dsn.Port(); port != "" && port != "5432" {
					t.Errorf("%s: DSN port = %q, want 5432", name, port)
				}
				if got := dsn.User.Username(); got != pgUser {
					t.Errorf("%s: DSN user = %q, want %q", name, got, pgUser)
				}
				if got, _ := dsn.User.Password(); got != pgPassword {
					t.Errorf("%s: DSN password = %q, want postgres' POSTGRES_PASSWORD %q", name, got, pgPassword)
				}
				if got := strings.TrimPrefix(dsn.Path, "/"); got != pgDB {
					t.Errorf("%s: DSN database = %q, want %q", name, got, pgDB)
				}
			}
		})
	}
}

func TestComposePostgres(t *testing.T) {
	project := mustLoadCompose(t, "ADMIN_API_KEYS="+testAdminKeys)
	svc := mustService(t, project, "postgres")

	if !strings.HasPrefix(svc.Image, "postgres:16") {
		t.Errorf("image = %q, want postgres:16-*", svc.Image)
	}
	if hc := svc.HealthCheck; hc == nil || hc.Disable || !strings.Contains(strings.Join(hc.Test, " "), "pg_isready") {
		t.Errorf("healthcheck = %+v, want a pg_isready check", hc)
	}
	if len(svc.Ports) != 0 {
		t.Errorf("postgres publishes ports %v; it should only be reachable inside the project network", svc.Ports)
	}
	named := slices.ContainsFunc(svc.Volumes, func(v types.ServiceVolumeConfig) bool {
		_, declared := project.Volumes[v.Source]
		return v.Type == types.VolumeTypeVolume && declared && v.Target == "/var/lib/postgresql/data"
	})
	if !named {
		t.Errorf("volumes = %+v, want a named volume on /var/lib/postgresql/data", svc.Volumes)
	}
}

func TestComposeAppServicesBuildFromDockerfile(t *testing.T) {
	project := mustLoadCompose(t, "ADMIN_API_KEYS="+testAdminKeys)
	wantDockerfile, err := filepath.Abs(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}

	var images []string
	for _, name := range []string{"migrate", "identityd"} {
		svc := mustService(t, project, name)
		images = append(images, svc.Image)
		if svc.Build == nil {
			t.Errorf("%s: no build section", name)
			continue
		}
		dockerfile := svc.Build.Dockerfile
		if dockerfile == "" {
			dockerfile = "Dockerfile"
		}
		if !filepath.IsAbs(dockerfile) {
			dockerfile = filepath.Join(svc.Build.Context, dockerfile)
		}
		if filepath.Clean(dockerfile) != wantDockerfile {
			t.Errorf("%s: builds from %q, want %q", name, dockerfile, wantDockerfile)
		}
	}
	if images[0] == "" || images[0] != images[1] {
		t.Errorf("migrate and identityd images = %q, want one shared, named image", images)
	}
}

func TestComposeRequiresAdminAPIKeys(t *testing.T) {
	tests := []struct {
		name string
		env  []string
	}{
		{name: "unset", env: nil},
		{name: "empty", env: []string{"ADMIN_API_KEYS="}},
		{name: "unset with other variables", env: []string{"POSTGRES_PASSWORD=hunter2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadCompose(t, tt.env...)
			if err == nil {
				t.Fatal("loading without ADMIN_API_KEYS succeeded, want an error")
			}
			if !strings.Contains(err.Error(), "ADMIN_API_KEYS") {
				t.Errorf("error %q does not mention ADMIN_API_KEYS", err)
			}
		})
	}
}

// TestComposeRequiresSecretsDefault: the server listens on 0.0.0.0 in the
// container, where it refuses to start without secrets.default, so compose
// says so before anything starts.
func TestComposeRequiresSecretsDefault(t *testing.T) {
	for _, env := range [][]string{{"ADMIN_API_KEYS=" + testAdminKeys, "SECRETS_DEFAULT="}} {
		_, err := loadCompose(t, env...)
		if err == nil || !strings.Contains(err.Error(), "SECRETS_DEFAULT") {
			t.Errorf("loading without SECRETS_DEFAULT: %v, want an error naming it", err)
		}
	}
	svc := mustService(t, mustLoadCompose(t, "ADMIN_API_KEYS="+testAdminKeys), "identityd")
	if got, _ := envValue(svc, "SECRETS_DEFAULT"); got != testSecretsDefault {
		t.Errorf("SECRETS_DEFAULT = %q, want the value from the environment", got)
	}
}

// dockerInstruction is one instruction of a Dockerfile, with the index of the
// build stage (FROM) it belongs to.
type dockerInstruction struct {
	Stage   int    // 0 for the first FROM, -1 before any FROM
	Keyword string // upper-cased, e.g. "FROM", "ENV"
	Args    string // the rest of the instruction, continuations joined
}

// readDockerfile splits a Dockerfile into instructions: comments and blank
// lines are dropped and backslash continuations joined. It is a deliberately
// small reader for assertions, not a full Dockerfile parser (no heredocs, no
// custom escape directive).
func readDockerfile(t *testing.T, path string) []dockerInstruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()

	var (
		out     []dockerInstruction
		pending strings.Builder
		stage   = -1
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending.WriteString(cont)
			pending.WriteByte(' ')
			continue
		}
		pending.WriteString(line)
		full := pending.String()
		pending.Reset()

		keyword, args, _ := strings.Cut(full, " ")
		keyword = strings.ToUpper(keyword)
		if keyword == "FROM" {
			stage++
		}
		out = append(out, dockerInstruction{Stage: stage, Keyword: keyword, Args: strings.Join(strings.Fields(args), " ")})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	instructions := readDockerfile(t, dockerfilePath)
	finalStage := -1
	for _, in := range instructions {
		finalStage = max(finalStage, in.Stage)
	}
	if finalStage < 1 {
		t.Fatalf("Dockerfile has %d stage(s), want a multi-stage build", finalStage+1)
	}

	// final returns the arguments of every keyword instruction in the final stage.
	final := func(keyword string) []string {
		var args []string
		for _, in := range instructions {
			if in.Stage == finalStage && in.Keyword == keyword {
				args = append(args, in.Args)
			}
		}
		return args
	}
	// anyStage reports whether some instruction of keyword contains substr.
	anyStage := func(keyword, substr string) bool {
		return slices.ContainsFunc(instructions, func(in dockerInstruction) bool {
			return in.Keyword == keyword && strings.Contains(in.Args, substr)
		})
	}

	modDownload := slices.IndexFunc(instructions, func(in dockerInstruction) bool {
		return in.Keyword == "RUN" && strings.Contains(in.Args, "go mod download")
	})
	copySource := slices.IndexFunc(instructions, func(in dockerInstruction) bool {
		return in.Keyword == "COPY" && strings.HasPrefix(in.Args, ". ")
	})

	checks := []struct {
		name string
		ok   bool
	}{
		{"final stage is FROM gcr.io/distroless/static-debian12:nonroot",
			slices.ContainsFunc(final("FROM"), func(a string) bool {
				return strings.HasPrefix(a, "gcr.io/distroless/static-debian12:nonroot")
			})},
		{"final stage runs as a non-root USER",
			slices.ContainsFunc(final("USER"), func(a string) bool {
				u, _, _ := strings.Cut(a, ":")
				return u != "" && u != "root" && u != "0"
			})},
		{"final stage EXPOSEs 4455",
			slices.ContainsFunc(final("EXPOSE"), func(a string) bool {
				return slices.Contains(strings.Fields(a), "4455") || slices.Contains(strings.Fields(a), "4455/tcp")
			})},
		{"final stage sets SERVE_ADDRESS=0.0.0.0:4455",
			slices.ContainsFunc(final("ENV"), func(a string) bool { return strings.Contains(a, "SERVE_ADDRESS=0.0.0.0:4455") })},
		{"final stage has a HEALTHCHECK running /identityd healthcheck",
			slices.ContainsFunc(final("HEALTHCHECK"), func(a string) bool {
				return strings.Contains(a, `"/identityd", "healthcheck"`) || strings.Contains(a, "/identityd healthcheck")
			})},
		{`ENTRYPOINT ["/identityd"]`,
			slices.Contains(final("ENTRYPOINT"), `["/identityd"]`)},
		{`CMD ["serve"]`,
			slices.Contains(final("CMD"), `["serve"]`)},
		{"builds with CGO_ENABLED=0",
			anyStage("ENV", "CGO_ENABLED=0") || anyStage("RUN", "CGO_ENABLED=0") || anyStage("ARG", "CGO_ENABLED=0")},
		{"downloads modules (own layer) before copying the source",
			modDownload >= 0 && copySource >= 0 && modDownload < copySource},
		{"builds with -trimpath and main.version",
			anyStage("RUN", "-trimpath") && anyStage("RUN", "-X main.version=")},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("Dockerfile: want %s", c.name)
		}
	}
}

func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(dockerignore)
	if err != nil {
		t.Fatal(err)
	}
	patterns := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns[line] = true
		}
	}
	for _, want := range []string{".git", ".env", "data/", "node_modules", ".ci"} {
		if !patterns[want] {
			t.Errorf("%s does not exclude %q", dockerignore, want)
		}
	}
}

// TestComposeMailpit: Mailpit is the SMTP server identityd sends to, and its
// web UI is published on loopback only.
func TestComposeMailpit(t *testing.T) {
	project := mustLoadCompose(t, "ADMIN_API_KEYS="+testAdminKeys)
	svc := mustService(t, project, "mailpit")
	if !strings.HasPrefix(svc.Image, "axllent/mailpit") {
		t.Errorf("image = %q, want axllent/mailpit", svc.Image)
	}
	ui := slices.ContainsFunc(svc.Ports, func(p types.ServicePortConfig) bool {
		return p.Target == 8025 && p.Published == "8025" && p.HostIP == "127.0.0.1"
	})
	if !ui || len(svc.Ports) != 1 {
		t.Errorf("mailpit ports = %+v, want only the web UI on 127.0.0.1:8025", svc.Ports)
	}
	identityd := mustService(t, project, "identityd")
	if got, _ := envValue(identityd, "COURIER_SMTP_CONNECTION_URI"); got != "smtp://mailpit:1025/?disable_starttls=true" {
		t.Errorf("COURIER_SMTP_CONNECTION_URI = %q", got)
	}
	if got, _ := envValue(identityd, "COURIER_SMTP_FROM_ADDRESS"); got == "" {
		t.Error("COURIER_SMTP_FROM_ADDRESS is not set (required with an SMTP server)")
	}
	// The values load as a configuration.
	cfg, err := loadConfig("", func(k string) string { v, _ := envValue(identityd, k); return v })
	if err != nil {
		t.Errorf("identityd's environment does not load: %v", err)
	} else if cfg.Courier.SMTP.ConnectionURI == "" {
		t.Error("the courier's SMTP server is not configured")
	}
	assertDependsOn(t, identityd, "mailpit", types.ServiceConditionStarted)
}
