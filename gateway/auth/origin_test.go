package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestOriginPolicyAllowed(t *testing.T) {
	cases := []struct {
		list string
		yes  []string
		no   []string
	}{
		{
			list: "*.example.com",
			yes: []string{"https://a.example.com", "http://a.b.example.com", "wss://A.Example.COM:8443",
				"https://x-y.example.com", "http://a.example.com:80"},
			no: []string{"https://example.com", "https://notexample.com", "https://aexample.com",
				"https://a.example.com.evil.com", "https://a.example.co", "null", "", "a.example.com",
				"https://a.example.com/", "https://user@a.example.com", "https://a..example.com",
				"https://a.example.com:", "https://a.example.com:99999", "https://.example.com", "https:/a.example.com"},
		},
		{
			list: "https://app.example.com",
			yes:  []string{"https://app.example.com", "https://APP.Example.com", "HTTPS://app.example.com", "https://app.example.com:443"},
			no: []string{"http://app.example.com", "wss://app.example.com", "https://app.example.com:8443",
				"https://x.app.example.com", "https://app.example.com.evil.com", "https://pp.example.com", "https://app.example.comx"},
		},
		{
			list: "example.org",
			yes:  []string{"http://example.org", "https://example.org:9000", "chrome-extension://example.org", "https://EXAMPLE.ORG"},
			no:   []string{"https://a.example.org", "https://example.org.uk", "https://xexample.org"},
		},
		{
			list: "http://localhost:8080",
			yes:  []string{"http://localhost:8080", "http://LOCALHOST:08080"},
			no:   []string{"http://localhost", "http://localhost:80", "https://localhost:8080", "http://localhost:8081"},
		},
		{
			list: "https://*.example.com:8443",
			yes:  []string{"https://a.example.com:8443"},
			no:   []string{"https://a.example.com", "http://a.example.com:8443", "https://example.com:8443"},
		},
		{
			list: "http://[::1]:3000, [2001:db8::1]",
			yes:  []string{"http://[::1]:3000", "https://[2001:db8::1]", "http://[2001:DB8::1]:1"},
			no:   []string{"http://[::1]", "http://[::2]:3000", "http://::1:3000", "http://[::1"},
		},
		{
			list: "https://app.example.com/ , *.example.net,, example.org",
			yes:  []string{"https://app.example.com", "http://a.example.net", "http://example.org"},
			no:   []string{"https://example.net", "http://app.example.com"},
		},
		{
			list: "*",
			yes:  []string{"https://anything.test", "http://1.2.3.4:5"},
			no:   []string{"null", "", "garbage", "https://"},
		},
		{
			list: "",
			yes:  []string{"https://anything.test", "null", "", "garbage"},
		},
	}
	for _, tc := range cases {
		p, err := ParseOriginPolicy(tc.list)
		if err != nil {
			t.Fatalf("ParseOriginPolicy(%q): %v", tc.list, err)
		}
		for _, o := range tc.yes {
			if !p.Allowed([]byte(o)) {
				t.Errorf("policy %q should allow %q", tc.list, o)
			}
		}
		for _, o := range tc.no {
			if p.Allowed([]byte(o)) {
				t.Errorf("policy %q should refuse %q", tc.list, o)
			}
		}
	}
	var nilPolicy *OriginPolicy
	if !nilPolicy.Allowed([]byte("null")) {
		t.Error("nil policy refused")
	}
}

func TestParseOriginPolicyErrors(t *testing.T) {
	for _, tc := range []struct{ list, entry string }{
		{"https://", "https://"},
		{"https://a.com, ftp//x.com", "ftp//x.com"},
		{"https://a.com/path", "https://a.com/path"},
		{"https://a.com?q", "https://a.com?q"},
		{"https://user@a.com", "https://user@a.com"},
		{"a.com:80", "a.com:80"},
		{"*.*.com", "*.*.com"},
		{"a.*.com", "a.*.com"},
		{"*a.com", "*a.com"},
		{"*.", "*."},
		{"https://a.com:99999", "https://a.com:99999"},
		{"https://a.com:0", "https://a.com:0"},
		{"https://a.com:", "https://a.com:"},
		{"https://a.com:8x", "https://a.com:8x"},
		{"exa mple.com", "exa mple.com"},
		{"1http://a.com", "1http://a.com"},
		{"a..com", "a..com"},
		{"a.com.", "a.com."},
		{"::1", "::1"},
		{"*.[::1]", "*.[::1]"},
		{"http://[fe80::1%25eth0]", "http://[fe80::1%25eth0]"},
		{"null", ""}, // "null" is a valid bare host name; it matches no Origin
		{",", ","},
		{" , ,", " , ,"},
	} {
		p, err := ParseOriginPolicy(tc.list)
		if tc.entry == "" {
			if err != nil {
				t.Errorf("ParseOriginPolicy(%q): %v", tc.list, err)
			} else if p.Allowed([]byte("null")) {
				t.Errorf("policy %q allowed Origin: null", tc.list)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseOriginPolicy(%q) succeeded", tc.list)
			continue
		}
		if !errors.Is(err, ErrBadOrigin) || !strings.Contains(err.Error(), tc.entry) {
			t.Errorf("ParseOriginPolicy(%q) = %v; want ErrBadOrigin naming %q", tc.list, err, tc.entry)
		}
	}
}
