package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/shardgate/shardgate/internal/wstest"
)

// This file covers SPEC "Admin API safety" for requests that must not get
// through: a body that is not JSON, a request from a browser, a Host from
// a rebound DNS name, the profiler without the admin token.

// jsonContent is the header pair every well-formed API POST carries.
var jsonContent = []string{"Content-Type", "application/json"}

// postJSON posts body to path with Content-Type application/json and the
// extra header pairs.
func postJSON(t testing.TB, g *testGateway, path, body string, header ...string) (int, string) {
	t.Helper()
	code, _, resp := adminDo(t, g, http.MethodPost, path, body, append(append([]string{}, jsonContent...), header...)...)
	return code, resp
}

// checkAPIError fails unless body is the API's JSON error object.
func checkAPIError(t testing.TB, body string) {
	t.Helper()
	var reply struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &reply); err != nil || reply.OK == nil || *reply.OK || reply.Error == "" {
		t.Fatalf("error reply %q, want {\"ok\":false,\"error\":...}", body)
	}
}

// TestAPIPostNeedsJSONContentType: a POST to /api/publish or
// /api/disconnect whose Content-Type is missing or not application/json
// gets 415 and does nothing; application/json, with parameters and in any
// case, is served.
func TestAPIPostNeedsJSONContentType(t *testing.T) {
	g := startGateway(t, nil)
	sub := wstest.Dial(t, g.wsURL(), nil)
	sub.Subscribe("news")

	endpoints := []struct{ path, body string }{
		{"/api/publish", `{"channel":"news","data":"hi"}`},
		{"/api/disconnect", `{"sub":"nobody"}`},
	}
	types := []struct {
		contentType string // "" sends no Content-Type header
		status      int
	}{
		{"", http.StatusUnsupportedMediaType},
		{"text/plain", http.StatusUnsupportedMediaType},
		{"text/plain; charset=utf-8", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
		{"application/jsonp", http.StatusUnsupportedMediaType},
		{"application/json-seq", http.StatusUnsupportedMediaType},
		{"not a media type;;", http.StatusUnsupportedMediaType},
		{"application/json", http.StatusOK},
		{"application/json; charset=utf-8", http.StatusOK},
		{"Application/JSON", http.StatusOK},
	}
	published := 0
	for _, ep := range endpoints {
		for _, tc := range types {
			t.Run(ep.path+" "+tc.contentType, func(t *testing.T) {
				var hdr []string
				if tc.contentType != "" {
					hdr = []string{"Content-Type", tc.contentType}
				}
				code, rh, body := adminDo(t, g, http.MethodPost, ep.path, ep.body, hdr...)
				if code != tc.status {
					t.Fatalf("status %d %q, want %d", code, body, tc.status)
				}
				if ct := rh.Get("Content-Type"); ct != "application/json" {
					t.Errorf("reply Content-Type %q, want application/json", ct)
				}
				if code == http.StatusOK {
					if strings.TrimSpace(body) != `{"ok":true}` {
						t.Fatalf("reply %q, want {\"ok\":true}", body)
					}
					if ep.path == "/api/publish" {
						published++
						if got := readTextFrame(t, sub); got != `{"type":"message","channel":"news","data":"hi"}` {
							t.Fatalf("subscriber got %s", got)
						}
					}
					return
				}
				checkAPIError(t, body)
				if accept := rh.Get("Accept"); accept != "application/json" {
					t.Errorf("415 carries Accept %q, want application/json", accept)
				}
			})
		}
	}
	// Only the JSON posts were published.
	g.waitMetric(float64(published), "shardgate_publishes_total", "source", "api")
}

// TestAPIRefusesRequestsWithOrigin: any /api/ request with an Origin
// header gets 403, whether it carries the admin token or not, so a web page
// never reaches a handler; the scraper endpoints do not care.
func TestAPIRefusesRequestsWithOrigin(t *testing.T) {
	const token = "admin-origin-token"
	g := startGateway(t, func(c *Config) { c.AdminToken = token })
	sub := wstest.Dial(t, g.wsURL(), nil)
	sub.Subscribe("news")
	own := "http://" + g.AdminAddr().String()

	cases := []struct {
		name, method, path, body, origin, auth string
		status                                 int
	}{
		{"publish from another site", "POST", "/api/publish", `{"channel":"news","data":1}`, "https://evil.example", "", 403},
		{"publish from another site with the token", "POST", "/api/publish", `{"channel":"news","data":1}`, "https://evil.example", "Bearer " + token, 403},
		{"publish from the admin origin itself", "POST", "/api/publish", `{"channel":"news","data":1}`, own, "Bearer " + token, 403},
		{"publish from an opaque origin", "POST", "/api/publish", `{"channel":"news","data":1}`, "null", "Bearer " + token, 403},
		{"publish with an empty Origin", "POST", "/api/publish", `{"channel":"news","data":1}`, "", "Bearer " + token, 403},
		{"disconnect from another site with the token", "POST", "/api/disconnect", `{"sub":"x"}`, "https://evil.example", "Bearer " + token, 403},
		{"unknown api path", "GET", "/api/other", "", "https://evil.example", "Bearer " + token, 403},
		{"metrics", "GET", "/metrics", "", "https://evil.example", "", 200},
		{"healthz", "GET", "/healthz", "", "https://evil.example", "", 200},
		{"readyz", "GET", "/readyz", "", "https://evil.example", "", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, g.adminURL()+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header["Origin"] = []string{tc.origin} // set as is, even when empty
			req.Header.Set("Content-Type", "application/json")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == http.StatusForbidden {
				checkAPIError(t, string(body))
			}
		})
	}
	// Nothing was published or kicked; the same request without Origin is
	// served, and its message is the first the subscriber sees.
	if code, body := postJSON(t, g, "/api/publish", `{"channel":"news","data":"no origin"}`, "Authorization", "Bearer "+token); code != http.StatusOK {
		t.Fatalf("publish without Origin: %d %q", code, body)
	}
	if got := readTextFrame(t, sub); got != `{"type":"message","channel":"news","data":"no origin"}` {
		t.Fatalf("subscriber got %s", got)
	}
	g.waitMetric(1, "shardgate_publishes_total", "source", "api")
}

