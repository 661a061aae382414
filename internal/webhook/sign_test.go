package webhook

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
)

// TestSignSpecVector: the example the Standard Webhooks reference libraries
// test against (secret, msg id, timestamp, body → signature).
func TestSignSpecVector(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	for _, tc := range []struct {
		name, secret, wantErr string
	}{
		{"24 bytes", "whsec_" + b64(24), ""},
		{"64 bytes", "whsec_" + b64(64), ""},
		{"no prefix", b64(32), `must start with "whsec_"`},
		{"not base64", "whsec_not*base64!", "not standard base64"},
		{"too short", "whsec_" + b64(23), "23 bytes"},
		{"too long", "whsec_" + b64(65), "65 bytes"},
		{"empty", "", "must start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSecret(tc.secret)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
			}
			if err != nil && len(tc.secret) > 8 && strings.Contains(err.Error(), tc.secret[6:]) {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}

func TestBody(t *testing.T) {
	id := uuid.MustParse("0190c0de-0000-7000-8000-000000000001")
	who := uuid.MustParse("0190c0de-0000-7000-8000-000000000002")
	key, ip := "abcdef012345", "203.0.113.7"
	e := &model.Event{ID: id, Type: "identity.updated", OccurredAt: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC), IdentityID: &who,
		Actor: &model.EventActor{Kind: model.EventActorKindAdmin, AdminKeyID: &key}, ClientIP: &ip,
		ChangedPaths: []string{"/traits/email"}, Data: model.JSON(`{"n":1}`)}
	b, err := Body(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"identity.updated","timestamp":"2026-12-02T09:00:00Z","data":{"id":"0190c0de-0000-7000-8000-000000000001",` +
		`"type":"identity.updated","occurred_at":"2026-12-02T09:00:00Z","identity_id":"0190c0de-0000-7000-8000-000000000002",` +
		`"actor":{"kind":"ADMIN","admin_key_id":"abcdef012345"},"client_ip":"203.0.113.7","user_agent":null,` +
		`"changed_paths":["/traits/email"],"data":{"n":1}}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	e.Data, e.ChangedPaths, e.Actor = nil, nil, nil
	b, _ = Body(e)
	var got map[string]map[string]any
	_ = json.Unmarshal(b, &got)
	if d := got["data"]; d["data"] != nil || d["changed_paths"] == nil || d["actor"].(map[string]any)["kind"] != "SYSTEM" {
		t.Errorf("no data, paths nor actor: %s", b)
	}
}

func TestBackoff(t *testing.T) {
	w := &Worker{cfg: WorkerConfig{RetryBackoff: 30 * time.Second, MaxBackoff: time.Hour}}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	for i, w0 := range want {
		if got := w.backoff(i + 1); got != w0 {
			t.Errorf("after %d failures: got %s, want %s", i+1, got, w0)
		}
	}
}
