package db

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
)

func cachedSession(identityID uuid.UUID, expires time.Time) *model.Session {
	return &model.Session{
		ID: uuid.New(), IdentityID: identityID, Active: true, ExpiresAt: expires,
		Identity: &model.Identity{ID: identityID, Traits: model.JSON(`{"email":"a@example.com"}`)},
	}
}

// trust lets c serve for a while, as a ping coming back does.
func trust(c *sessionCache) { c.validUntil.Store(c.mono() + int64(time.Minute)) }

func TestSessionCacheServesOnlyWhileTrusted(t *testing.T) {
	c := newSessionCache()
	now := time.Now()
	key := []byte("hash-1")
	c.put(key, cachedSession(uuid.New(), now.Add(time.Hour)), c.epoch.Load())
	if _, ok := c.get(key, now); ok {
		t.Fatal("served before any ping came back")
	}
	trust(c)
	if _, ok := c.get(key, now); !ok {
		t.Fatal("not served while trusted")
	}
	c.validUntil.Store(0)
	if _, ok := c.get(key, now); ok {
		t.Fatal("served after trust was withdrawn")
	}
}

func TestSessionCacheExpiry(t *testing.T) {
	c := newSessionCache()
	trust(c)
	now := time.Now()
	key := []byte("hash-1")
	c.put(key, cachedSession(uuid.New(), now.Add(time.Minute)), c.epoch.Load())
	if _, ok := c.get(key, now.Add(59*time.Second)); !ok {
		t.Error("not served before it expires")
	}
	if _, ok := c.get(key, now.Add(time.Minute)); ok {
		t.Error("served at its expiry")
	}
}

func TestSessionCacheInvalidate(t *testing.T) {
	c := newSessionCache()
	trust(c)
	now := time.Now()
	alice, bob := uuid.New(), uuid.New()
	c.put([]byte("a1"), cachedSession(alice, now.Add(time.Hour)), c.epoch.Load())
	c.put([]byte("a2"), cachedSession(alice, now.Add(time.Hour)), c.epoch.Load())
	c.put([]byte("b1"), cachedSession(bob, now.Add(time.Hour)), c.epoch.Load())
	c.invalidate(alice)
	for _, k := range []string{"a1", "a2"} {
		if _, ok := c.get([]byte(k), now); ok {
			t.Errorf("%s served after its identity changed", k)
		}
	}
	if _, ok := c.get([]byte("b1"), now); !ok {
		t.Error("another identity's session was dropped")
	}
	if len(c.byIdentity) != 1 {
		t.Errorf("index holds %d identities, want 1", len(c.byIdentity))
	}
	c.flush()
	if _, ok := c.get([]byte("b1"), now); ok || len(c.byIdentity) != 0 {
		t.Error("flush left entries")
	}
}

// TestSessionCacheFillRace: a read that started before an invalidation must
// not store what it read, which may be the state before the change.
func TestSessionCacheFillRace(t *testing.T) {
	c := newSessionCache()
	trust(c)
	now := time.Now()
	id := uuid.New()
	epoch := c.epoch.Load() // the reader notes the epoch, then reads…
	c.invalidate(id)        // …a change commits and is heard…
	c.put([]byte("k"), cachedSession(id, now.Add(time.Hour)), epoch)
	if _, ok := c.get([]byte("k"), now); ok {
		t.Error("a read from before the change was stored")
	}
}

func TestSessionCacheCopies(t *testing.T) {
	c := newSessionCache()
	trust(c)
	now := time.Now()
	c.put([]byte("k"), cachedSession(uuid.New(), now.Add(time.Hour)), c.epoch.Load())
	s, _ := c.get([]byte("k"), now)
	s.Active = false
	s.Identity.State = model.IdentityStateInactive
	again, _ := c.get([]byte("k"), now)
	if !again.Active || again.Identity.State == model.IdentityStateInactive {
		t.Error("a caller's change reached the cached entry")
	}
}

func TestSessionCacheBounded(t *testing.T) {
	c := newSessionCache()
	c.max = 10
	now := time.Now()
	for i := range 25 {
		c.put([]byte{byte(i)}, cachedSession(uuid.New(), now.Add(time.Hour)), c.epoch.Load())
	}
	if len(c.entries) != 10 || len(c.byIdentity) != 10 {
		t.Errorf("holds %d entries for %d identities, want 10", len(c.entries), len(c.byIdentity))
	}
}

func TestSessionCachePings(t *testing.T) {
	c, other := newSessionCache(), newSessionCache()
	p := c.pingPayload()
	if _, ok := c.parsePing(p); !ok {
		t.Errorf("own ping %q not recognised", p)
	}
	if _, ok := other.parsePing(p); ok {
		t.Errorf("another process took %q for its own", p)
	}
	if _, ok := c.parsePing(uuid.NewString()); ok {
		t.Error("an identity id taken for a ping")
	}
}