// TestAdminRefusesForeignHostOnLoopback: with the admin listener on a
// loopback address, every path refuses a request whose Host is not a
// loopback name or address (a page on a rebound DNS name), and serves
// localhost, 127.0.0.0/8 and ::1, with or without a port.
func TestAdminRefusesForeignHostOnLoopback(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.Pprof = true })
	_, port, err := net.SplitHostPort(g.AdminAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	paths := []struct{ method, path string }{
		{"GET", "/metrics"},
		{"GET", "/healthz"},
		{"GET", "/readyz"},
		{"POST", "/api/publish"},
		{"POST", "/api/disconnect"},
		{"GET", "/debug/pprof/"},
		{"GET", "/debug/pprof/cmdline"},
		{"GET", "/no/such/path"},
	}
	hosts := []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1:" + port, true},
		{"localhost:" + port, true},
		{"localhost", true},
		{"LocalHost.:" + port, true},
		{"app.localhost:" + port, true},
		{"127.0.0.2:" + port, true},
		{"[::1]:" + port, true},
		{"[::1]", true},
		{"[::ffff:127.0.0.1]:" + port, true},
		{"evil.example", false},
		{"evil.example:" + port, false},
		{"localhost.evil.example:" + port, false},
		{"127.0.0.1.evil.example:" + port, false},
		{"evillocalhost:" + port, false},
		{"0.0.0.0:" + port, false},
		{"10.0.0.1:" + port, false},
		{"[::2]:" + port, false},
	}
	for _, h := range hosts {
		for _, p := range paths {
			t.Run(h.host+" "+p.method+" "+p.path, func(t *testing.T) {
				body := `{"channel":"hosts","data":1}`
				if p.path == "/api/disconnect" {
					body = `{"sub":"nobody"}`
				}
				req, err := http.NewRequest(p.method, g.adminURL()+p.path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Host = h.host
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case !h.ok && resp.StatusCode != http.StatusForbidden:
					t.Fatalf("status %d %q, want 403", resp.StatusCode, b)
				case h.ok && resp.StatusCode == http.StatusForbidden:
					t.Fatalf("status 403 %q for a loopback Host", b)
				case h.ok && p.path != "/no/such/path" && resp.StatusCode != http.StatusOK:
					t.Fatalf("status %d %q, want 200", resp.StatusCode, b)
				}
			})
		}
	}
	t.Run("HTTP/1.0 without Host", func(t *testing.T) {
		if code := rawAdminStatus(t, g, "GET /healthz HTTP/1.0\r\n\r\n"); code != http.StatusForbidden {
			t.Fatalf("status %d, want 403", code)
		}
	})
	// Only requests with a loopback Host published.
	want := 0.0
	for _, h := range hosts {
		if h.ok {
			want++
		}
	}
	g.waitMetric(want, "shardgate_publishes_total", "source", "api")
}

