package db

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
)

// sessionCache keeps the sessions that ActiveSession found, with their
// identities, so that whoami, which frontends call on every page, needs no
// database read while nothing changed. It is correct across server
// processes, not only within one:
//
//   - Triggers on identities and sessions (migration 20261122000002) send the
//     identity's id on the channel cacheChannel whenever either row is
//     updated or deleted, whoever wrote it (another identityd process, an
//     older version, psql). The listener drops that identity's entries. A
//     process also drops them itself right after its own writes commit, so
//     it reads its own writes without waiting for the notification.
//   - An entry is only served while the listener is known to be live: every
//     pingInterval the process sends itself a notification through the pool,
//     and entries are served only until maxStale after the send time of the
//     last ping that came back. PostgreSQL delivers notifications in commit
//     order, so a returning ping proves that every change committed before
//     it was sent has been applied. If the listening connection dies
//     silently, a revoked session can live at most maxStale; if it fails
//     loudly, the cache is emptied at once and stays off until a ping comes
//     back on the new connection (and is emptied again then).
//   - A fill races with invalidations: the reader notes the epoch before its
//     read and its entry is dropped if any invalidation came in between.
//
// Expiry is checked on every hit against the caller's clock. Unknown tokens
// are never cached: they cost a read each, as before. The cache holds at most
// max entries; beyond that an arbitrary entry goes.
type sessionCache struct {
	mu         sync.RWMutex
	entries    map[string]*model.Session // by token hash
	byIdentity map[uuid.UUID][]string
	max        int

	epoch      atomic.Uint64
	validUntil atomic.Int64 // monotonic nanoseconds since base; 0: serve nothing
	base       time.Time
	instance   string // tells this process's pings from others'

	syncMu  sync.Mutex
	syncSeq int
	syncs   map[string]chan struct{} // SyncSessionCache calls waiting
}

const (
	cacheChannel = "identityd_cache"
	pingInterval = time.Second
	maxStale     = 3 * time.Second
	cacheMax     = 100_000
)

func newSessionCache() *sessionCache {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &sessionCache{
		entries:    map[string]*model.Session{},
		byIdentity: map[uuid.UUID][]string{},
		max:        cacheMax,
		base:       time.Now(),
		instance:   hex.EncodeToString(b),
		syncs:      map[string]chan struct{}{},
	}
}

// awaitSync registers a SyncSessionCache call.
func (c *sessionCache) awaitSync() (token string, done <-chan struct{}) {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	c.syncSeq++
	token = strconv.Itoa(c.syncSeq)
	ch := make(chan struct{})
	c.syncs[token] = ch
	return token, ch
}

// synced releases the SyncSessionCache call waiting on token, if any.
func (c *sessionCache) synced(token string) {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	if ch, ok := c.syncs[token]; ok {
		close(ch)
		delete(c.syncs, token)
	}
}

// mono is a monotonic clock reading: wall-clock jumps cannot stretch how long
// entries are trusted.
func (c *sessionCache) mono() int64 { return int64(time.Since(c.base)) }

// get returns a copy of the cached session for tokenHash if it may be served
// and has not expired at now.
func (c *sessionCache) get(tokenHash []byte, now time.Time) (*model.Session, bool) {
	if c.mono() >= c.validUntil.Load() {
		return nil, false
	}
	c.mu.RLock()
	s, ok := c.entries[string(tokenHash)]
	c.mu.RUnlock()
	if !ok || !now.Before(s.ExpiresAt) {
		return nil, false
	}
	// Callers get their own copies: nothing they do can reach the entry.
	cp := *s
	ident := *s.Identity
	cp.Identity = &ident
	return &cp, true
}

// put stores s for tokenHash unless an invalidation came in since epoch was
// read (before the database read that found s).
func (c *sessionCache) put(tokenHash []byte, s *model.Session, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch.Load() != epoch {
		return
	}
	key := string(tokenHash)
	if _, ok := c.entries[key]; ok {
		return
	}
	if len(c.entries) >= c.max {
		for k, old := range c.entries {
			c.removeLocked(k, old.IdentityID)
			break
		}
	}
	c.entries[key] = s
	c.byIdentity[s.IdentityID] = append(c.byIdentity[s.IdentityID], key)
}

func (c *sessionCache) removeLocked(key string, identityID uuid.UUID) {
	delete(c.entries, key)
	keys := c.byIdentity[identityID]
	for i, k := range keys {
		if k == key {
			keys = append(keys[:i], keys[i+1:]...)
			break
		}
	}
	if len(keys) == 0 {
		delete(c.byIdentity, identityID)
	} else {
		c.byIdentity[identityID] = keys
	}
}

// invalidate drops every entry of an identity.
func (c *sessionCache) invalidate(identityID uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	for _, k := range c.byIdentity[identityID] {
		delete(c.entries, k)
	}
	delete(c.byIdentity, identityID)
}

// flush drops everything.
func (c *sessionCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	clear(c.entries)
	clear(c.byIdentity)
}

// pingPayload is the payload of a ping sent now.
func (c *sessionCache) pingPayload() string {
	return "ping:" + c.instance + ":" + strconv.FormatInt(c.mono(), 10)
}

// parsePing tells whether payload is one of this process's pings and when
// it was sent.
func (c *sessionCache) parsePing(payload string) (sent int64, ok bool) {
	rest, ok := strings.CutPrefix(payload, "ping:"+c.instance+":")
	if !ok {
		return 0, false
	}
	sent, err := strconv.ParseInt(rest, 10, 64)
	return sent, err == nil
}
