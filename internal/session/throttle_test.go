package session

import "testing"

func TestAddressGroup(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"198.51.100.7", "198.51.100.7"},
		{"::ffff:198.51.100.7", "198.51.100.7"},
		{"2001:db8:aa:bb::1", "2001:db8:aa:bb::/64"},
		{"2001:db8:aa:bb:ffff:ffff:ffff:ffff", "2001:db8:aa:bb::/64"},
		{"2001:db8:aa:bc::1", "2001:db8:aa:bc::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
		{"@", "@"}, // a unix socket peer: as written
	} {
		if got := addressGroup(tc.ip); got != tc.want {
			t.Errorf("addressGroup(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}