// rawAdminStatus writes req verbatim to the admin listener and returns the
// answer's status.
func rawAdminStatus(t testing.TB, g *testGateway, req string) int {
	t.Helper()
	conn, err := net.Dial("tcp", g.AdminAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminHostUncheckedOffLoopback: a listener on another address is
// reached under names only the operator knows, so the Host gate stays
// out of the way there (checked on the handler, without binding a
// non-loopback socket in a test).
func TestAdminHostUncheckedOffLoopback(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	cases := []struct {
		listener net.Addr
		status   int
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090}, http.StatusForbidden},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 9090}, http.StatusForbidden},
		{&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 9090}, http.StatusOK},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9090}, http.StatusOK},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9090}, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.listener.String(), func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Host = "admin.internal.example:9090"
			rec := httptest.NewRecorder()
			guardHost(ok, tc.listener).ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("Host %s on listener %s: %d, want %d", req.Host, tc.listener, rec.Code, tc.status)
			}
		})
	}
}

// TestPprofNeedsAdminToken: with -pprof and -admin-token, every profiler
// path answers 401 without the token (the command line, which may hold
// secrets, included) and is served with it; Origin and foreign Host rules
// apply to it as to /api/. Without a token set, the profiler is open;
// without -pprof, it is not there.
func TestPprofNeedsAdminToken(t *testing.T) {
	const token = "pprof-admin-token"
	g := startGateway(t, func(c *Config) {
		c.Pprof = true
		c.AdminToken = token
	})
	cases := []struct {
		name, method, path string
		header             []string
		status             int
	}{
		{"index without a token", "GET", "/debug/pprof/", nil, 401},
		{"cmdline without a token", "GET", "/debug/pprof/cmdline", nil, 401},
		{"cmdline with a wrong token", "GET", "/debug/pprof/cmdline", []string{"Authorization", "Bearer nope"}, 401},
		{"heap without a token", "GET", "/debug/pprof/heap?debug=1", nil, 401},
		{"goroutine without a token", "GET", "/debug/pprof/goroutine?debug=2", nil, 401},
		{"profile without a token", "GET", "/debug/pprof/profile?seconds=1", nil, 401},
		{"trace without a token", "GET", "/debug/pprof/trace?seconds=1", nil, 401},
		{"symbol without a token", "POST", "/debug/pprof/symbol", nil, 401},
		{"escaped path without a token", "GET", "/debug/pprof/%63mdline", nil, 401},
		{"index with the token", "GET", "/debug/pprof/", []string{"Authorization", "Bearer " + token}, 200},
		{"heap with the token", "GET", "/debug/pprof/heap?debug=1", []string{"Authorization", "Bearer " + token}, 200},
		{"cmdline with the token from a browser", "GET", "/debug/pprof/cmdline",
			[]string{"Authorization", "Bearer " + token, "Origin", "http://" + g.AdminAddr().String()}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := adminDo(t, g, tc.method, tc.path, "", tc.header...)
			if code != tc.status {
				t.Fatalf("status %d %q, want %d", code, body, tc.status)
			}
			if code != http.StatusOK && strings.Contains(body, os.Args[0]) {
				t.Fatalf("refused answer leaks the command line: %q", body)
			}
		})
	}
	t.Run("cmdline with the token", func(t *testing.T) {
		code, _, body := adminDo(t, g, "GET", "/debug/pprof/cmdline", "", "Authorization", "Bearer "+token)
		if code != http.StatusOK || !strings.Contains(body, os.Args[0]) {
			t.Fatalf("status %d %q, want 200 and the command line", code, body)
		}
	})
	t.Run("with the token under a foreign Host", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, g.adminURL()+"/debug/pprof/cmdline", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "evil.example"
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", resp.StatusCode)
		}
	})

	t.Run("no admin token set", func(t *testing.T) {
		open := startGateway(t, func(c *Config) { c.Pprof = true })
		if code, _, body := adminDo(t, open, "GET", "/debug/pprof/cmdline", ""); code != http.StatusOK {
			t.Fatalf("status %d %q, want 200", code, body)
		}
	})
	t.Run("pprof off", func(t *testing.T) {
		off := startGateway(t, func(c *Config) { c.AdminToken = token })
		if code, _, body := adminDo(t, off, "GET", "/debug/pprof/cmdline", "", "Authorization", "Bearer "+token); code != http.StatusNotFound {
			t.Fatalf("status %d %q, want 404", code, body)
		}
	})
}
