package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/identityd/identityd/db"
)

// adminKeyFile is where a generated admin key is kept between starts.
const adminKeyFile = "admin-key"

// resolveAdminKeys returns the admin API keys to accept. With keys configured
// it uses them. With none, a server on a loopback address makes one, keeps it
// in dataDir (readable by the owner only) and reports generated=true so the
// caller can print it; a server reachable from other hosts refuses to start
// rather than run an admin API nobody can use or, worse, anyone can.
func resolveAdminKeys(configured []string, address, dataDir string) (keys []string, generated bool, err error) {
	if len(configured) > 0 {
		return configured, false, nil
	}
	key, err := localSecret(address, dataDir, adminKeyFile, "idadm_", "admin key",
		fmt.Sprintf("config: admin.api_keys: no admin key is configured and serve.address %q is reachable from other hosts: set ADMIN_API_KEYS", address))
	if err != nil {
		return nil, false, err
	}
	return []string{key}, true, nil
}

// secretFile is where a generated secrets.default is kept between starts.
const secretFile = "secret-default"

// resolveSecrets returns the secrets that key one-time codes: those
// configured, or, with none, one made and kept in dataDir by a server on a
// loopback address (`go run .` works out of the box, and codes survive a
// restart). A server reachable from other hosts refuses to start without
// one: a secret made per machine would differ between the processes of one
// deployment, and their codes would not check on each other.
func resolveSecrets(configured []string, address, dataDir string) ([]string, error) {
	if len(configured) > 0 {
		return configured, nil
	}
	secret, err := localSecret(address, dataDir, secretFile, "idsec_", "secret",
		fmt.Sprintf("config: secrets.default: no secret is configured and serve.address %q is reachable from other hosts: set SECRETS_DEFAULT (at least 16 random characters; a list, the first one signs)", address))
	if err != nil {
		return nil, err
	}
	return []string{secret}, nil
}

// localSecret is a secret kept in dataDir/file for a server that listens on
// a loopback address only: read when it is there, else made (prefix and 32
// random bytes, base64url) and written readable by the owner only. On any
// other address it refuses with refusal, which names the key to set. what
// names the secret in errors.
func localSecret(address, dataDir, file, prefix, what, refusal string) (string, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return "", err
	}
	if !isLoopbackHost(host) {
		return "", errors.New(refusal)
	}
	path := filepath.Join(dataDir, file)
	b, err := os.ReadFile(path)
	if err == nil {
		if k := strings.TrimSpace(string(b)); len(k) >= 16 {
			return k, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	key := prefix + base64.RawURLEncoding.EncodeToString(raw[:])
	if err := db.MakeDataDir(dataDir); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", what, err)
	}
	return key, nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
