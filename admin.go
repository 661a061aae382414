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
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, false, err
	}
	if !isLoopbackHost(host) {
		return nil, false, fmt.Errorf("config: admin.api_keys: no admin key is configured and serve.address %q is reachable from other hosts: set ADMIN_API_KEYS", address)
	}
	path := filepath.Join(dataDir, adminKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if k := strings.TrimSpace(string(b)); len(k) >= 16 {
			return []string{k}, true, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read admin key: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, false, err
	}
	key := "idadm_" + base64.RawURLEncoding.EncodeToString(raw[:])
	if err := db.MakeDataDir(dataDir); err != nil {
		return nil, false, err
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return nil, false, fmt.Errorf("write admin key: %w", err)
	}
	return []string{key}, true, nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
